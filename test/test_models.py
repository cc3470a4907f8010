"""The shipped models honour the I/O contract of docs/DESIGN.md and reproduce the model card's seg mIoU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

MODELS = Path(__file__).resolve().parents[1] / "models"
FILES = ("seg.onnx", "flow.onnx", "dn.onnx")

pytestmark = pytest.mark.skipif(
    not all((MODELS / f).exists() for f in FILES), reason="shipped models not present in models/"
)


def _session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(MODELS / name), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("h", "w"), [(256, 512), (320, 576)])
def test_contract(h: int, w: int) -> None:
    rng = np.random.default_rng(1)
    n = 2
    key = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    cur = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)

    seg = _session("seg.onnx")
    assert [(i.name, i.type) for i in seg.get_inputs()] == [("image", "tensor(uint8)")]
    assert [o.name for o in seg.get_outputs()] == ["logits"]
    (logits,) = seg.run(None, {"image": key})
    assert logits.dtype == np.float32 and logits.shape == (n, 19, h // 4, w // 4)
    assert np.isfinite(logits).all()

    flow = _session("flow.onnx")
    assert [(i.name, i.type) for i in flow.get_inputs()] == [
        ("key", "tensor(uint8)"),
        ("current", "tensor(uint8)"),
    ]
    assert [o.name for o in flow.get_outputs()] == ["flow", "features"]
    fl, feats = flow.run(None, {"key": key, "current": cur})
    assert fl.dtype == np.float32 and fl.shape == (n, 2, h // 4, w // 4)
    assert feats.dtype == np.float32 and feats.shape == (n, 64, 4, 8)

    dn = _session("dn.onnx")
    assert [(i.name, i.type) for i in dn.get_inputs()] == [("features", "tensor(float)")]
    assert [o.name for o in dn.get_outputs()] == ["score"]
    (score,) = dn.run(None, {"features": feats})
    assert score.dtype == np.float32 and score.shape == (n, 1)
    assert np.isfinite(score).all() and (score >= 0).all() and (score <= 100).all()


def test_identical_frames_give_near_zero_flow() -> None:
    synthetic = pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    frame = synthetic.SyntheticVideo(seed=9999, width=1024, height=512).frame(3).image
    img = np.ascontiguousarray(frame[None, :256, :512])
    (fl,) = _session("flow.onnx").run(["flow"], {"key": img, "current": img})
    assert float(np.abs(fl).mean()) < 1.0


def test_metadata() -> None:
    import onnx

    for f in FILES:
        meta = {p.key: p.value for p in onnx.load(str(MODELS / f)).metadata_props}
        assert "training_command" in meta and "dvs_cluster_version" in meta, f
    assert (MODELS / "README.md").exists()


@pytest.mark.slow
def test_seg_miou_matches_model_card() -> None:
    """Recompute the card's held-out seg mIoU with the shipped file (same frames as evaluate.py)."""
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    from dvs_cluster.train.evaluate import seg_eval
    from dvs_cluster.train.flowpath import miou

    metrics = json.loads((MODELS / "metrics.json").read_text())
    got = miou(seg_eval(_session("seg.onnx")))
    assert abs(got - metrics["seg"]["miou"]) <= 2.0, (got, metrics["seg"]["miou"])


def test_flow_path_with_ground_truth_flow_bounds_the_flow_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """One held-out pair 3 frames apart: GT flow beats the net's flow, which beats copying the key."""
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    from dvs_cluster.train import evaluate as E

    monkeypatch.setattr(E, "FLOW_EVAL_SEEDS", (9010,))
    monkeypatch.setattr(E, "FLOW_EVAL_KEYS", (60,))
    monkeypatch.setattr(E, "INTERVALS", (3,))
    r = E.flow_eval(_session("seg.onnx"), _session("flow.onnx"))["3"]
    assert r["pairs"] == 1 and r["epe"] < r["epe_zero_flow"]
    assert r["miou_flow_path_gt_flow"] > r["miou_flow_path"] > r["miou_key_copy"]
    assert r["miou_seg_every_frame"] > r["miou_flow_path_gt_flow"]
