"""
The whole cluster on this machine: master, ``slaves`` slave nodes and (optionally) the stand-in camera.

    ros2 launch dvs_cluster cluster.launch.py                       # synthetic camera, 2 slaves
    ros2 launch dvs_cluster cluster.launch.py camera:=false camera_topic:=/front/image_raw slaves:=3
    ros2 launch dvs_cluster cluster.launch.py slaves:=0             # slaves on other boards (slave.launch.py)

Every node reads ``params_file`` (``/**: ros__parameters:`` YAML, default config/cluster.yaml); the
launch arguments ``transport`` and ``cluster_id`` override it so one command line sets a whole cluster.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "dvs_cluster"


def _overrides(transport: str = "transport") -> dict[str, ParameterValue]:
    """Launch arguments that override the params file for every cluster node (kept as strings)."""
    return {
        "transport": ParameterValue(LaunchConfiguration(transport), value_type=str),
        "cluster_id": ParameterValue(LaunchConfiguration("cluster_id"), value_type=str),
    }


def _master(context, *args, **kwargs):  # type: ignore[no-untyped-def]
    """The master; ``master_transport`` (default: ``transport``) lets it bridge ROS and Zenoh slaves."""
    which = "master_transport" if LaunchConfiguration("master_transport").perform(context) else "transport"
    camera_topic = LaunchConfiguration("camera_topic")
    return [
        Node(
            package=PACKAGE,
            executable="master",
            name="master",
            parameters=[LaunchConfiguration("params_file"), _overrides(which)],
            remappings=[("image", camera_topic), ("image/compressed", [camera_topic, "/compressed"])],
            output="screen",
            emulate_tty=True,
        )
    ]


def _slaves(context, *args, **kwargs):  # type: ignore[no-untyped-def]
    """One slave node per requested slave: slave0, slave1, ... (their cluster names too)."""
    count = int(LaunchConfiguration("slaves").perform(context))
    if count < 0:
        raise ValueError(f"launch argument 'slaves' must be >= 0, got {count}")
    overrides = _overrides()
    return [
        Node(
            package=PACKAGE,
            executable="slave",
            name=f"slave{i}",
            parameters=[LaunchConfiguration("params_file"), overrides],
            output="screen",
            emulate_tty=True,
        )
        for i in range(count)
    ]


def generate_launch_description() -> LaunchDescription:
    """Arguments: slaves, camera_topic, camera, params_file, namespace, (master_)transport, cluster_id."""
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "cluster.yaml"])
    camera_topic = LaunchConfiguration("camera_topic")
    return LaunchDescription(
        [
            DeclareLaunchArgument("slaves", default_value="2", description="slave nodes on this machine"),
            DeclareLaunchArgument(
                "camera_topic", default_value="/camera/image_raw", description="sensor_msgs/Image input"
            ),
            DeclareLaunchArgument(
                "camera", default_value="true", description="start the stand-in camera on camera_topic"
            ),
            DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of all nodes"),
            DeclareLaunchArgument(
                "transport", default_value="ros", description="cluster transport: ros | zenoh | ros,zenoh"
            ),
            DeclareLaunchArgument(
                "master_transport",
                default_value="",
                description="the master's transport if not `transport`, e.g. ros,zenoh for a mixed cluster",
            ),
            DeclareLaunchArgument("cluster_id", default_value="default", description="cluster id"),
            GroupAction(
                [
                    PushRosNamespace(LaunchConfiguration("namespace")),
                    OpaqueFunction(function=_master),
                    OpaqueFunction(function=_slaves),
                    Node(
                        package=PACKAGE,
                        executable="camera",
                        name="camera",
                        parameters=[LaunchConfiguration("params_file")],
                        remappings=[("image", camera_topic)],
                        condition=IfCondition(LaunchConfiguration("camera")),
                        output="screen",
                        emulate_tty=True,
                    ),
                ]
            ),
        ]
    )
