"""
``python -m dvs_cluster.train.dn2``: the DN v2 for one flow source, trained on CPU in minutes (issue 18).

Input: the decision cues of :mod:`dvs_cluster.core.cues` (residual, change, motion, motion edges,
outside share, texture on a 4 x 8 grid) and the key's age; target as DVSNet's DN: the agreement of the
flow path with the seg net on the current region (GT-ignored pixels left out), so no labels are needed
beyond the synthetic video's ignore mask. Samples: the DN budget's synthetic sequences (seeds 3000+),
key intervals 0..20 and cross-sequence pairs standing for scene cuts; held-out Spearman on seeds 9020+
as the model card's DN row.

Exported to ``<out>/dn2_<flow kind>.onnx`` (inputs ``cues`` [N, 8, 4, 8], ``age`` [N, 1]; output
``score`` [N, 1] in 0..100) with the flow source in its metadata; ``train/threshold.py`` then writes the
default thresholds into it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvs_cluster.core.cues import AGE_CAP, CUE_CHANNELS, CUE_GRID, CUE_NAMES
from dvs_cluster.core.flow import DisFlow, canonical_flow_spec, parse_flow_spec
from dvs_cluster.inference import DN2_FILES
from dvs_cluster.train import data as D
from dvs_cluster.train.budgets import BUDGETS
from dvs_cluster.train.cost import session
from dvs_cluster.train.data import log
from dvs_cluster.train.dnset import DNSamples, build, build_chain, cue_flow_fn
from dvs_cluster.train.flowpath import spearman
from dvs_cluster.train.loops import LoopConfig, _run
from dvs_cluster.train.nets import param_count

#: Held-out pairs, as the model card's DN row (train/evaluate.py).
EVAL_SEEDS = (9020, 9021, 9022)
EVAL_FRAMES = 60


class DecisionNetV2(nn.Module):
    """3x3 conv over the cue grid, its global mean and the age into a small MLP; 100 * sigmoid."""

    def __init__(self, conv: int = 24, hidden: int = 64) -> None:
        super().__init__()
        self.conv = nn.Conv2d(CUE_CHANNELS, conv, 3, 1, 1)
        n = conv * CUE_GRID[0] * CUE_GRID[1] + CUE_CHANNELS + 1
        self.fc1 = nn.Linear(n, hidden)
        self.fc2 = nn.Linear(hidden, 16)
        self.fc3 = nn.Linear(16, 1)
        nn.init.constant_(self.fc3.bias, 2.0)  # start near the typical agreement (~88 %)

    def forward(self, cues: Tensor, age: Tensor) -> Tensor:
        """Map cues [N, 8, 4, 8] and age [N, 1] (0..1) to score [N, 1], the predicted agreement (%)."""
        x = F.leaky_relu(self.conv(cues), 0.1)
        x = torch.cat([torch.flatten(x, 1), cues.mean(dim=(2, 3)), age], dim=1)
        x = F.leaky_relu(self.fc1(x), 0.1)
        x = F.leaky_relu(self.fc2(x), 0.1)
        return 100.0 * torch.sigmoid(self.fc3(x))


def ages(gaps: npt.NDArray[np.int32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """The age input: the key interval, or for cross-sequence pairs (gap -1) a random age 1..10."""
    a = np.where(gaps >= 0, gaps, rng.integers(1, 11, len(gaps))).astype(np.float32)
    out: npt.NDArray[np.float32] = (np.minimum(a, AGE_CAP) / AGE_CAP).reshape(-1, 1).astype(np.float32)
    return out


def flow_fn(models: Path, spec: str) -> Any:
    """The FlowFn of a flow source: DIS on each region, or flow.onnx of ``models``; cues as DN input."""
    kind, preset, scale = parse_flow_spec(spec)
    if kind == "dis":
        return cue_flow_fn(DisFlow(preset, scale))
    return cue_flow_fn(session(models / "flow.onnx", 2))


def samples(
    models: Path,
    spec: str,
    seeds: list[int],
    frames: int,
    gaps: int,
    cross: int,
    seed: int,
    propagate: bool = True,
) -> DNSamples:
    """
    Region pairs with cues and agreement targets, measured with ``models/seg.onnx``.

    ``propagate``: the runtime's flow path warping the previous step's output (``dnset.build_chain``,
    keys every ``gaps`` frames); else key -> current pairs at random intervals (``dnset.build``).
    """
    rng = np.random.default_rng(seed)
    seg = session(models / "seg.onnx", 2)
    if propagate:
        return build_chain(seg, flow_fn(models, spec), seeds, frames, gaps, 20, cross, rng)
    return build(seg, flow_fn(models, spec), seeds, frames, gaps, 20, cross, rng)


def evaluate(net: DecisionNetV2 | Any, s: DNSamples, seed: int = 12345) -> dict[str, Any]:
    """Spearman (all, within sequence), MAE of a torch net or an onnxruntime session on samples."""
    cues, targets, gaps = s.arrays()
    age = ages(gaps, np.random.default_rng(seed))
    if isinstance(net, nn.Module):
        with torch.no_grad():
            scores = net(torch.from_numpy(cues), torch.from_numpy(age)).numpy()[:, 0]
    else:
        scores = net.run(["score"], {"cues": cues, "age": age})[0][:, 0]
    inseq = gaps >= 0
    return {
        "samples": int(len(targets)),
        "cross_sequence_samples": int((~inseq).sum()),
        "spearman": spearman(scores, targets),
        "spearman_within_sequence": spearman(scores[inseq], targets[inseq]),
        "mae": float(np.abs(scores - targets).mean()),
        "target_mean": float(targets.mean()),
        "score_mean": float(scores.mean()),
        "cross_sequence_score_mean": float(scores[~inseq].mean()) if (~inseq).any() else None,
    }


def train(s: DNSamples, cfg: LoopConfig, seed: int) -> tuple[DecisionNetV2, Any]:
    """MSE on the agreement, as DVSNet's DN."""
    cues, targets, gaps = s.arrays()
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(cues)
    a = torch.from_numpy(ages(gaps, rng))
    y = torch.from_numpy(targets).view(-1, 1)
    torch.manual_seed(seed)
    net = DecisionNetV2()

    def step_fn(_: int) -> Tensor:
        idx = torch.from_numpy(rng.integers(0, len(x), cfg.batch))
        return F.mse_loss(net(x[idx], a[idx]), y[idx])

    res = _run("dn2", cfg, net, step_fn, list(net.parameters()), weight_decay=1e-4)
    return net, res


