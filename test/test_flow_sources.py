"""Issue 18: flow sources (DIS), the DN v2 on decision cues, one thread policy for every session."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from runtime_support import shipped_model_dir

from dvs_cluster.core.cues import CUE_CHANNELS, decision_cues
from dvs_cluster.core.flow import DisFlow, FlowSpecError, canonical_flow_spec, parse_flow_spec, to_gray
from dvs_cluster.core.warp import warp
from dvs_cluster.inference import (
    DN2_FILES,
    ModelError,
    OnnxModels,
    ThreadPolicy,
    cpu_count,
    make_session,
    parse_provider_options,
)

ROOT = Path(__file__).resolve().parents[1]


def _texture(h: int = 256, w: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h // 4, w // 4), dtype=np.uint8)
    gray = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.stack([gray, np.roll(gray, 7, axis=1), 255 - gray], axis=2))


@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
def test_dis_backward_flow_of_a_known_shift(preset: str) -> None:
    """current(x) = key(x - 8, y + 4): content at x was at (x - 8, y + 4) in the key, flow (-2, +1) on 1/4."""
    key = _texture()
    cur = np.roll(np.roll(key, 8, axis=1), -4, axis=0)
    flow = DisFlow(preset)(key, cur)
    assert flow.shape == (2, 64, 128) and flow.dtype == np.float32
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(flow[0][inner]) == pytest.approx(-2.0, abs=0.15)
    assert np.median(flow[1][inner]) == pytest.approx(1.0, abs=0.15)
    # The one warp moves the key's content onto the current frame with that flow.
    key_small = cv2.resize(to_gray(key), (128, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    cur_small = cv2.resize(to_gray(cur), (128, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    warped = warp(key_small[None], flow)[0]
    assert np.abs(warped - cur_small)[inner].mean() < 0.25 * np.abs(key_small - cur_small)[inner].mean()


def test_dis_scale_keeps_the_grid_and_units() -> None:
    key = _texture(seed=1)
    cur = np.roll(key, 12, axis=1)
    full, half = DisFlow("fast")(key, cur), DisFlow("fast", 0.5)(key, cur)
    assert full.shape == half.shape == (2, 64, 128)
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(half[0][inner]) == pytest.approx(-3.0, abs=0.3)


def test_dis_flow_does_not_depend_on_the_sizes_seen_before() -> None:
    """An OpenCV DIS object reused on a new size gives another (and ~10x slower) flow: one per size."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur((rng.random((256, 512)) * 255).astype(np.uint8), (9, 9), 3)
    cur = np.ascontiguousarray(np.roll(img, 3, axis=1))
    fresh = DisFlow("ultrafast").gray_flow(img, cur)
    used = DisFlow("ultrafast")
    used.gray_flow(np.zeros((64, 96), np.uint8), np.zeros((64, 96), np.uint8))  # the warm-up's size
    np.testing.assert_array_equal(used.gray_flow(img, cur), fresh)


def test_flow_specs() -> None:
    assert parse_flow_spec("onnx") == ("onnx", "", 1.0)
    assert parse_flow_spec("dis") == ("dis", "ultrafast", 1.0)
    assert parse_flow_spec("DIS:Fast@0.5") == ("dis", "fast", 0.5)
    assert canonical_flow_spec("dis") == "dis:ultrafast"
    assert canonical_flow_spec("dis:medium@0.5") == "dis:medium@0.5"
    for bad in ("farneback", "dis:slow", "dis@0", "dis@1.5", "dis@x", "onnx:fast"):
        with pytest.raises(FlowSpecError):
            parse_flow_spec(bad)


def test_cues_see_a_scene_cut() -> None:
    key = _texture(seed=2)
    same = np.roll(key, 4, axis=1)
    other = _texture(seed=3)
    dis = DisFlow()
    cues = []
    for cur in (same, other):
        kg, cg = to_gray(key), to_gray(cur)
        c = decision_cues(kg, cg, dis.gray_flow(kg, cg))
        assert c.shape == (CUE_CHANNELS, 4, 8) and c.dtype == np.float32 and np.isfinite(c).all()
        cues.append(c)
    assert cues[1][0].mean() > 3 * cues[0][0].mean()  # residual: the warp explains a step, not a cut
    assert cues[0][3].mean() > 3 * cues[0][0].mean()  # the step's change is mostly motion


# -- DN v2 (shipped files) --------------------------------------------------------------------------------


def _synthetic_regions(seed: int, t: int) -> np.ndarray:
    from dvs_cluster.data.synthetic import SyntheticVideo

    img = SyntheticVideo(seed=seed).frame(t).image
    return np.ascontiguousarray(img[256:, :512])  # bottom-left region


@pytest.mark.parametrize("flow", ["dis", "onnx"])
def test_dn_v2_contract_and_scene_cut(flow: str) -> None:
    """The shipped DN v2 of each flow source loads, keeps its I/O, scores a cut far below a step."""
    d = shipped_model_dir()
    if not (d / DN2_FILES[parse_flow_spec(flow)[0]]).is_file():
        pytest.fail(f"{DN2_FILES[parse_flow_spec(flow)[0]]} is not shipped in {d}")
    m = OnnxModels(d, flow=flow, dn="v2", threads=ThreadPolicy(1))
    inputs = [(i.name, i.shape) for i in m.sessions["dn2"].get_inputs()]
    assert [n for n, _ in inputs] == ["cues", "age"]
    assert m.metadata["dn"]["flow_source"] == canonical_flow_spec(flow)  # trained for this flow
    key, step = _synthetic_regions(9030, 40), _synthetic_regions(9030, 41)
    cut = _synthetic_regions(9031, 40)
    _, f_step = m.flow(key, step)
    _, f_cut = m.flow(key, cut)
    s_step, s_cut = m.dn(f_step, 1), m.dn(f_cut, 1)
    assert 0.0 <= s_cut <= 100.0 and 0.0 <= s_step <= 100.0
    # A cut must take the seg path at every default threshold (all >= 90). Synthetic cuts stay road
    # on road, so the flow path's true agreement there is ~85 %; the DN scores them lower (~62-78).
    assert s_cut < 80.0 and s_step > s_cut + 15.0, (s_step, s_cut)
    assert m.dn(f_step, 20) <= s_step + 1.0  # an older key is not judged better


