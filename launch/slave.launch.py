"""
One slave on this board, joining a master that runs elsewhere (same ROS_DOMAIN_ID, namespace, cluster).

    ros2 launch dvs_cluster slave.launch.py name:=jetson1 providers:="[cuda, cpu]"
    ros2 launch dvs_cluster slave.launch.py name:=jetson2 transport:=zenoh zenoh_connect:=tcp/10.0.0.1:7447
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "dvs_cluster"


def generate_launch_description() -> LaunchDescription:
    """Arguments: name, providers, models, params_file, namespace, transport, cluster_id, zenoh_connect."""
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "slave.yaml"])
    args = [
        ("name", "slave0", "node name = the slave's name in the cluster (unique per cluster)"),
        ("providers", "[cpu]", "onnxruntime providers in order, e.g. [cuda, cpu] or [tensorrt, cuda, cpu]"),
        ("models", "", "model directory (default: share/dvs_cluster/models)"),
        ("params_file", default_params, "parameters YAML"),
        ("namespace", "", "namespace (the master's)"),
        ("transport", "ros", "ros | zenoh"),
        ("cluster_id", "default", "cluster id (the master's)"),
        ("zenoh_connect", "", "zenoh endpoints of the master, e.g. tcp/10.0.0.1:7447"),
    ]
    overrides = {
        # "[cuda, cpu]" is read as YAML: a string array. Strings stay strings even when empty or numeric.
        "providers": LaunchConfiguration("providers"),
        "models": ParameterValue(LaunchConfiguration("models"), value_type=str),
        "transport": ParameterValue(LaunchConfiguration("transport"), value_type=str),
        "cluster_id": ParameterValue(LaunchConfiguration("cluster_id"), value_type=str),
        "zenoh_connect": ParameterValue(LaunchConfiguration("zenoh_connect"), value_type=str),
    }
    return LaunchDescription(
        [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in args]
        + [
            GroupAction(
                [
                    PushRosNamespace(LaunchConfiguration("namespace")),
                    Node(
                        package=PACKAGE,
                        executable="slave",
                        name=LaunchConfiguration("name"),
                        parameters=[LaunchConfiguration("params_file"), overrides],
                        output="screen",
                        emulate_tty=True,
                    ),
                ]
            )
        ]
    )
