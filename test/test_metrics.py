import math

import numpy as np
import pytest

from dvs_cluster.core.metrics import ConfusionMatrix, LatencyRecorder, PathMix, confusion_matrix, fps, miou


def test_miou_hand_computed() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 7]], np.uint8)
    # class 0: tp 1, gt 2, pred 2 -> 1/3; class 1: tp 2, gt 2, pred 3 -> 2/3;
    # class 2: tp 1, gt 2, pred 1 -> 1/2
    # (the two ignored pixels count nowhere, class 7 is absent from GT)
    cm = ConfusionMatrix(num_classes=8)
    cm.update(pred, gt)
    iou = cm.iou()
    assert iou[:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(iou[3:]).all()
    assert list(cm.classes_present()) == [0, 1, 2]
    assert cm.miou() == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert miou(pred, gt, 8) == pytest.approx(cm.miou())
    assert cm.pixel_accuracy() == pytest.approx(100 * 4 / 6)


def test_confusion_accumulates_and_ignores() -> None:
    gt = np.full((3, 3), 255, np.uint8)
    assert confusion_matrix(gt, gt).sum() == 0
    cm = ConfusionMatrix()
    assert math.isnan(cm.miou())
    a = np.zeros((2, 2), np.uint8)
    cm.update(a, a)
    cm.update(a, a)
    assert cm.matrix[0, 0] == 8 and cm.miou() == 100.0
    with pytest.raises(ValueError):
        confusion_matrix(a, np.zeros((3, 3), np.uint8))


def test_out_of_range_prediction_counts_as_miss() -> None:
    gt = np.array([0, 0], np.uint8)
    pred = np.array([0, 200], np.uint8)
    assert miou(pred, gt) == pytest.approx(50.0)


def test_latency_fps_pathmix() -> None:
    rec = LatencyRecorder()
    for v in range(1, 101):
        rec.add("seg", float(v))
    rec.add_all({"flow": 2.0, "dn": 1.0}, prefix="r0/")
    s = rec.summary()
    assert s["seg"]["n"] == 100 and s["seg"]["mean"] == pytest.approx(50.5)
    assert s["seg"]["p50"] == pytest.approx(50.5) and s["seg"]["p99"] == pytest.approx(99.01)
    assert s["r0/flow"]["max"] == 2.0
    assert fps(30, 2.0) == 15.0 and fps(0, 0.0) == 0.0
    mix = PathMix()
    assert mix.seg_fraction == 0.0
    for p in ["seg", "flow", "flow", "flow"]:
        mix.add(p)
    assert mix.seg_fraction == 0.25 and mix.total == 4
    with pytest.raises(ValueError):
        mix.add("bogus")


def test_uint8_fast_path_counts_exactly_as_the_general_path() -> None:
    """Byte-pair counting (uint8 maps) gives the same matrix, misses and IoU as the int64 path."""
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 19, (37, 53)).astype(np.uint8)
    pred = rng.integers(0, 19, (37, 53)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.1] = 255  # ignored
    gt[rng.random(gt.shape) < 0.02] = 40  # out of range: not scored either way
    pred[rng.random(pred.shape) < 0.05] = 200  # an impossible class: wrong on its GT row
    fast, slow = ConfusionMatrix(), ConfusionMatrix()
    fast.update(pred, gt)
    slow.update(pred.astype(np.int64), gt.astype(np.int64))
    assert np.array_equal(fast.matrix, slow.matrix)
    assert np.array_equal(fast.classes_present(), slow.classes_present())
    np.testing.assert_array_equal(fast.iou(), slow.iou())
    assert fast.pixel_accuracy() == slow.pixel_accuracy()
    assert np.array_equal(
        confusion_matrix(pred, gt), confusion_matrix(pred.astype(np.int32), gt.astype(np.int32))
    )
    assert fast.matrix.sum() + fast._missed.sum() == int(((gt != 255) & (gt < 19)).sum())


def test_stream_latency_exact_for_short_runs_bounded_for_long() -> None:
    from dvs_cluster.core.metrics import StreamLatency, summarize

    rng = np.random.default_rng(0)
    values = rng.uniform(1.0, 50.0, 500).tolist()
    s = StreamLatency(window=1000)
    for v in values:
        s.add(v)
    want = summarize(values)
    got = s.summary()
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k]) for k in want)
    long = StreamLatency(window=100)
    for i in range(100_000):
        long.add(float(i % 1000))
    assert len(long.window) == 100
    sm = long.summary()
    assert sm["n"] == 100_000 and sm["max"] == 999.0 and sm["mean"] == pytest.approx(499.5)
    assert sm["p50"] == pytest.approx(949.5)  # the newest 100 values: 900..999
    assert StreamLatency().summary()["n"] == 0
