"""Real-data layer (issue 9): CamVid/Cityscapes loaders, class mapping, mixed training, real evaluation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fake_models import FakeModels

from dvs_cluster.core.classes import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from dvs_cluster.train import datasets as R

ROOT = Path(__file__).resolve().parents[1]
CAMVID_TAR = ROOT.parent / "shared" / "datasets" / "camvid.tar"
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_camvid = pytest.mark.skipif(
    not CAMVID_TAR.is_file() and R.find_camvid() is None,
    reason="CamVid absent (../shared/datasets/camvid.tar not found and no extracted copy)",
)
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not importable: install the [train] extra")


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = R.find_camvid()
    if found is not None:
        return found
    return R.extract_camvid(CAMVID_TAR, tmp_path_factory.mktemp("cache") / "camvid")


def test_camvid_class_mapping() -> None:
    """The README's mapping, Bicyclist -> rider, unlabelled/out of range -> 255, sets start canonical."""
    named = {c: CLASS_NAMES[R.CAMVID_LUT[i]] for i, c in enumerate(R.CAMVID_CLASSES)}
    assert named == {
        "Sky": "sky",
        "Building": "building",
        "Pole": "pole",
        "Road": "road",
        "Pavement": "sidewalk",
        "Tree": "vegetation",
        "SignSymbol": "traffic sign",
        "Fence": "fence",
        "Car": "car",
        "Pedestrian": "person",
        "Bicyclist": "rider",
    }
    assert R.CAMVID_LUT[R.CAMVID_UNLABELLED] == IGNORE_LABEL
    assert (R.CAMVID_LUT[12:] == IGNORE_LABEL).all()
    for c, members in enumerate(R.CAMVID_SETS):
        assert members[0] == R.CAMVID_TO_TRAINID[c]
    back = R.trainid_to_camvid()
    assert all(back[t] != IGNORE_LABEL for t in range(NUM_CLASSES))  # every trainId folds somewhere
    assert [int(back[t]) for t in (12, 17, 18)] == [10, 10, 10]  # rider, motorcycle, bicycle -> Bicyclist
    sets = R.camvid_target_sets()
    assert sets[13, [13, 14, 15, 16]].all() and sets[13].sum() == 4
    assert (sets[11] == np.eye(NUM_CLASSES, dtype=bool)[11]).all()


def test_cityscapes_layout(tmp_path: Path) -> None:
    """Images + label PNGs in Cityscapes layout, labelIds mapped to trainIds."""
    img_dir = tmp_path / "leftImg8bit" / "val" / "city"
    lab_dir = tmp_path / "gtFine" / "val" / "city"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    cv2.imwrite(str(img_dir / "city_000_000019_leftImg8bit.png"), np.zeros((32, 64, 3), np.uint8))
    lab = np.full((32, 64), 7, np.uint8)  # road
    lab[:, :8] = 26  # car
    lab[0, 0] = 0  # unlabeled
    cv2.imwrite(str(lab_dir / "city_000_000019_gtFine_labelIds.png"), lab)
    pl = R.cityscapes_pairs(tmp_path, "val", "labelIds")
    assert len(pl) == 1
    s = R.load_pairs(pl)
    assert s.labels[0].dtype == np.uint8 and s.labels[0].shape == (32, 64)
    assert s.labels[0][0, 0] == IGNORE_LABEL and s.labels[0][5, 0] == 13 and s.labels[0][5, 20] == 0
    assert R.runtime_scale(2048, 1024) == 0.5


def test_crop_at_scale_and_flip() -> None:
    """Scale 1 copies the window; a flip mirrors it; outside the image labels are 255."""
    img = np.arange(20 * 30 * 3, dtype=np.uint32).reshape(20, 30, 3).astype(np.uint8)
    lab = (np.arange(20 * 30).reshape(20, 30) % 19).astype(np.uint8)
    im, lb = R.crop_at_scale(img, lab, 1.0, 4, 2, 8, 10, False)
    assert (im == img[2:10, 4:14]).all() and (lb == lab[2:10, 4:14]).all()
    im, lb = R.crop_at_scale(img, lab, 1.0, 4, 2, 8, 10, True)
    assert (lb == lab[2:10, 4:14][:, ::-1]).all()
    _, lb = R.crop_at_scale(img, lab, 1.0, -5, 0, 8, 10, False)
    assert (lb[:, :5] == IGNORE_LABEL).all()


