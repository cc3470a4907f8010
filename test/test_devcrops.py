"""Crops drawn on the training device (train/devcrops.py): exact copies, flips, padding, rare classes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dvs_cluster.core.classes import IGNORE_LABEL

pytestmark = [
    pytest.mark.train,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the [train] extra"),
]


def _coded(n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixels spell their own (frame, y, x); labels a checkerboard of 8x8 cells."""
    f, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    img = np.stack([x % 256, y % 256, f], axis=-1).astype(np.uint8)
    lab = ((x // 8 + y // 8) % 10).astype(np.uint8)
    return img, lab


def test_scale_one_copies_windows_exactly() -> None:
    """Without jitter each crop is a window of one frame, pixel for pixel (flipped or not)."""
    import torch

    from dvs_cluster.train.devcrops import DeviceCrops

    img, lab = _coded(3, 64, 96)
    dc = DeviceCrops(img, lab, torch.device("cpu"), seed=1)
    x, y = dc.sample(16, 16, 32)
    assert x.shape == (16, 16, 32, 3) and x.dtype == torch.float32
    assert y.shape == (16, 16, 32) and y.dtype == torch.int64
    xs, ys = x.numpy().astype(np.int64), y.numpy()
    flips = 0
    for b in range(16):
        frame = int(xs[b, 0, 0, 2])
        y0 = int(xs[b, 0, 0, 1])
        row = xs[b, 0, :, 0]
        step = int(row[1] - row[0])
        assert step in (1, -1)
        flips += step == -1
        x0 = int(row.min())
        win_img = img[frame, y0 : y0 + 16, x0 : x0 + 32]
        win_lab = lab[frame, y0 : y0 + 16, x0 : x0 + 32]
        if step == -1:
            win_img, win_lab = win_img[:, ::-1], win_lab[:, ::-1]
        assert (xs[b] == win_img).all() and (ys[b] == win_lab).all()
    assert 0 < flips < 16


def test_windows_larger_than_the_image_are_padded_with_ignore() -> None:
    """Scale 0.5 on a small image: the window is centred, outside pixels are labelled 255."""
    import torch

    from dvs_cluster.train.devcrops import DeviceCrops

    img, lab = _coded(1, 20, 30)
    dc = DeviceCrops(img, lab, torch.device("cpu"), base_scale=0.5, jitter=(1.0, 1.0), seed=0)
    x, y = dc.sample(2, 32, 32)  # window 64 x 64 source pixels around a 20 x 30 image
    yn = y.numpy()
    assert (yn[:, 0, :] == IGNORE_LABEL).all() and (yn[:, :, 0] == IGNORE_LABEL).all()
    inside = yn[yn != IGNORE_LABEL]
    assert inside.size > 0 and inside.max() < 10
    assert float(x.min()) >= 0.0 and float(x.max()) <= 255.0


def test_rare_class_sampling_finds_a_small_class() -> None:
    """A class on one 16x16 patch of one frame in 20: in every rare-sampled crop, seldom in uniform ones."""
    import torch

    from dvs_cluster.train.devcrops import DeviceCrops

    n, h, w = 20, 128, 256
    img = np.zeros((n, h, w, 3), np.uint8)
    lab = np.zeros((n, h, w), np.uint8)
    lab[:, h // 2 :] = 1
    lab[7, 40:56, 200:216] = 12
    rare = DeviceCrops(img, lab, torch.device("cpu"), rare=1.0, seed=3)
    assert float(rare.class_p[12]) > 0.3  # rarest of three present classes
    _, y = rare.sample(64, 32, 64)
    has = (y.numpy() == 12).reshape(64, -1).any(axis=1)
    assert has.mean() > 0.8  # drawn with p ~ freq^-0.5, always inside the window when drawn
    uniform = DeviceCrops(img, lab, torch.device("cpu"), rare=0.0, seed=3)
    _, yu = uniform.sample(64, 32, 64)
    assert (yu.numpy() == 12).reshape(64, -1).any(axis=1).mean() < has.mean()


def test_mixed_sizes_are_refused() -> None:
    import torch

    from dvs_cluster.train.devcrops import DeviceCrops

    with pytest.raises(ValueError, match="one size"):
        DeviceCrops(
            [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)],
            [np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8)],
            torch.device("cpu"),
        )


def test_a_missing_device_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--device cuda without CUDA (or a misspelt device) stops with exit 2 and one line naming it."""
    import torch

    from dvs_cluster.train.camvid_train import main

    args = ["--budget", "gpu-tiny", "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    assert main([*args, "--device", "gpu0"]) == 2
    assert "--device gpu0" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
