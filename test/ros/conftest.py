"""The `ros` group: needs the ROS 2 rig and the colcon-built packages (scripts/ros_test.sh sets both up)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test"))  # cluster_support (random-weight models)

# One DDS domain per test session, loopback only: parallel CI jobs and other ROS users never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _missing() -> str | None:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return "rclpy not importable: run scripts/ros_test.sh (builds the ROS 2 rig and the workspace)"
    try:
        import dvs_cluster_interfaces.msg  # noqa: F401
    except ImportError:
        return "dvs_cluster_interfaces not built: run scripts/ros_test.sh (colcon build of ros2/)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = _missing()
    for item in items:
        if "test/ros/" not in str(item.fspath).replace(os.sep, "/"):
            continue
        item.add_marker(pytest.mark.ros)
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-weight models that follow the I/O contract: the tests check plumbing, not accuracy."""
    from cluster_support import make_random_models

    return make_random_models(tmp_path_factory.mktemp("models"))