@needs_camvid
def test_camvid_loader_shapes(camvid_root: Path) -> None:
    """Split sizes of the README, RGB uint8 480x360 images, trainId labels, crops at the run-time scale."""
    sizes = {s: len(R.camvid_pairs(camvid_root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 367, "val": 101, "test": 233}
    s = R.load_pairs(R.camvid_pairs(camvid_root, "test"), limit=2)
    assert len(s) == 2
    assert s.images[0].shape == (360, 480, 3) and s.images[0].dtype == np.uint8
    assert s.labels[0].shape == (360, 480) and s.labels[0].dtype == np.uint8
    valid = set(R.CAMVID_TO_TRAINID) | {IGNORE_LABEL}
    assert set(np.unique(s.labels[0]).tolist()) <= valid
    xs, ys = R.real_crops(s, 3, 256, 256, np.random.default_rng(0))
    assert xs.shape == (3, 256, 256, 3) and xs.dtype == np.uint8
    assert ys.shape == (3, 256, 256) and ys.dtype == np.uint8
    assert R.runtime_scale(480, 360) == pytest.approx(512 / 360)


def test_camvid_scores_grouped_vs_strict() -> None:
    """A truck predicted on CamVid Car pixels is right when grouped, wrong when strict."""
    from dvs_cluster.train.realeval import camvid_confusion, camvid_scores

    gt = np.array([[8, 8, 3, 11]], np.uint8)  # Car, Car, Road, Unlabelled
    pred = np.array([[14, 13, 0, 5]], np.uint8)  # truck, car, road, pole (ignored pixel)
    sc = camvid_scores(camvid_confusion(pred, gt))
    assert sc["per_class_iou"]["Car"] == pytest.approx(100.0)
    assert sc["per_class_iou"]["Road"] == pytest.approx(100.0)
    assert sc["per_class_iou_strict"]["Car -> car"] == pytest.approx(50.0)
    assert sc["per_class_iou"]["Sky"] is None


def test_video_agreement_tiny_clip() -> None:
    """A still clip: DVS equals the seg path everywhere after the key; a moving clip agrees less."""
    from dvs_cluster.train.realeval import video_sweep

    def video_agreement(m: Any, frames: list[np.ndarray], th: float, w: int, h: int) -> dict[str, Any]:
        return video_sweep(m, frames, [th], w, h, max_age=0)[0]  # DVSNet's rule alone (no age cap)

    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    res = video_agreement(FakeModels(), [still] * 5, 90.0, 128, 64)
    assert res["frames"] == 5 and res["agreement"] == pytest.approx(100.0)
    assert res["seg_fraction"] == pytest.approx(1 / 5) and res["speedup"] > 0
    moving = [np.roll(still, 6 * t, axis=1) for t in range(5)]
    res = video_agreement(FakeModels(), moving, 10.0, 128, 64)  # low threshold: flow path always
    assert res["seg_fraction"] == pytest.approx(1 / 5)
    assert 0.0 <= res["agreement"] < 100.0 and res["agreement_min_frame"] <= res["agreement"]


def test_card_real_sections() -> None:
    """The card renders the CamVid and video sections only when metrics have them."""
    from dvs_cluster.train.card import real_sections

    assert real_sections({}, {}) == []
    m = {
        "camvid": {"split": "test", "miou": 51.0, "per_class_iou": {"Sky": 90.0}, "images": 233},
        "video": {"video": "v.avi", "frames": 3, "agreement": 93.0, "speedup": 2.5},
    }
    text = "\n".join(real_sections({}, m))
    assert "CamVid test mIoU 51.00" in text and "| Sky | 90.00 |" in text and "2.50" in text
    assert "research use" in text


@needs_torch
@pytest.mark.train
def test_set_cross_entropy_matches_ce() -> None:
    """Identity sets give F.cross_entropy; a wider set never costs more."""
    import torch
    import torch.nn.functional as F

    from dvs_cluster.train.camvid_train import set_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 4, 5, generator=g)
    y = torch.randint(0, NUM_CLASSES, (2, 4, 5), generator=g)
    y[0, 0, 0] = IGNORE_LABEL
    w = torch.rand(NUM_CLASSES, generator=g) + 0.5
    ident = torch.from_numpy(np.stack([R.identity_sets(), R.identity_sets()]))
    src = torch.tensor([0, 1])
    ref = F.cross_entropy(logits, y, weight=w, ignore_index=IGNORE_LABEL)
    got = set_cross_entropy(logits, y, src, ident, w)
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    wide = torch.from_numpy(np.stack([R.identity_sets(), R.camvid_target_sets()]))
    assert float(set_cross_entropy(logits, y, src, wide, w)) <= float(got) + 1e-6


@needs_torch
@pytest.mark.train
def test_set_lovasz_matches_the_paper_loop() -> None:
    """Identity sets give Berman et al.'s per-class loop; a perfect net scores 0; wider sets cost no more."""
    import torch
    import torch.nn.functional as F

    from dvs_cluster.train.camvid_train import set_lovasz

    def reference(logits: torch.Tensor, y: torch.Tensor) -> float:
        # lovasz_softmax_flat of the authors' repository (classes="present"), one class at a time
        p = F.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, NUM_CLASSES)
        lab = y.reshape(-1)
        p, lab = p[lab != IGNORE_LABEL], lab[lab != IGNORE_LABEL]
        losses = []
        for c in range(NUM_CLASSES):
            fg = (lab == c).float()
            if fg.sum() == 0:
                continue
            errors, perm = torch.sort((fg - p[:, c]).abs(), descending=True)
            gt = fg[perm]
            inter, union = gt.sum() - gt.cumsum(0), gt.sum() + (1 - gt).cumsum(0)
            jac = 1.0 - inter / union
            jac[1:] = jac[1:] - jac[:-1]
            losses.append(torch.dot(errors, jac))
        return float(torch.stack(losses).mean())

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 6, 7, generator=g)
    y = torch.randint(0, NUM_CLASSES, (2, 6, 7), generator=g)
    y[0, 0, :3] = IGNORE_LABEL
    ident = torch.from_numpy(np.stack([R.identity_sets(), R.identity_sets()]))
    src = torch.tensor([0, 1])
    got = set_lovasz(logits, y, src, ident)
    assert float(got) == pytest.approx(reference(logits, y), rel=1e-5)
    perfect = 40.0 * F.one_hot(torch.where(y == IGNORE_LABEL, 0, y), NUM_CLASSES).permute(0, 3, 1, 2).float()
    assert float(set_lovasz(perfect, y, src, ident)) < 1e-6
    wide = torch.from_numpy(np.stack([R.identity_sets(), R.camvid_target_sets()]))
    assert float(set_lovasz(logits, y, src, wide)) <= float(got) + 1e-6
    logits.requires_grad_(True)
    set_lovasz(logits, y, src, ident).backward()
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())
    assert float(logits.grad.abs().sum()) > 0


