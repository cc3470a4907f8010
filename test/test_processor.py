import numpy as np
import pytest
from fake_models import FakeModels

from dvs_cluster.core.keys import KeyBuffer
from dvs_cluster.core.policy import DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy
from dvs_cluster.core.processor import RegionProcessor, labels_from_logits, logit_grid, upsample_logits


def _frames(n: int, h: int = 61, w: int = 83) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 2 * t, axis=1) for t in range(n)]


def test_upsample_alignment_odd_size() -> None:
    logits = np.random.default_rng(0).standard_normal((19, *logit_grid(61, 83))).astype(np.float32)
    up = upsample_logits(logits, 61, 83)
    assert up.shape == (61, 83, 19)
    labels, conf = labels_from_logits(logits, 61, 83)
    assert labels.dtype == np.uint8 and conf.dtype == np.float32
    np.testing.assert_array_equal(labels, up.argmax(axis=2))
    # Constant logits upsample to themselves.
    const = np.ones((2, 3, 4), np.float32)
    assert np.allclose(upsample_logits(const, 10, 14), 1.0)


def test_first_frame_is_seg_and_returns_key() -> None:
    proc = RegionProcessor(FakeModels(), DVSNetPolicy(-1))
    img = _frames(1)[0]
    out = proc.process(0, 0, img, None)
    assert out.path == "seg" and out.score is None and out.key is not None
    assert out.key.timestep == 0 and out.key_timestep is None
    assert out.labels.shape == img.shape[:2] and out.logits.shape == (19, *logit_grid(*img.shape[:2]))
    assert set(out.timings_ms) == {"seg", "upsample"}


def test_threshold_above_every_score_equals_segpath() -> None:
    frames = _frames(5)
    a = RegionProcessor(FakeModels(), DVSNetPolicy(101))
    b = RegionProcessor(FakeModels(), SegPathPolicy())
    ba, bb = KeyBuffer(1), KeyBuffer(1)
    for t, img in enumerate(frames):
        oa, ob = a.step(0, t, img, ba), b.step(0, t, img, bb)
        assert oa.path == ob.path == "seg"
        np.testing.assert_array_equal(oa.labels, ob.labels)
        np.testing.assert_array_equal(oa.logits, ob.logits)
        if t > 0:
            assert oa.score is not None and {"flow", "dn", "seg"} <= set(oa.timings_ms)


def test_threshold_below_every_score_keeps_first_key() -> None:
    models = FakeModels()
    proc = RegionProcessor(models, DVSNetPolicy(-1))
    buf = KeyBuffer(1)
    outs = [proc.step(0, t, img, buf) for t, img in enumerate(_frames(6))]
    assert [o.path for o in outs] == ["seg"] + ["flow"] * 5
    assert buf.timestep(0) == 0
    assert all(o.key_timestep == 0 and o.key is None for o in outs[1:])
    assert models.calls == {"seg": 1, "flow": 5, "dn": 5}
    # Fake flow is zero: the flow path reproduces the key's labels.
    for o in outs[1:]:
        np.testing.assert_array_equal(o.labels, outs[0].labels)
        assert {"flow", "dn", "warp", "upsample"} == set(o.timings_ms)


def test_age_policy_skips_dn() -> None:
    models = FakeModels()
    proc = RegionProcessor(models, FixedIntervalPolicy(3))
    buf = KeyBuffer(1)
    paths = [proc.step(0, t, img, buf).path for t, img in enumerate(_frames(7))]
    assert paths == ["seg", "flow", "flow", "seg", "flow", "flow", "seg"]
    assert models.calls["dn"] == 0 and models.calls["flow"] == 4


def test_key_shape_mismatch() -> None:
    proc = RegionProcessor(FakeModels(), DVSNetPolicy(90))
    key = proc.process(0, 0, _frames(1)[0], None).key
    with pytest.raises(ValueError, match="key is"):
        proc.process(0, 1, _frames(1, 60, 83)[0], key)


@pytest.mark.parametrize(("h", "w"), [(256, 512), (255, 511), (61, 83)])
def test_labels_from_logits_matches_dense_argmax(h: int, w: int) -> None:
    logits = np.random.default_rng(h).standard_normal((19, *logit_grid(h, w))).astype(np.float32)
    up = upsample_logits(logits, h, w)
    labels, conf = labels_from_logits(logits, h, w)
    np.testing.assert_array_equal(labels, up.argmax(axis=2))
    np.testing.assert_allclose(conf, up.max(axis=2), rtol=1e-5, atol=1e-6)


class _ShiftModels(FakeModels):
    """Flow = one logit-grid pixel to the left (content moves right by 1 each step); DN records its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.dn_ages: list[int] = []

    def flow(
        self, key: np.ndarray, current: np.ndarray, *, cues: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        fl, feats = super().flow(key, current, cues=cues)
        fl[0] = -1.0
        return fl, feats

    def dn(self, features: np.ndarray, key_age: int = 1) -> float:
        self.dn_ages.append(key_age)
        return 100.0


@pytest.mark.parametrize("propagate", [True, False])
def test_propagation_warps_the_previous_output(propagate: bool) -> None:
    """With propagation each flow step warps the last output (shifts add up); age counts from the key."""
    frames = _frames(4, 64, 96)
    m = _ShiftModels()
    proc = RegionProcessor(m, DVSNetPolicy(50), propagate=propagate)
    buf = KeyBuffer(1)
    key = proc.step(0, 0, frames[0], buf)
    assert key.state is key.key and key.key is not None
    outs = [proc.step(0, t, frames[t], buf) for t in (1, 2, 3)]
    assert [o.path for o in outs] == ["flow"] * 3 and m.dn_ages == [1, 2, 3]
    assert all(o.key is None and o.key_timestep == 0 for o in outs)
    shifted = np.roll(key.key.logits, 3 if propagate else 1, axis=2)
    np.testing.assert_allclose(outs[-1].logits[:, :, 3:], shifted[:, :, 3:])
    held = buf.get(0)
    assert held is not None and held.key_timestep == 0
    assert held.timestep == (3 if propagate else 0)
    assert (outs[-1].state is not None) == propagate


class _CueModels(_ShiftModels):
    """Records the flows the DN v2 would read against the key."""

    def __init__(self) -> None:
        super().__init__()
        self.cue_flows: list[np.ndarray] = []

    def dn_cues(self, key: np.ndarray, current: np.ndarray, flow: np.ndarray) -> np.ndarray:
        self.cue_flows.append(flow.copy())
        return np.zeros((8, 4, 8), np.float32)


def test_a_chain_is_judged_against_its_key() -> None:
    """On a propagated state the DN input is recomputed against the key with the composed flow."""
    frames = _frames(4, 64, 96)
    m = _CueModels()
    proc = RegionProcessor(m, DVSNetPolicy(50))
    buf = KeyBuffer(1)
    for t in range(4):
        proc.step(0, t, frames[t], buf)
    # Step 1 warps the key itself (its own features); steps 2 and 3 are chains of 2 and 3 frames.
    assert [float(np.median(f[0])) for f in m.cue_flows] == [-2.0, -3.0]
    held = buf.get(0)
    assert held is not None and held.anchor is not None and held.to_key is not None
    assert np.array_equal(held.anchor, frames[0]) and float(np.median(held.to_key[0])) == -3.0