def test_dn_choice_errors() -> None:
    d = shipped_model_dir()
    with pytest.raises(ModelError, match="needs --flow onnx"):
        OnnxModels(d, flow="dis", dn="v1", warmup=False)
    with pytest.raises(ModelError, match="unknown flow source"):
        OnnxModels(d, flow="lucas-kanade", warmup=False)


def test_older_model_set_names_the_missing_dn2(tmp_path: Path) -> None:
    d = shipped_model_dir()
    for f in ("seg.onnx", "flow.onnx", "dn.onnx"):
        (tmp_path / f).write_bytes((d / f).read_bytes())
    with pytest.raises(ModelError, match=r"dn2_dis.onnx is missing .*--flow onnx"):
        OnnxModels(tmp_path, flow="dis", warmup=False)
    OnnxModels(tmp_path, flow="onnx", warmup=False)  # the paper's nets alone still work


# -- thread policy ----------------------------------------------------------------------------------------


def test_policy_session_options() -> None:
    opts = ThreadPolicy().session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == cpu_count()
    assert ThreadPolicy(1).session_options().intra_op_num_threads == 1
    assert (
        ThreadPolicy(spin=True).session_options().get_session_config_entry("session.intra_op.allow_spinning")
        == "1"
    )


def test_sessions_are_built_in_one_place() -> None:
    """No runtime module but inference.make_session constructs an onnxruntime InferenceSession."""
    offenders = []
    for path in sorted((ROOT / "dvs_cluster").rglob("*.py")):
        if "train" in path.relative_to(ROOT / "dvs_cluster").parts:
            continue  # training and export check their own files
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "InferenceSession":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(offenders) == 1 and offenders[0].startswith("dvs_cluster/inference.py:"), offenders


class _Recorder:
    """Wraps onnxruntime.InferenceSession: the options and providers of every session built."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import onnxruntime as ort

        self.calls: list[tuple[str, Any, Any]] = []
        real = ort.InferenceSession

        def make(path: str, sess_options: Any = None, providers: Any = None, **kw: Any) -> Any:
            self.calls.append((Path(path).name, sess_options, providers))
            return real(path, sess_options=sess_options, providers=providers, **kw)

        monkeypatch.setattr(ort, "InferenceSession", make)

    def check(self, threads: int) -> None:
        assert self.calls
        for name, opts, _ in self.calls:
            assert opts is not None, name
            assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0", name
            assert opts.intra_op_num_threads == threads, name


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "--frames", "1", "-q"],
        ["segment", "--frames", "1", "-q", "--flow", "onnx"],
        ["bench", "--frames", "1", "--configs", "segpath,single,single:onnx", "--sweep", ""],
    ],
)
def test_thread_policy_reaches_the_entry_points(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every session an entry point builds has spinning off and the policy's thread count."""
    from dvs_cluster.cli import main

    shipped_model_dir()
    rec = _Recorder(monkeypatch)
    assert main(argv) == 0
    rec.check(cpu_count())
    rec.calls.clear()
    assert main([*argv, "--threads", "1"]) == 0
    rec.check(1)
    capsys.readouterr()


def test_slave_builds_its_models_through_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvs-cluster slave` and `run`'s slaves build models with models_from_args (the same policy)."""
    import argparse

    from dvs_cluster.cli import models_from_args
    from dvs_cluster.nodes import cli as ncli

    shipped_model_dir()
    p = argparse.ArgumentParser()
    ncli._add_model_args(p)
    args = p.parse_args(["--threads", "1", "--flow", "dis:fast"])
    rec = _Recorder(monkeypatch)
    m = models_from_args(args)
    rec.check(1)
    assert m.flow_source == "dis:fast" and m.dn_version == "v2"
    assert "models_from_args(args)" in Path(ncli.__file__).read_text()


def test_provider_options_reach_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = parse_provider_options("cpu:use_arena=0;tensorrt:trt_engine_cache_enable=1,trt_fp16_enable=1")
    assert opts == {
        "CPUExecutionProvider": {"use_arena": "0"},
        "TensorrtExecutionProvider": {"trt_engine_cache_enable": "1", "trt_fp16_enable": "1"},
    }
    for bad in ("cpu", "cpu:use_arena", ":x=1"):
        with pytest.raises(ModelError, match="provider options"):
            parse_provider_options(bad)
    d = shipped_model_dir()
    rec = _Recorder(monkeypatch)
    make_session(
        d / "seg.onnx",
        ["CPUExecutionProvider"],
        ThreadPolicy(1),
        {"CPUExecutionProvider": {"use_arena": "0"}},
    )
    assert rec.calls[-1][2] == [("CPUExecutionProvider", {"use_arena": "0"})]
    with pytest.raises(ModelError, match="not in the providers list"):
        OnnxModels(d, provider_options="cuda:device_id=0", warmup=False)