def export(net: DecisionNetV2, path: Path, s: DNSamples, meta: dict[str, str]) -> dict[str, float]:
    """ONNX with dynamic N, checked against torch on real samples."""
    import warnings

    import onnx
    import onnxruntime as ort

    from dvs_cluster import __version__

    cues, _, gaps = s.arrays()
    ex = (torch.from_numpy(cues[:4]), torch.from_numpy(ages(gaps[:4], np.random.default_rng(0))))
    net = net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            ex,
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["cues", "age"],
            output_names=["score"],
            dynamic_axes={"cues": {0: "N"}, "age": {0: "N"}, "score": {0: "N"}},
        )
    proto = onnx.load(str(path))
    full = {
        "dvs_cluster_version": __version__,
        "model": "dn2",
        "opset": "17",
        "inputs": "cues,age",
        "outputs": "score",
        "cues": ",".join(CUE_NAMES),
        "age": f"key age in frames / {AGE_CAP}, capped at 1",
        **meta,
    }
    del proto.metadata_props[:]
    for k, v in full.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"cues": ex[0].numpy(), "age": ex[1].numpy()})[0]
    with torch.no_grad():
        ref = net(*ex).numpy()
    return {"score": float(np.abs(got - ref).max())}


def keep_better(
    path: Path, previous: bytes, record: dict[str, Any], previous_record: dict[str, Any], ev: DNSamples
) -> dict[str, Any]:
    """
    The refit or the file it replaces, whichever ranks the held-out pairs better; the training record to keep.

    A new seg net moves the DN's targets, but a refit on 20 synthetic sequences can still lose to the DN
    it replaces (issue 19: 0.869 against 0.907), and the chain should not ship the worse of the two.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        old_path = Path(tmp) / path.name
        old_path.write_bytes(previous)
        old = evaluate(session(old_path, 1), ev)
    new_rho, old_rho = record["eval"]["spearman"], old["spearman"]
    log(f"[dn2] keep-better: refit {new_rho:.3f}, previous file {old_rho:.3f}")
    if new_rho >= old_rho:
        return {**record, "replaced": {"spearman": old_rho}}
    path.write_bytes(previous)
    return {
        **previous_record,
        "eval": {**old, "seeds": list(EVAL_SEEDS)},
        "kept_over_refit": {"command": record["command"], "spearman": new_rho, "eval_spearman_kept": old_rho},
    }


def main(argv: list[str] | None = None) -> int:
    """Build samples, train, export and evaluate the DN v2 of one flow source."""
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.dn2", description=__doc__)
    ap.add_argument("--models", type=Path, default=Path("models"), help="seg.onnx (+ flow.onnx) from here")
    ap.add_argument("--flow", default="dis", help="flow source: onnx | dis[:PRESET][@SCALE] (default dis)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: --models)")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="full", help="DN data sizes (train/cli.py)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seeds", type=int, default=None, help="synthetic sequences (default: the budget's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out Spearman")
    ap.add_argument(
        "--keep-better",
        action="store_true",
        help="if the output file exists, keep it when it scores a higher held-out Spearman than the refit",
    )
    ap.add_argument(
        "--warp-from",
        choices=("previous", "key"),
        default="previous",
        help="the flow path it judges: warping the previous step's output (the runtime default) or the key",
    )
    a = ap.parse_args(argv)
    if a.keep_better and a.no_eval:
        ap.error("--keep-better needs the held-out evaluation (drop --no-eval)")
    cmd = "python -m dvs_cluster.train.dn2 " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    torch.set_num_threads(a.threads)
    out = a.out or a.models
    spec = canonical_flow_spec(a.flow)
    kind = parse_flow_spec(spec)[0]
    b = BUDGETS[a.budget]
    t0 = time.time()
    seeds = list(range(D.DN_SEED0, D.DN_SEED0 + (a.seeds or b.dn_seeds)))
    chain = a.warp_from == "previous"
    tr = samples(a.models, spec, seeds, b.dn_frames, b.dn_gaps, b.dn_cross, a.seed, chain)
    t_data = time.time() - t0
    log(f"[dn2] {len(tr.targets)} training samples ({spec}) in {t_data:.0f}s")
    cfg = LoopConfig(a.steps, 256, 0, 0, 2e-3, log_every=500)
    net, res = train(tr, cfg, a.seed)
    path = out / DN2_FILES[kind]
    previous = path.read_bytes() if a.keep_better and path.is_file() else None
    meta = {
        "training_command": cmd,
        "flow_source": spec,
        "warp_from": a.warp_from,
        "train_seeds": f"{seeds[0]}-{seeds[-1]}",
        "steps": str(res.steps),
        "score": "predicted % of region pixels where the flow path agrees with the seg net (0..100)",
    }
    diff = export(net, path, tr, meta)
    log(f"[dn2] exported {path} (max |onnx - torch| {diff['score']:.2e})")
    record: dict[str, Any] = {
        "command": cmd,
        "flow_source": spec,
        "warp_from": a.warp_from,
        "params": param_count(net),
        "samples": len(tr.targets),
        "train_seeds": [seeds[0], seeds[-1]],
        "data_seconds": round(t_data, 1),
        "loop": asdict(cfg),
        "loop_seconds": round(res.seconds, 1),
        "steps": res.steps,
        "final_loss_ema": round(res.final_loss, 3),
        "onnx_max_abs_diff": diff,
        "size_mb": round(path.stat().st_size / 1e6, 3),
    }
    if not a.no_eval:
        ev = samples(a.models, spec, list(EVAL_SEEDS), EVAL_FRAMES, 3, 20, 12345, chain)
        sess = session(path, 1)
        record["eval"] = {**evaluate(sess, ev), "seeds": list(EVAL_SEEDS)}
        log(f"[dn2] held-out: {record['eval']}")
    record["total_seconds"] = round(time.time() - t0, 1)
    info_path = out / "training.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    if previous is not None:
        record = keep_better(path, previous, record, info.get("dn2", {}).get(kind, {}), ev)
    info.setdefault("dn2", {})[kind] = record
    info_path.write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
