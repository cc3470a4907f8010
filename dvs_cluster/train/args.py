"""
Options of the training CLI (``dvs-cluster train``), kept apart from the training code.

So that ``dvs-cluster train --help`` does not import PyTorch (seconds, more on a small board) and works
without the ``[train]`` extra.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

PROG = "dvs-cluster train"
#: ``train/cli.BUDGETS`` names, for the help without importing it (a test keeps the two equal).
BUDGET_NAMES = ("full", "tiny")
DESCRIPTION = """\
Generate -> train seg, flow -> export -> DN targets -> train DN -> export (synthetic data only; the
shipped CamVid chain is python -m dvs_cluster.train.camvid_train, see models/README.md).

Stages checkpoint into --work so an interrupted run resumes (--stages picks what to (re)train).
Everything needed for the model card (seeds, steps, times, parameter counts, ONNX-vs-torch differences,
sizes, the exact command) goes to <out>/training.json; evaluate.py adds the measured metrics.
"""


def build_parser(budgets: Sequence[str] = BUDGET_NAMES, prog: str = PROG) -> argparse.ArgumentParser:
    """The options of ``dvs-cluster train`` (= ``python -m dvs_cluster.train``)."""
    ap = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--budget", choices=sorted(budgets), default="full", help="training budget (default: full)"
    )
    ap.add_argument("--out", type=Path, default=Path("models"), help="ONNX models and training.json")
    ap.add_argument("--work", type=Path, default=Path("build/train"), help="checkpoints")
    ap.add_argument(
        "--stages",
        default="seg,flow,dn,dn2",
        help="comma list of seg,flow,dn,dn2 (dn2: the DN v2 of the default flow source); the others are "
        "read from the ONNX files in --out",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", action="store_true", help="run evaluate.py on --out afterwards")
    return ap
