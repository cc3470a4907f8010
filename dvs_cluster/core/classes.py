"""Cityscapes label set (19 trainIds, 255 = ignore) and its colour palette.

Every model, the generator and all outputs speak trainIds, so the palette lives in one place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IGNORE_LABEL = 255
NUM_CLASSES = 19

CLASS_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# Official Cityscapes colours (RGB) for trainIds 0..18.
PALETTE: npt.NDArray[np.uint8] = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ],
    dtype=np.uint8,
)

# Lookup table over all 256 byte values: ignore (and anything out of range) is black.
_LUT = np.zeros((256, 3), dtype=np.uint8)
_LUT[:NUM_CLASSES] = PALETTE


def colorize(labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Map trainIds (H, W) to an RGB image (H, W, 3) in the Cityscapes palette."""
    return _LUT[labels]


def overlay(
    image: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8], alpha: float = 0.5
) -> npt.NDArray[np.uint8]:
    """Blend the colour map over an RGB image; ignored pixels keep the image."""
    color = colorize(labels).astype(np.float32)
    out = image.astype(np.float32)
    mask = labels != IGNORE_LABEL
    out[mask] = (1.0 - alpha) * out[mask] + alpha * color[mask]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
