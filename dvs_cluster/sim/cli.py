"""``dvs-cluster plan``: the capacity planner (``dvs_cluster.cli`` calls :func:`register`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _shipped_profiles() -> list[str]:
    """Board profile names, from the file names alone (``--help`` must not import the simulator)."""
    d = Path(__file__).resolve().parent / "profiles"
    return sorted(p.stem for p in d.glob("*.yaml") if p.name != "networks.yaml")


def register(subparsers: Any) -> None:
    """Add ``plan`` to the ``dvs-cluster`` command."""
    from dvs_cluster.cli_common import _positive_int
    from dvs_cluster.validate import frame_side, positive_float

    p = subparsers.add_parser(
        "plan",
        help="how many slaves for a target fps (simulator on a bench calibration)",
        description="Predict 1+N for N = 1..--max-slaves and answer the fewest slaves reaching --target-fps.",
    )
    p.add_argument("--target-fps", type=positive_float, required=True, help="frames per second wanted")
    p.add_argument("--width", type=frame_side, help="frame width (default: the calibration's)")
    p.add_argument("--height", type=frame_side, help="frame height (default: the calibration's)")
    p.add_argument(
        "--profile",
        default="local",
        help=f"board profile: {' | '.join(_shipped_profiles())} (local is measured, the others are "
        "assumptions), or a YAML file (default local)",
    )
    p.add_argument(
        "--network",
        default="1gbit",
        help="loopback | 10gbit | 1gbit | 100mbit | wifi | <N>gbit | <N>mbit (default 1gbit)",
    )
    p.add_argument("--max-slaves", type=_positive_int, default=16, help="largest cluster tried (default 16)")
    p.add_argument(
        "--variants",
        default=None,
        help="scheduler variants to try, comma-separated (default: every one in sim.plan.VARIANTS: "
        "fifo, pipe1, default, aff, aff+f16, aff+u8+fwd2)",
    )
    p.add_argument(
        "--calibration", metavar="FILE", help="calibration.npz (default: docs/bench/calibration.npz)"
    )
    p.add_argument("--table", action="store_true", help="also print every simulated variant and N")
    p.add_argument("--json", metavar="FILE", help="write the whole answer as JSON (the table included)")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    """Run the planner and print the answer."""
    from dvs_cluster.cli_common import CliError
    from dvs_cluster.sim.plan import VARIANTS, Calibration, PlanError, default_calibration, format_plan, plan
    from dvs_cluster.sim.profiles import load_board, load_network

    spec = args.variants if args.variants is not None else ",".join(VARIANTS)
    variants = tuple(v.strip() for v in spec.split(",") if v.strip())
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise CliError(f"unknown variant(s) {bad} (use {', '.join(VARIANTS)})")
    try:
        cal = Calibration.load(Path(args.calibration) if args.calibration else default_calibration())
        board = load_board(args.profile)
        network = load_network(args.network, cal.costs.link)
        res = plan(cal, args.target_fps, args.width, args.height, board, network, args.max_slaves, variants)
    except (PlanError, ValueError) as e:
        raise CliError(str(e)) from None
    print(format_plan(res, table=args.table))
    if args.json:
        from dvs_cluster.io.sinks import write_json

        write_json(args.json, res)
    return 0
