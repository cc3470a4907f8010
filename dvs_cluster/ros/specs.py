"""
The ROS parameters of the master and the slave node, generated from :mod:`dvs_cluster.options`.

Plain data without rclpy: the nodes declare these lists, and ``test/test_options.py`` reads them to
check that ROS, the CLI, ``config/*.yaml`` and the simulator agree on every name and default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dvs_cluster.options import CLUSTER_ID, MASTER, SLAVE, Option
from dvs_cluster.ros.common import check_ros_name, transport_specs
from dvs_cluster.ros.params import Spec


def _check_policy(value: str) -> str | None:
    from dvs_cluster.core.policy import make_policy

    try:
        make_policy(value, 90.0)
    except ValueError as exc:
        return str(exc)
    return None


def _check_providers(value: Sequence[str]) -> str | None:
    if not value or not all(str(v).strip() for v in value):
        return "give at least one provider, e.g. [cpu] or [cuda, cpu]"
    return None


#: What a descriptor cannot say, by parameter name (returns why a value is bad, or None).
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "cluster_id": check_ros_name,
    "policy": _check_policy,
    "providers": _check_providers,
}


def spec(o: Option) -> Spec:
    """The ROS parameter of one option."""
    return Spec(o.name, o.ros_default, o.help, lo=o.lo, hi=o.hi, choices=o.choices, check=CHECKS.get(o.name))


MASTER_SPECS: list[Spec] = [
    spec(CLUSTER_ID),
    *(spec(o) for o in MASTER.values() if o.ros),
    *transport_specs(),
]
SLAVE_SPECS: list[Spec] = [
    spec(SLAVE["slave_name"]),
    spec(CLUSTER_ID),
    *(spec(o) for o in SLAVE.values() if o.ros and o.name != "slave_name"),
    *transport_specs(),
]
