"""Tests of the shared backward warp (core.warp): shifts, sub-pixel bilinear, labels, resize, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dvs_cluster.core.warp import resize_flow, sampling_maps, warp, warp_labels


def _const_flow(h: int, w: int, dx: float, dy: float) -> np.ndarray:
    fl = np.empty((2, h, w), np.float32)
    fl[0] = dx
    fl[1] = dy
    return fl


def test_zero_flow_is_identity() -> None:
    rng = np.random.default_rng(0)
    key = rng.standard_normal((19, 12, 20)).astype(np.float32)
    out = warp(key, np.zeros((2, 12, 20), np.float32))
    assert out.shape == key.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, key, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3, 4, 5, 19])
def test_integer_shift_exact(channels: int) -> None:
    rng = np.random.default_rng(1)
    key = rng.standard_normal((channels, 16, 24)).astype(np.float32)
    dx, dy = 3, -2
    out = warp(key, _const_flow(16, 24, dx, dy))
    # backward: out[y, x] = key[y + dy, x + dx] where inside
    np.testing.assert_allclose(out[:, 2:, : 24 - dx], key[:, : 16 - 2, dx:], atol=1e-5)
    # outside the key: border replicate
    np.testing.assert_allclose(out[:, 2:, -1], key[:, :-2, -1], atol=1e-5)
    np.testing.assert_allclose(out[:, 0, : 24 - dx], key[:, 0, dx:], atol=1e-5)


def test_subpixel_bilinear_matches_manual() -> None:
    rng = np.random.default_rng(2)
    key = rng.standard_normal((2, 10, 12)).astype(np.float32)
    dx, dy = 1.25, 0.5
    out = warp(key, _const_flow(10, 12, dx, dy))
    ax, ay = 0.25, 0.5
    manual = (
        (1 - ax) * (1 - ay) * key[:, :-1, 1:-1]
        + ax * (1 - ay) * key[:, :-1, 2:]
        + (1 - ax) * ay * key[:, 1:, 1:-1]
        + ax * ay * key[:, 1:, 2:]
    )
    # offsets are multiples of 1/32 (cv2's sub-pixel resolution), so bilinear is exact here
    np.testing.assert_allclose(out[:, :-1, :-2], manual, atol=1e-4)


def test_affine_flow() -> None:
    h, w = 20, 30
    key = np.zeros((1, h, w), np.float32)
    key[0] = np.arange(w, dtype=np.float32)[None, :] + 100 * np.arange(h, dtype=np.float32)[:, None]
    # zoom-out flow: sample the key at 0.5 * (x, y) -> out = 0.5 x + 50 y (linear field: bilinear exact)
    gx = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    gy = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    fl = np.stack([-0.5 * gx, -0.5 * gy]).astype(np.float32)
    out = warp(key, fl)
    np.testing.assert_allclose(out[0], 0.5 * gx + 50 * gy, atol=0.1)


def test_warp_labels_nearest() -> None:
    lab = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = warp_labels(lab, _const_flow(6, 8, 1.4, 0.6))  # rounds to (+1, +1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:-1, :-1], lab[1:, 1:])
    assert set(np.unique(out)) <= set(np.unique(lab))


def test_sampling_maps() -> None:
    mx, my = sampling_maps(_const_flow(3, 4, 0.5, -1.0))
    np.testing.assert_allclose(mx[1], np.arange(4) + 0.5)
    np.testing.assert_allclose(my[:, 2], np.arange(3) - 1.0)
    assert mx.dtype == np.float32 and mx.flags.c_contiguous


def test_resize_flow_scales_vectors() -> None:
    fl = _const_flow(16, 32, 4.0, -2.0)
    small = resize_flow(fl, 4, 8)
    assert small.shape == (2, 4, 8) and small.dtype == np.float32
    np.testing.assert_allclose(small[0], 1.0, atol=1e-5)
    np.testing.assert_allclose(small[1], -0.5, atol=1e-5)
    big = resize_flow(fl, 32, 64)
    np.testing.assert_allclose(big[0], 8.0, atol=1e-5)
    np.testing.assert_allclose(big[1], -4.0, atol=1e-5)
    aniso = resize_flow(fl, 8, 64)
    np.testing.assert_allclose(aniso[0], 8.0, atol=1e-5)
    np.testing.assert_allclose(aniso[1], -1.0, atol=1e-5)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        warp(np.zeros((3, 4, 5), np.float32), np.zeros((2, 4, 6), np.float32))
    with pytest.raises(ValueError):
        warp(np.zeros((4, 5), np.float32), np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError):
        warp(np.zeros((3, 4, 5), np.float32), np.zeros((3, 4, 5), np.float32))
    with pytest.raises(ValueError):
        warp_labels(np.zeros((4, 6), np.uint8), np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError):
        sampling_maps(np.zeros((4, 5), np.float32))


def test_compose_adds_displacements_along_the_path() -> None:
    """current -> previous (1 px left) then previous -> key (a field growing to the right)."""
    from dvs_cluster.core.warp import compose

    h, w = 8, 16
    step = np.zeros((2, h, w), np.float32)
    step[0] = -1.0
    inner = np.zeros((2, h, w), np.float32)
    inner[0] = np.arange(w, dtype=np.float32)[None, :] * 0.1
    inner[1] = 0.5
    out = compose(step, inner)
    x = np.arange(1, w, dtype=np.float32)
    np.testing.assert_allclose(out[0, :, 1:], np.broadcast_to(-1.0 + (x - 1.0) * 0.1, (h, w - 1)), atol=1e-5)
    np.testing.assert_allclose(out[1], 0.5, atol=1e-6)
