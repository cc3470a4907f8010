"""The one warp of the flow path, shared by training targets and run time.

Flow convention used everywhere in dvs_cluster: a float32 array of shape (2, h, w), channel 0 = dx,
channel 1 = dy, *backward* flow on the grid of the current frame: the content at pixel (x, y) of the
current frame was at (x + dx, y + dy) in the key frame. Warping therefore samples the key at
(x + dx, y + dy) (bilinear, OpenCV ``remap``), and positions outside the key are clamped to its border.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def sampling_maps(flow: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Absolute sampling coordinates (map_x, map_y) for ``cv2.remap`` from a backward flow."""
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape (2, h, w), got {flow.shape}")
    h, w = flow.shape[1:]
    gx = np.arange(w, dtype=np.float32)[None, :]
    gy = np.arange(h, dtype=np.float32)[:, None]
    map_x = np.ascontiguousarray(flow[0] + gx, dtype=np.float32)
    map_y = np.ascontiguousarray(flow[1] + gy, dtype=np.float32)
    return map_x, map_y


def warp(key: FloatArray, flow: FloatArray) -> FloatArray:
    """Bilinear backward warp of channel-first ``key`` (C, h, w) by ``flow`` (2, h, w).

    Used for key logits (the flow path) and anything else defined on the key grid. One ``remap`` per
    channel plane, written in place: 3x faster than remapping channel-last chunks (no transposes or
    concatenation on every flow-path region) and bit-identical to it.
    """
    if key.ndim != 3:
        raise ValueError(f"key must have shape (C, h, w), got {key.shape}")
    if key.shape[1:] != flow.shape[1:]:
        raise ValueError(f"key grid {key.shape[1:]} differs from flow grid {flow.shape[1:]}")
    map_x, map_y = sampling_maps(flow)
    src = np.ascontiguousarray(key, dtype=np.float32)
    out = np.empty_like(src)
    for k in range(src.shape[0]):
        cv2.remap(
            src[k], map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE, dst=out[k]
        )
    return out


def compose(step: FloatArray, inner: FloatArray) -> FloatArray:
    """
    Backward flow current -> key from ``step`` (current -> previous) and ``inner`` (previous -> key).

    The content at x of the current frame was at x + step(x) in the previous one, and there at
    x + step(x) + inner(x + step(x)) in the key: ``step + warp(inner, step)`` (what a propagated flow
    path has moved since its key; the DN v2 reads its residual against the key).
    """
    out: FloatArray = step + warp(inner, step)
    return out


def warp_labels(labels: npt.NDArray[np.uint8], flow: FloatArray) -> npt.NDArray[np.uint8]:
    """Nearest-neighbour backward warp of a label map (h, w); used for ground-truth checks."""
    if labels.shape != flow.shape[1:]:
        raise ValueError(f"labels {labels.shape} differ from flow grid {flow.shape[1:]}")
    map_x, map_y = sampling_maps(flow)
    out = cv2.remap(labels, map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def resize_flow(flow: FloatArray, height: int, width: int) -> FloatArray:
    """Resample a flow field to another grid, scaling the vectors with the grid."""
    h, w = flow.shape[1:]
    sx, sy = width / w, height / h
    out = np.empty((2, height, width), dtype=np.float32)
    interp = cv2.INTER_AREA if (height < h and width < w) else cv2.INTER_LINEAR
    out[0] = cv2.resize(flow[0], (width, height), interpolation=interp) * sx
    out[1] = cv2.resize(flow[1], (width, height), interpolation=interp) * sy
    return out
