"""
`python -m dvs_cluster.train.threshold`: pick a model set's default DN threshold on real video.

The DN is trained on synthetic pairs; on real cameras its scores run high (the flow path agrees with
the seg path less than it predicts: docs/CAMVID.md), so a model set meant for real cameras records the
threshold that meets an agreement target on real video. Honest selection: the threshold is chosen on
the first ``--select`` frames of the video only (one pass over a grid of thresholds,
``realeval.video_sweep``) and then measured on the frames after them, which played no part in the
choice. The chosen value goes into the active DN's metadata (``dn.onnx``, or ``dn2_<flow>.onnx`` for the
DN v2 of ``--flow``) (``default_threshold``, read by
``model_defaults.default_threshold`` for every real source when no threshold is given; the synthetic source
keeps ``synthetic_threshold``, ``--synthetic``) and into ``training.json`` (``threshold_selection``),
which the model card shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import onnx

from dvs_cluster.train.data import log
from dvs_cluster.train.realeval import frames_from, video_sweep

GRID = [float(t) for t in range(85, 100)]


def pick(sweep: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The lowest threshold (the fastest) whose agreement reaches ``target``; None if none does."""
    ok = [r for r in sweep if r["agreement"] >= target]
    return min(ok, key=lambda r: r["threshold"]) if ok else None


def write_default(dn_path: Path, threshold: float, synthetic: float | None = None) -> None:
    """
    Set ``default_threshold`` (real video) and optionally ``synthetic_threshold`` in the DN's metadata.

    Other entries and the graph stay as they are.
    """
    entries = {"default_threshold": f"{threshold:g}"}
    if synthetic is not None:
        entries["synthetic_threshold"] = f"{synthetic:g}"
    set_metadata(dn_path, entries)


def set_metadata(path: Path, entries: dict[str, str]) -> None:
    """Add or replace ONNX metadata entries of ``path`` in place (graph and other entries unchanged)."""
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(entries)
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))


def main(argv: list[str] | None = None) -> int:
    """Sweep on the selection frames, pick, check on the rest, record."""
    from dvs_cluster.inference import DEFAULT_FLOW, OnnxModels, ThreadPolicy

    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.threshold", description=__doc__)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--flow", default=DEFAULT_FLOW, help=f"flow source (default {DEFAULT_FLOW})")
    ap.add_argument("--dn", default="auto", choices=("auto", "v1", "v2"), help="which DN gets the threshold")
    ap.add_argument("--video", required=True, help="video file / image folder (realeval.frames_from)")
    ap.add_argument("--target", type=float, default=90.0, help="agreement with the seg path, percent")
    ap.add_argument("--select", type=int, default=400, help="frames used to choose (the rest check)")
    ap.add_argument("--check-frames", type=int, default=None, help="frames checked after the selection")
    ap.add_argument("--grid", default=",".join(f"{t:g}" for t in GRID), help="thresholds tried")
    ap.add_argument(
        "--synthetic",
        type=float,
        default=90.0,
        help="threshold recorded for the synthetic source (synthetic_threshold; default DVSNet's 90, "
        "where the README's sweep puts it)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print, write nothing")
    a = ap.parse_args(argv)
    grid = [float(x) for x in a.grid.split(",") if x.strip()]
    models = OnnxModels(a.models, threads=ThreadPolicy(1), flow=a.flow, dn=a.dn)
    dn_file = models.files["dn" if models.dn_version == "v1" else "dn2"]
    log(f"[threshold] selecting on frames 0..{a.select - 1} of {a.video} over {len(grid)} thresholds")
    frames = frames_from(a.video)  # one pass over the video: selection frames, then the check frames
    sel = video_sweep(models, itertools.islice(frames, a.select), grid)
    for r in sel:
        log(f"[threshold] th {r['threshold']:g}: {r['agreement']:.2f} % at {r['speedup']:.2f}x")
    best = pick(sel, a.target)
    if best is None:
        print(
            f"no threshold in the grid reaches {a.target} % agreement on the selection frames",
            file=sys.stderr,
        )
        return 1
    th = float(best["threshold"])
    (check,) = video_sweep(models, itertools.islice(frames, a.check_frames), [th])
    log(
        f"[threshold] chose {th:g} ({best['agreement']:.2f} % at {best['speedup']:.2f}x on the selection); "
        f"check frames: {check['agreement']:.2f} % at {check['speedup']:.2f}x ({check['frames']} frames)"
    )
    record = {
        "threshold": th,
        "synthetic_threshold": a.synthetic,
        "target_agreement": a.target,
        "video": a.video,
        "flow_source": models.flow_source,
        "dn": models.dn_version,
        "dn_file": dn_file.name,
        "selection_frames": [0, a.select - 1],
        "selection": best,
        "check_frames": [a.select, a.select + check["frames"] - 1],
        "check": check,
        "grid": grid,
        "command": "python -m dvs_cluster.train.threshold "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if not a.dry_run:
        write_default(dn_file, th, a.synthetic)
        info_path = a.models / "training.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        if models.dn_version == "v1":
            info["threshold_selection"] = record
        else:
            info.setdefault("dn2", {}).setdefault(models.flow_kind, {})["threshold_selection"] = record
        info_path.write_text(json.dumps(info, indent=2))
    json.dump(record, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
