"""Tests of the procedural driving video: determinism, GT flow consistency, scene cuts, class coverage."""

from __future__ import annotations

import numpy as np
import pytest

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.warp import warp_labels
from dvs_cluster.data.synthetic import (
    DEFAULT_SEED,
    SyntheticFrame,
    SyntheticVideo,
    default_sample,
)

W, H = 512, 256


@pytest.fixture(scope="module")
def video() -> SyntheticVideo:
    return SyntheticVideo(seed=3, width=W, height=H)


def test_frame_contract(video: SyntheticVideo) -> None:
    f = video.frame(0)
    assert isinstance(f, SyntheticFrame)
    assert f.index == 0 and f.cut is False
    assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
    assert f.labels.shape == (H, W) and f.labels.dtype == np.uint8
    assert int(f.labels.max()) < NUM_CLASSES
    fl, valid = video.flow(0, 2)
    assert fl.shape == (2, H, W) and fl.dtype == np.float32
    assert valid.shape == (H, W) and valid.dtype == np.bool_
    assert np.isfinite(fl).all()


def test_any_size() -> None:
    v = SyntheticVideo(seed=1, width=100, height=60)
    f = v.frame(7)
    assert f.image.shape == (60, 100, 3) and f.labels.shape == (60, 100)
    fl, valid = v.flow(5, 7)
    assert fl.shape == (2, 60, 100) and valid.any()


def test_determinism_random_access() -> None:
    a = SyntheticVideo(seed=11, width=W, height=H)
    b = SyntheticVideo(seed=11, width=W, height=H)
    ts = [40, 3, 40, 17]
    fa = [a.frame(t) for t in ts]
    fb = [b.frame(t) for t in sorted(set(ts), reverse=True)]
    by_t = {f.index: f for f in fb}
    for f in fa:
        g = by_t[f.index]
        assert f.image.tobytes() == g.image.tobytes()
        assert f.labels.tobytes() == g.labels.tobytes()
        assert f.cut == g.cut
    fl_a, va = a.flow(12, 17)
    b.frame(3)  # different cache state
    fl_b, vb = b.flow(12, 17)
    assert fl_a.tobytes() == fl_b.tobytes() and va.tobytes() == vb.tobytes()
    c = SyntheticVideo(seed=12, width=W, height=H)
    assert c.frame(3).image.tobytes() != fa[1].image.tobytes()
    assert c.frame(3).labels.tobytes() != fa[1].labels.tobytes()


@pytest.mark.parametrize("interval", [1, 5])
def test_gt_flow_consistency(video: SyntheticVideo, interval: int) -> None:
    for t_cur in (20, 61):
        t_key = t_cur - interval
        fl, valid = video.flow(t_key, t_cur)
        assert valid.mean() > 0.5
        warped = warp_labels(video.frame(t_key).labels, fl)
        agree = (warped == video.frame(t_cur).labels)[valid].mean()
        assert agree >= 0.95, (interval, t_cur, agree)
        # the flow is not trivial: the camera moves forward
        assert np.abs(fl[:, valid]).mean() > 0.2


def test_flow_identity_and_moving_objects(video: SyntheticVideo) -> None:
    fl, valid = video.flow(30, 30)
    assert valid.all() and np.abs(fl).max() < 1e-3


def test_scene_cut() -> None:
    v = SyntheticVideo(seed=5, width=W, height=H, cut_every=20)
    assert not v.frame(19).cut and v.frame(20).cut and not v.frame(21).cut
    fl, valid = v.flow(18, 21)
    assert not valid.any()
    _, valid_same = v.flow(20, 23)
    assert valid_same.mean() > 0.5
    # new scene: the image content changes completely
    a, b = v.frame(19), v.frame(20)
    assert (a.labels != b.labels).mean() > 0.2


def test_default_cuts_are_seeded_150_to_300() -> None:
    v = SyntheticVideo(seed=2, width=64, height=32)
    scenes = [v.scene_of(t) for t in range(0, 1000)]
    starts = [t for t in range(1, 1000) if scenes[t] != scenes[t - 1]]
    assert starts, "no cut in 1000 frames"
    lengths = np.diff([0, *starts])
    assert ((lengths >= 150) & (lengths <= 300)).all()
    t = starts[0]
    assert v.frame(t).cut and not v.frame(t - 1).cut
    _, valid = v.flow(t - 1, t)
    assert not valid.any()


def test_class_coverage() -> None:
    v = SyntheticVideo(seed=0, width=W, height=H, cut_every=40)
    present = np.zeros(NUM_CLASSES, bool)
    for t in range(0, 160, 8):
        present |= np.bincount(v.frame(t).labels.ravel(), minlength=256)[:NUM_CLASSES] > 0
    assert present.sum() >= 10, present


def test_default_sample() -> None:
    d = default_sample(n_frames=3, width=128, height=64)
    assert d.seed == DEFAULT_SEED and len(d) == 3
    frames = list(d)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].image.shape == (64, 128, 3)