@needs_camvid
@needs_torch
def test_video_sweep_shares_the_reference() -> None:
    """One pass, several thresholds: a threshold above every score is the seg path (100 %, no speedup)."""
    from dvs_cluster.train.realeval import video_sweep

    rng = np.random.default_rng(1)
    still = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    moving = [np.roll(still, 6 * t, axis=1) for t in range(5)]
    low, high = video_sweep(FakeModels(), moving, [10.0, 101.0], 128, 64, max_age=0)  # no age cap
    assert high["seg_fraction"] == pytest.approx(1.0) and high["agreement"] == pytest.approx(100.0)
    assert low["seg_fraction"] == pytest.approx(1 / 5) and low["agreement"] < 100.0
    assert low["segpath_ms_per_frame"] == high["segpath_ms_per_frame"]  # the shared reference
    one = video_sweep(FakeModels(), moving, [10.0], 128, 64, max_age=0)[0]
    assert one["agreement"] == pytest.approx(low["agreement"])


def test_camera_motion_views() -> None:
    """A static camera sees the key (noise aside); a moving one leaves border pixels unmapped (invalid)."""
    from dvs_cluster.train.dnset import camera_motion, camera_view

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8), (256, 128))
    view, valid = camera_view(img, np.eye(3, dtype=np.float32), rng, noise=0.0)
    assert valid.min() == 255 and np.abs(view.astype(int) - img).max() <= 0.03 * 255 + 1
    moved = [camera_motion(256, 128, 8, rng, static_share=0.0) for _ in range(5)]
    assert all(not np.allclose(h, np.eye(3)) for h in moved)
    shifted = np.array([[1, 0, 10], [0, 1, 0], [0, 0, 1]], np.float32)
    _, valid = camera_view(img, shifted, rng, noise=0.0)
    assert (valid[:, :10] == 0).all() and (valid[:, 12:] == 255).all()


