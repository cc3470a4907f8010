"""
One table of options (dvs_cluster/options.py): the CLI, the ROS parameters, config/*.yaml and the
simulator must use its names and defaults. rclpy is not needed: the nodes declare ros/specs.py's lists.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from dvs_cluster import options
from dvs_cluster.cli import build_parser
from dvs_cluster.options import CLUSTER_ID, MASTER, SLAVE, Option
from dvs_cluster.ros.specs import MASTER_SPECS, SLAVE_SPECS

CONFIG = Path(__file__).resolve().parents[1] / "config"
ROS_TRANSPORT = {"transport", "zenoh_mode", "zenoh_listen", "zenoh_connect"}
#: config/*.yaml values that are a deployment's, not a default (with why).
DEPLOYMENT = {("cluster.yaml", "slaves_expected"): 2}  # cluster.launch.py starts 2 slaves


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _actions(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in p._actions}


def _cli_options(command: str) -> list[Option]:
    table = {
        "master": [*MASTER.values()],
        "slave": [*SLAVE.values()],
        "run": [*MASTER.values(), *SLAVE.values()],
    }
    return [o for o in [*table[command], CLUSTER_ID] if o.flag]


@pytest.mark.parametrize("command", ["master", "slave", "run"])
def test_cli_flags_and_defaults_are_the_tables(command: str) -> None:
    acts = _actions(_subparser(command))
    for o in _cli_options(command):
        assert o.name in acts, f"{command}: no option with dest {o.name}"
        a = acts[o.name]
        assert a.option_strings[0] == o.flag and set(a.option_strings) == {o.flag, *o.aliases}, o.name
        assert a.default == o.default, f"{command} {o.flag}: default {a.default!r} != table {o.default!r}"
        assert o.choices is None or tuple(a.choices or ()) == o.choices, o.name


def test_one_name_per_option() -> None:
    """The flag is the name with dashes: ``max_queued_frames`` <-> ``--max-queued-frames``."""
    for o in [*MASTER.values(), *SLAVE.values(), CLUSTER_ID]:
        if o.flag:
            assert o.flag == "--" + o.name.replace("_", "-"), o.name
    assert not set(MASTER) & set(SLAVE)


def test_segment_shares_the_grid_and_net_options() -> None:
    acts = _actions(_subparser("segment"))
    for o in [
        *(MASTER[n] for n in ("width", "height", "resize", "rows", "cols", "overlap", "max_age")),
        SLAVE["flow"],
    ]:
        assert acts[o.name].default == o.default and o.flag in acts[o.name].option_strings


@pytest.mark.parametrize(("specs", "table"), [(MASTER_SPECS, MASTER), (SLAVE_SPECS, SLAVE)])
def test_ros_parameters_are_the_tables(specs: list[Any], table: dict[str, Option]) -> None:
    by_name = {s.name: s for s in specs}
    assert len(by_name) == len(specs), "a parameter declared twice"
    want = {o.name for o in table.values() if o.ros} | {CLUSTER_ID.name} | ROS_TRANSPORT
    assert set(by_name) == want
    for o in [*table.values(), CLUSTER_ID]:
        if not o.ros:
            continue
        s = by_name[o.name]
        assert s.default == o.ros_default and type(s.default) is type(o.ros_default), o.name
        assert (s.lo, s.hi) == (o.lo, o.hi) and tuple(s.choices or ()) == tuple(o.choices or ()), o.name


def _yaml_params(name: str) -> dict[str, Any]:
    params: dict[str, Any] = yaml.safe_load((CONFIG / name).read_text())["/**"]["ros__parameters"]
    return params


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.glob("*.yaml")))
def test_config_yaml_uses_the_names_and_defaults(name: str) -> None:
    pytest.importorskip("cv2")
    from dvs_cluster.ros.params import Spec

    known: dict[str, list[Spec]] = {}
    camera: list[Spec] = []
    try:  # the camera node's own list (it imports nothing ROS at module level but rclpy)
        import dvs_cluster.ros.camera_node as cam

        camera = cam.CAMERA_SPECS
    except ImportError:
        camera = _camera_specs_without_rclpy()
    for s in [*MASTER_SPECS, *SLAVE_SPECS, *camera]:
        known.setdefault(s.name, []).append(s)
    for key, value in _yaml_params(name).items():
        assert key in known, f"{name}: {key} is no node's parameter"
        want = DEPLOYMENT.get((name, key))
        defaults = [want] if want is not None else [s.default for s in known[key]]
        assert value in defaults, f"{name}: {key}: {value!r}, the parameter's default is {defaults}"


def _camera_specs_without_rclpy() -> list[Any]:
    """camera_node.CAMERA_SPECS, read from its source (the module imports rclpy)."""
    import ast

    from dvs_cluster.ros.params import Spec

    src = (Path(options.__file__).parent / "ros" / "camera_node.py").read_text()
    tree = ast.parse(src)
    node = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CAMERA_SPECS"
    )
    assert isinstance(node, ast.List)
    out = []
    for call in node.elts:
        assert isinstance(call, ast.Call)
        name, default = (ast.literal_eval(a) for a in call.args[:2])
        out.append(Spec(name, default, ""))
    return out


def test_simulator_and_bench_options_are_the_tables() -> None:
    from dvs_cluster.nodes.bench import ClusterOptions
    from dvs_cluster.sim.des import SimConfig

    table = {**MASTER, **SLAVE}
    for cls in (SimConfig, ClusterOptions):
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING:
                continue
            if f.name in table:
                o = table[f.name]  # a CLI default of None means "the runtime's default" (ros_default)
                want = o.ros_default if o.default is None else o.default
                assert f.default == want, f"{cls.__name__}.{f.name}"
    sim_fields = {f.name for f in dataclasses.fields(SimConfig)}
    for old in ("queue", "quantize", "wait"):
        assert old not in sim_fields


def test_master_config_fields_are_the_tables() -> None:
    from dvs_cluster.nodes.master import MasterConfig

    fields = {f.name: f.default for f in dataclasses.fields(MasterConfig)}
    for o in [*MASTER.values(), CLUSTER_ID]:
        if o.field in fields:
            assert fields[o.field] == (o.ros_default if o.default is None else o.default), o.name
    assert "quantize" not in fields and "key_quantize" in fields


def test_copied_constants_match_their_owners() -> None:
    from dvs_cluster.core.policy import DEFAULT_MAX_AGE
    from dvs_cluster.core.scheduler import DEFAULT_MAX_IN_FLIGHT, REGION_ORDERS
    from dvs_cluster.inference import DEFAULT_FLOW
    from dvs_cluster.io.frame import RESIZE_MODES
    from dvs_cluster.model_defaults import MODEL_DEFAULT

    assert options.DEFAULT_MAX_AGE == DEFAULT_MAX_AGE and options.DEFAULT_FLOW == DEFAULT_FLOW
    assert options.REGION_ORDERS == REGION_ORDERS and options.RESIZE_MODES == RESIZE_MODES
    assert options.THRESHOLD_MODEL_DEFAULT == MODEL_DEFAULT
    assert options.DEFAULT_MAX_IN_FLIGHT == DEFAULT_MAX_IN_FLIGHT


def test_old_spellings_still_parse() -> None:
    args = build_parser().parse_args(["master", "--queue", "7", "--wait", "3", "--cluster", "c1"])
    assert (args.max_queued_frames, args.wait_timeout, args.cluster_id) == (7, 3.0, "c1")
