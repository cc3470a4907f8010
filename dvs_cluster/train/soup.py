"""
`python -m dvs_cluster.train.soup OUT IN [IN ...]`: a uniform weight average of finished training states.

The Lovasz cycles of issue 19 are warm restarts, each ending at a low learning rate; their ends lie in
one basin, and the average of such snapshots generalises better than any one of them (stochastic
weight averaging, Izmailov et al. 2018; "model soups", Wortsman et al. 2022). It costs no training
step. The result is a finished slim state of the last input's budget, so that

    python -m dvs_cluster.train.lite --budget <that budget> --resume --work DIR ...

with OUT copied to DIR/lite_state.pt exports it like any finished run; the card's command list then
holds the commands of every input and this one. BatchNorm running statistics are averaged like the
weights: the encoder's never move (frozen BN), the decoder's were measured on the same data by nets
this close.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from dvs_cluster.train.lite import save_state


class SoupError(ValueError):
    """Inputs that cannot be averaged: one line for the user."""


def average_states(states: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The last state with its floating-point tensors replaced by the mean over ``states``."""
    if len(states) < 2:
        raise SoupError("a soup needs at least two states")
    for st, name in zip(states, names, strict=True):
        if not isinstance(st, dict) or "state_dict" not in st:
            raise SoupError(f"{name}: not a training state (no state_dict)")
        if not st.get("done"):
            raise SoupError(f"{name}: that run has not finished (step {st.get('step')})")
    last = states[-1]
    ref = last["state_dict"]
    for st, name in zip(states, names, strict=True):
        sd = st["state_dict"]
        if sd.keys() != ref.keys() or any(sd[k].shape != ref[k].shape for k in ref):
            raise SoupError(f"{name}: not the same net as {names[-1]} (other tensors or shapes)")
    avg = {
        k: (
            torch.stack([st["state_dict"][k].double() for st in states]).mean(0).to(v.dtype)
            if v.is_floating_point()
            else v.clone()
        )
        for k, v in ref.items()
    }
    commands: list[str] = []
    for st in states:
        commands += [c for c in st.get("commands", []) if c not in commands]
    return {
        **last,
        "state_dict": avg,
        "optimizer": None,
        "slim": True,
        "commands": commands,
        "soup_of": [
            {"path": n, "budget_name": st.get("budget_name"), "steps": int(st.get("step", 0))}
            for st, n in zip(states, names, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.soup", description=__doc__)
    ap.add_argument("out", type=Path, help="the averaged state (a finished slim state)")
    ap.add_argument("inputs", type=Path, nargs="+", help="finished training states of one net")
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train.soup " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    states: list[dict[str, Any]] = []
    for p in a.inputs:
        if not p.is_file():
            print(f"soup: no state file at {p}", file=sys.stderr)
            return 2
        try:
            states.append(torch.load(p, map_location="cpu", weights_only=False))
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line error
            print(f"soup: {p}: not a training state ({type(e).__name__})", file=sys.stderr)
            return 2
    try:
        soup = average_states(states, [str(p) for p in a.inputs])
    except SoupError as e:
        print(f"soup: {e}", file=sys.stderr)
        return 2
    soup["commands"] = [*soup["commands"], cmd]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_state(a.out, soup)
    print(
        f"[soup] {a.out}: mean of {len(states)} states "
        f"({', '.join(str(s.get('budget_name')) for s in states)}), budget {soup.get('budget_name')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