def test_real_pairs_with_the_shipped_nets() -> None:
    """build_real on two images with the shipped ONNX nets: 4 samples per pair, targets in [0, 100]."""
    from dvs_cluster.train.cost import session
    from dvs_cluster.train.dnset import build_real

    rng = np.random.default_rng(0)
    imgs = [cv2.resize(rng.integers(0, 255, (45, 60, 3), dtype=np.uint8), (480, 360)) for _ in range(2)]
    s = build_real(
        session(ROOT / "models" / "seg.onnx", 1), session(ROOT / "models" / "flow.onnx", 1), imgs, 2, 5, rng
    )
    feats, targets, gaps = s.arrays()
    assert feats.shape[0] == targets.shape[0] == 2 * 2 * 4 and feats.ndim == 4
    assert (targets >= 0).all() and (targets <= 100).all() and ((gaps >= 1) & (gaps <= 5)).all()


@pytest.mark.train
def test_mixed_smoke_training(tmp_path: Path, camvid_root: Path) -> None:
    """camvid-tiny: 2 steps on synthetic + CamVid, export, DN re-fit; the ONNX seg keeps the contract."""
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    import onnxruntime as ort

    from dvs_cluster.train.camvid_train import main

    out = tmp_path / "models"
    rc = main(
        [
            "--budget",
            "camvid-tiny",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--base",
            str(ROOT / "models"),
            "--camvid",
            str(camvid_root),
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    sess = ort.InferenceSession(str(out / "seg.onnx"), providers=["CPUExecutionProvider"])
    (lg,) = sess.run(None, {"image": np.zeros((1, 256, 512, 3), np.uint8)})
    assert lg.shape == (1, NUM_CLASSES, 64, 128) and lg.dtype == np.float32
    assert (out / "dn.onnx").is_file() and (out / "flow.onnx").is_file()
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["train_real"] == "camvid-train"
    info = json.loads((out / "training.json").read_text())
    assert info["stages"]["dn"]["samples_real"] == 4 * 4  # camvid-tiny: 1 pair per image, 4 images
    # Warm start from the checkpoint just written: steps add up, a width mismatch is refused.
    ck = tmp_path / "work" / "seg_camvid.pt"
    args = ["--budget", "camvid-tiny", "--out", str(tmp_path / "m2"), "--work", str(tmp_path / "w2")]
    args += ["--base", str(out), "--camvid", str(camvid_root), "--threads", "1", "--stages", "seg"]
    assert main([*args, "--init", str(ck), "--width", "wide"]) == 2
    assert main([*args, "--init", str(ck)]) == 0
    info2 = json.loads((tmp_path / "m2" / "training.json").read_text())
    assert info2["stages"]["seg"]["warm_start"]["prior_steps"] == info["stages"]["seg"]["steps"]


@needs_torch
@needs_camvid
@pytest.mark.train
def test_device_sampler_training_then_export_elsewhere(tmp_path: Path, camvid_root: Path) -> None:
    """gpu-tiny: train with the device sampler, checkpoint only; a second run exports it and records it."""
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    import onnxruntime as ort

    from dvs_cluster.train.camvid_train import main

    common = ["--budget", "gpu-tiny", "--camvid", str(camvid_root), "--threads", "1"]
    work, out = tmp_path / "work", tmp_path / "models"
    cache = tmp_path / "cache"
    train = [*common, "--stages", "seg", "--no-export", "--work", str(work), "--out", str(tmp_path / "none")]
    assert main([*train, "--batch", "1"]) == 2  # every batch holds a synthetic and a real crop
    assert main([*train, "--synth-cache", str(cache), "--batch", "2"]) == 0
    # --out holds --base's files (copied as always) and no new seg.onnx.
    assert (tmp_path / "none" / "seg.onnx").read_bytes() == (ROOT / "models" / "seg.onnx").read_bytes()
    assert len(list(cache.glob("*.npy"))) == 2  # the synthetic set, kept for the next run
    ck = work / "seg_camvid.pt"
    assert ck.is_file()
    assert main([*common, "--stages", "export", "--out", str(out), "--base", str(ROOT / "models")]) == 2
    export = [*common, "--stages", "export", "--init", str(ck), "--out", str(out)]
    assert main([*export, "--base", str(ROOT / "models")]) == 0
    sess = ort.InferenceSession(str(out / "seg.onnx"), providers=["CPUExecutionProvider"])
    (lg,) = sess.run(None, {"image": np.zeros((1, 256, 512, 3), np.uint8)})
    assert lg.shape == (1, NUM_CLASSES, 64, 128)
    seg = json.loads((out / "training.json").read_text())["stages"]["seg"]
    assert seg["steps"] == 3 and seg["partial"] is False and "--no-export" in seg["command"]
    assert "--stages export" in seg["exported_by"] and seg["onnx_max_abs_diff"]["logits"] < 1e-3
    assert "rare-class sampling" in seg["data_description"]
    # --batch 2 of a budget of 4 with 2 real: the real share is kept, at least one of each.
    assert seg["loop"]["batch"] == 2 and "1 of 2 crops real" in seg["data_description"]


def test_real_data_helpers_do_not_import_torch() -> None:
    """datasets.py and realeval.py run on numpy/onnxruntime only (evaluation without the [train] torch)."""
    import ast

    for name in ("datasets", "realeval"):
        tree = ast.parse((ROOT / "dvs_cluster" / "train" / f"{name}.py").read_text())
        mods = {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        } | {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "torch" not in mods, name


@needs_torch
def test_threshold_pick_and_record(tmp_path: Path) -> None:
    """The lowest threshold reaching the target wins; it lands in dn.onnx metadata the runtime reads."""
    import shutil

    from dvs_cluster.bench import default_threshold, resolve_threshold
    from dvs_cluster.inference import OnnxModels
    from dvs_cluster.train.threshold import pick, write_default

    sweep = [{"threshold": t, "agreement": a} for t, a in [(90, 84.0), (95, 89.9), (96, 91.0), (97, 95.0)]]
    assert pick(sweep, 90.0)["threshold"] == 96  # type: ignore[index]
    assert pick(sweep, 99.0) is None
    for f in ("seg.onnx", "flow.onnx", "dn.onnx"):
        shutil.copy2(ROOT / "models" / f, tmp_path / f)
    write_default(tmp_path / "dn.onnx", 96.0, synthetic=90.0)
    models = OnnxModels(tmp_path, flow="onnx")  # the FlowNet path's DN v1 (dn.onnx) holds the pick
    assert default_threshold(models) == 96.0 and default_threshold(models, synthetic=True) == 90.0
    assert resolve_threshold(models, -1.0) == 96.0 and resolve_threshold(models, -2.0) == 90.0
    assert resolve_threshold(models, 42.0) == 42.0


def test_drop_from_sets_keeps_only_own_pixels() -> None:
    """``--sets-drop wall``: a CamVid Building pixel trains building only; nothing else changes."""
    real = R.RealSet("x", [], [], R.camvid_target_sets())
    wall, building = CLASS_NAMES.index("wall"), CLASS_NAMES.index("building")
    assert real.sets[building, wall]  # the default lets Building pixels be called wall
    dropped = R.drop_from_sets(real, ["wall"])
    assert dropped.sets[:, wall].sum() == 1 and dropped.sets[wall, wall]  # only a wall label accepts wall
    assert dropped.sets[building, building] and not dropped.sets[building, wall]
    others = [k for k in range(NUM_CLASSES) if k != wall]
    assert np.array_equal(dropped.sets[:, others], real.sets[:, others])
    assert real.sets[building, wall]  # the input is not modified
    with pytest.raises(ValueError, match="unknown class"):
        R.drop_from_sets(real, ["walls"])


@needs_camvid
def test_segment_cli_labels_score_as_the_evaluator(tmp_path: Path, camvid_root: Path) -> None:
    """The CamVid figure holds through `dvs-cluster segment`: its PNGs score as camvid_eval's pipeline."""
    import shutil

    from dvs_cluster.cli import main
    from dvs_cluster.train.cost import session
    from dvs_cluster.train.realeval import camvid_confusion, camvid_score_labels, segment_frame

    pairs = R.camvid_pairs(camvid_root, "test")
    order = sorted(range(len(pairs.images)), key=lambda i: pairs.images[i].name)[:3]
    src = tmp_path / "test"
    src.mkdir()
    for i in order:
        shutil.copy2(pairs.images[i], src / pairs.images[i].name)
    labels = tmp_path / "labels"
    args = ["segment", "--source", str(src), "--policy", "segpath", "--save-labels", str(labels), "-q"]
    assert main([*args, "--models", str(ROOT / "models")]) == 0
    got = camvid_score_labels(camvid_root, "test", labels, limit=3)
    seg = session(ROOT / "models" / "seg.onnx", 1)
    raw = np.arange(256, dtype=np.uint8)
    ref = np.sum(
        [
            camvid_confusion(
                segment_frame(seg, R.read_rgb(pairs.images[i])), R.read_label(pairs.labels[i], raw)
            )
            for i in order
        ],
        axis=0,
    )
    conf = np.asarray(got["confusion"])
    assert got["images"] == 3 and int(conf.sum()) == int(ref.sum()) > 3 * 400 * 300
    # Same pixels, same classes, up to argmax ties between thread counts.
    assert np.abs(conf - ref).sum() <= 0.002 * ref.sum(), np.abs(conf - ref).sum() / ref.sum()
    with pytest.raises(ValueError, match="3 label PNGs"):
        camvid_score_labels(camvid_root, "test", labels, limit=4)


def test_card_lists_a_continued_seg_run_and_the_chain() -> None:
    """A seg net from two commands (--init-from) lists both; seg_chain.sh's line replaces the DN lines."""
    from dvs_cluster.train.card import _home, render

    training = json.loads((ROOT / "models" / "training.json").read_text())
    metrics = json.loads((ROOT / "models" / "metrics.json").read_text())
    seg = training["stages"]["seg"]
    training["stages"]["seg"] = {**seg, "command": "train A && train B", "commands": None}
    training["stages"]["seg"]["exported_by"] = None
    training.pop("chain_command", None)  # the shipped set may have come through the chain
    text = render(training, metrics)
    assert "      train A\n      train B\n" in text and _home(training["stages"]["dn"]["command"]) in text
    training["chain_command"] = "bash scripts/seg_chain.sh build/x"
    text = render(training, metrics)
    scratch = text.split("From scratch")[1].split("The commands that produced")[0]
    assert "train B\n      bash scripts/seg_chain.sh build/x\n" in scratch
    assert training["stages"]["dn"]["command"] not in scratch
