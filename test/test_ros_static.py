"""
Static checks of the ROS 2 packaging, runnable without ROS: interfaces, manifests, launch, config, rviz.

With the rig sourced (scripts/ros_test.sh) the rosidl parser checks the .msg files too; without it the
structural check is rosbags' parser, which is what the Zenoh backend runs on.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MSGS = sorted((REPO / "msg").glob("*.msg"))
MANIFESTS = [REPO / "package.xml", REPO / "ros2" / "dvs_cluster_interfaces" / "package.xml"]


def test_msgs_parse_with_rosbags() -> None:
    from rosbags.typesys import get_types_from_msg

    for f in MSGS:
        types = get_types_from_msg(f.read_text(), f"dvs_cluster_interfaces/msg/{f.stem}")
        assert f"dvs_cluster_interfaces/msg/{f.stem}" in types


@pytest.mark.ros  # the rosidl parser is in the rig: runs in scripts/ros_test.sh
@pytest.mark.parametrize("msg", MSGS, ids=lambda p: p.name)
def test_msgs_parse_with_rosidl(msg: Path) -> None:
    adapter = pytest.importorskip("rosidl_adapter.parser", reason="rosidl_adapter is in the ROS 2 rig only")
    spec = adapter.parse_message_string("dvs_cluster_interfaces", msg.stem, msg.read_text())
    assert spec.fields, msg


def test_interfaces_package_lists_every_msg() -> None:
    cmake = (REPO / "ros2" / "dvs_cluster_interfaces" / "CMakeLists.txt").read_text()
    listed = set(re.search(r"set\(_msgs ([^)]*)\)", cmake).group(1).split())  # type: ignore[union-attr]
    assert listed == {f.stem for f in MSGS}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_package_xml_is_valid(manifest: Path) -> None:
    pkg = pytest.importorskip("catkin_pkg.package", reason="pip install catkin_pkg (dev extra)")
    p = pkg.parse_package(str(manifest))
    p.validate()  # raises InvalidPackage
    assert p.package_format == 3


def test_package_xml_deps() -> None:
    pkg = pytest.importorskip("catkin_pkg.package", reason="pip install catkin_pkg (dev extra)")
    top = pkg.parse_package(str(MANIFESTS[0]))
    names = {d.name for d in top.exec_depends}
    assert {
        "dvs_cluster_interfaces",
        "rclpy",
        "std_msgs",
        "sensor_msgs",
        "cv_bridge",
        "diagnostic_msgs",
        "builtin_interfaces",
        "launch",
        "launch_ros",
    } <= names
    assert top.get_build_type() == "ament_python"
    itf = pkg.parse_package(str(MANIFESTS[1]))
    assert itf.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in {g.name for g in itf.member_of_groups}
    assert "rosidl_default_generators" in {d.name for d in itf.buildtool_depends}


@pytest.mark.parametrize("f", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_is_ros_parameters_yaml(f: Path) -> None:
    data = yaml.safe_load(f.read_text())
    assert list(data) == ["/**"] and set(data["/**"]) == {"ros__parameters"}


def test_config_names_are_declared_parameters() -> None:
    """Every name in config/*.yaml is a parameter some node declares (a typo would be silently ignored)."""
    from dvs_cluster.ros.specs import MASTER_SPECS, SLAVE_SPECS

    declared = {s.name for s in (*MASTER_SPECS, *SLAVE_SPECS)}  # generated from dvs_cluster.options
    for mod in ("master_node", "slave_node", "camera_node", "common"):  # written out by hand
        tree = ast.parse((REPO / "dvs_cluster" / "ros" / f"{mod}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Spec" and node.args:
                declared.add(node.args[0].value)  # type: ignore[attr-defined]
    for f in (REPO / "config").glob("*.yaml"):
        names = set(yaml.safe_load(f.read_text())["/**"]["ros__parameters"])
        assert names <= declared, (f.name, names - declared)


def test_launch_files_compile_and_rviz_parses() -> None:
    for f in (REPO / "launch").glob("*.launch.py"):
        tree = ast.parse(f.read_text())
        assert any(
            isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body
        )
    rviz = yaml.safe_load((REPO / "rviz" / "dvs_cluster.rviz").read_text())
    topics = [d["Topic"]["Value"] for d in rviz["Visualization Manager"]["Displays"]]
    assert topics == ["/camera/image_raw", "/segmentation_color", "/overlay"]


def test_setup_installs_ros_files() -> None:
    text = (REPO / "setup.py").read_text()
    for needle in (
        "resource/",
        "launch/*.py",
        "config/*.yaml",
        "rviz/*.rviz",
        "msg/*.msg",
        "master = dvs_cluster.ros.master_node:main",
        "slave = dvs_cluster.ros.slave_node:main",
        "camera = dvs_cluster.ros.camera_node:main",
    ):
        assert needle in text, needle
    assert (REPO / "resource" / "dvs_cluster").is_file()
