from pathlib import Path

import numpy as np
import pytest
from runtime_support import shipped_model_dir

from dvs_cluster.inference import (
    ModelError,
    OnnxModels,
    model_search_path,
    pad_to_multiple,
    resolve_model_dir,
    resolve_providers,
)


def test_pad_to_multiple() -> None:
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = pad_to_multiple(img, 4)
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[:5, :7], img)
    np.testing.assert_array_equal(out[7, 7], img[4, 6])  # edge replicated
    assert pad_to_multiple(np.zeros((32, 64, 3), np.uint8)).shape == (32, 64, 3)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVS_CLUSTER_MODELS", raising=False)
    cands = model_search_path()
    assert cands[-1] == Path(__file__).resolve().parent.parent / "models"
    assert str(cands[0]).endswith("share/dvs_cluster/models")
    assert model_search_path(tmp_path) == [tmp_path]
    monkeypatch.setenv("DVS_CLUSTER_MODELS", str(tmp_path))
    assert resolve_model_dir() == tmp_path
    assert resolve_model_dir(tmp_path) == tmp_path
    monkeypatch.setenv("DVS_CLUSTER_MODELS", str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="DVS_CLUSTER_MODELS"):
        resolve_model_dir()


def test_missing_and_malformed_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="seg.onnx is missing"):
        OnnxModels(tmp_path)
    (tmp_path / "seg.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="seg.onnx cannot be loaded"):
        OnnxModels(tmp_path)


def test_wrong_io_names(tmp_path: Path) -> None:
    d = shipped_model_dir()
    for f in ("seg.onnx", "flow.onnx", "dn.onnx"):
        (tmp_path / f).write_bytes((d / f).read_bytes())
    (tmp_path / "seg.onnx").write_bytes((d / "dn.onnx").read_bytes())  # dn graph under the seg name
    with pytest.raises(ModelError, match=r"seg.onnx has inputs \['features'\]"):
        OnnxModels(tmp_path, warmup=False)


def test_providers() -> None:
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelError, match="TensorrtExecutionProvider is not available.*Jetson"):
            resolve_providers(["tensorrt", "cpu"])
    with pytest.raises(ModelError, match="not available"):
        resolve_providers(["NoSuchExecutionProvider"])


@pytest.mark.parametrize(
    ("flow", "dn", "dn_input", "files"),
    [
        ("onnx", "v1", (64, 4, 8), {"seg", "flow", "dn"}),
        ("onnx", "v2", (8, 4, 8), {"seg", "flow", "dn"}),
        ("dis", "auto", (8, 4, 8), {"seg", "dn"}),
        ("dis:medium@0.5", "v2", (8, 4, 8), {"seg", "dn"}),
    ],
)
def test_shapes_odd_region(flow: str, dn: str, dn_input: tuple[int, ...], files: set[str]) -> None:
    m = OnnxModels(shipped_model_dir(), intra_op_threads=1, flow=flow, dn=dn)
    img = np.random.default_rng(0).integers(0, 256, (101, 150, 3), dtype=np.uint8)
    logits = m.seg(img)
    assert logits.shape == (19, 26, 38) and logits.dtype == np.float32
    fl, feats = m.flow(img, img)
    assert fl.shape == (2, 26, 38) and feats.shape == dn_input
    score = m.dn(feats, 3)
    assert isinstance(score, float) and -1e-3 <= score <= 100.001
    info = m.describe()
    assert info["providers"] == ["CPUExecutionProvider"] and set(info["metadata"]) == files
    assert info["threads"] == {"intra_op_threads": 1, "spinning": False}
