import numpy as np
import pytest
from fake_models import FakeModels
from runtime_support import shipped_model_dir

from dvs_cluster.core.policy import DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy
from dvs_cluster.engine import SingleEngine, run_interleaved
from dvs_cluster.io.sources import Frame, FrameTransform


def _frames(n: int, w: int = 203, h: int = 101, seed: int = 0) -> list[Frame]:
    """A textured scene panning right by 3 px a frame (odd size: unequal regions)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w + 3 * n, 3), dtype=np.uint8)
    tf = FrameTransform(w, h, w, h)
    out = []
    for t in range(n):
        img = np.ascontiguousarray(base[:, 3 * t : 3 * t + w])
        labels = (img[:, :, 0] // 14 % 19).astype(np.uint8)
        out.append(Frame(t, img, labels, t / 30, tf, img))
    return out


def _run(models, policy, frames, overlap: int = 0):  # type: ignore[no-untyped-def]
    h, w = frames[0].image.shape[:2]
    eng = SingleEngine(models, policy, w, h, overlap=overlap)
    results = []
    stats = eng.run(frames, on_frame=lambda f, r: results.append(r))
    return eng, stats, results


@pytest.mark.parametrize("overlap", [0, 6])
def test_high_threshold_reproduces_segpath_fake(overlap: int) -> None:
    frames = _frames(5)
    _, sa, ra = _run(FakeModels(), DVSNetPolicy(101), frames, overlap)
    _, sb, rb = _run(FakeModels(), SegPathPolicy(), frames, overlap)
    for a, b in zip(ra, rb, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert sa.mix.seg_fraction == sb.mix.seg_fraction == 1.0
    assert sa.miou == pytest.approx(sb.miou)
    assert sa.frames == 5 and sa.fps > 0 and sa.has_gt


def test_low_threshold_keeps_first_key_fake() -> None:
    eng, stats, results = _run(FakeModels(), DVSNetPolicy(-1), _frames(6))
    assert results[0].paths == ["seg"] * 4
    assert all(r.paths == ["flow"] * 4 for r in results[1:])
    assert all(eng.keys.timestep(i) == 0 for i in range(4))
    assert stats.mix.seg_fraction == pytest.approx(4 / 24)
    d = stats.to_dict()
    assert d["region_steps"] == {"seg": 4, "flow": 20} and d["miou"] is not None
    assert {"seg", "flow", "dn", "warp", "frame"} <= set(d["latency_ms"])


def test_fixed_interval_engine() -> None:
    _, stats, results = _run(FakeModels(), FixedIntervalPolicy(2), _frames(5))
    assert [r.paths[0] for r in results] == ["seg", "flow", "seg", "flow", "seg"]
    assert stats.mix.seg_fraction == pytest.approx(3 / 5)


def test_extreme_thresholds_with_shipped_models() -> None:
    from dvs_cluster.inference import OnnxModels

    models = OnnxModels(shipped_model_dir(), intra_op_threads=1)
    frames = _frames(3, 256, 128)
    _, _, seg = _run(models, SegPathPolicy(), frames)
    _, _, hi = _run(models, DVSNetPolicy(101), frames)
    for a, b in zip(seg, hi, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert all(o.score is not None for r in hi[1:] for o in r.outcomes)
    eng, _, lo = _run(models, DVSNetPolicy(-1), frames)
    assert [r.paths for r in lo] == [["seg"] * 4, ["flow"] * 4, ["flow"] * 4]
    np.testing.assert_array_equal(lo[0].labels, seg[0].labels)
    assert all(eng.keys.timestep(i) == 0 for i in range(4))


def test_interleaved_runs_equal_separate_runs() -> None:
    """The bench's interleaving changes only when each step runs, not what any engine computes."""
    frames = _frames(6)
    h, w = frames[0].image.shape[:2]
    policies = [lambda: SegPathPolicy(), lambda: FixedIntervalPolicy(3), lambda: DVSNetPolicy(50)]
    alone = [_run(FakeModels(), p(), frames)[1] for p in policies]
    models = FakeModels()  # one set shared, as the bench shares its sessions
    together = run_interleaved([SingleEngine(models, p(), w, h) for p in policies], frames)
    for a, b in zip(alone, together, strict=True):
        assert b.frames == a.frames == 6
        assert b.mix.seg == a.mix.seg and b.mix.flow == a.mix.flow
        assert b.miou == pytest.approx(a.miou)
        np.testing.assert_array_equal(b.confusion.matrix, a.confusion.matrix)
        assert b.engine_seconds > 0
    assert together[0].mix.seg_fraction == 1.0 and together[1].mix.seg_fraction == pytest.approx(2 / 6)
