"""
Classical optical flow for the flow path: OpenCV's DIS (Kroeger et al., ECCV 2016), no weights.

Why it is here: on the model card's held-out pairs DIS ULTRAFAST on the full region gives a better
flow path than the trained FlowNet-S at a third of its cost, and on real video it never does worse
than copying the key's labels, which the flow net trained on synthetic pairs does
(``../shared/notes/flow-study``, re-measured in ``train/evaluate.py``). Output follows the convention of
:mod:`dvs_cluster.core.warp`: backward flow (current -> key) on the 1/4 grid, in pixels of that grid.

``calc(I0=current, I1=key)`` is the backward flow: I0(x) ~ I1(x + f(x)). The flow is computed on the
region (or a copy scaled by ``scale``), then area-averaged down to the logit grid by
:func:`dvs_cluster.core.warp.resize_flow`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.warp import resize_flow

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

#: Output stride of the flow path's grid (the logits' grid).
STRIDE = 4

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_PRESET = "ultrafast"


class FlowSpecError(ValueError):
    """A ``--flow`` value that names no flow source."""


def parse_flow_spec(spec: str) -> tuple[str, str, float]:
    """
    ``onnx`` | ``dis[:PRESET][@SCALE]`` -> (kind, preset, scale); e.g. ``dis:fast@0.5``.

    PRESET is one of ultrafast (default), fast, medium; SCALE in (0, 1] shrinks the region before DIS.
    """
    s = spec.strip().lower()
    body, _, scale_txt = s.partition("@")
    kind, _, preset = body.partition(":")
    if kind == "onnx":
        if preset or scale_txt:
            raise FlowSpecError(f"flow source {spec!r}: 'onnx' takes no preset or scale")
        return "onnx", "", 1.0
    if kind != "dis":
        raise FlowSpecError(f"unknown flow source {spec!r} (use onnx or dis[:PRESET][@SCALE], e.g. dis:fast)")
    preset = preset or DEFAULT_PRESET
    if preset not in DIS_PRESETS:
        raise FlowSpecError(f"flow source {spec!r}: DIS preset must be one of {', '.join(DIS_PRESETS)}")
    try:
        scale = float(scale_txt) if scale_txt else 1.0
    except ValueError:
        raise FlowSpecError(f"flow source {spec!r}: bad scale {scale_txt!r} (use e.g. @0.5)") from None
    if not 0.0 < scale <= 1.0:
        raise FlowSpecError(f"flow source {spec!r}: scale must be in (0, 1], got {scale:g}")
    return "dis", preset, scale


def canonical_flow_spec(spec: str) -> str:
    """The one spelling of a flow source (``dis`` -> ``dis:ultrafast``), for reports and metadata."""
    kind, preset, scale = parse_flow_spec(spec)
    if kind == "onnx":
        return "onnx"
    return f"dis:{preset}" + (f"@{scale:g}" if scale != 1.0 else "")


def to_gray(image: UInt8Array) -> UInt8Array:
    """RGB (h, w, 3) -> gray (h, w), contiguous (what DIS and the decision cues read)."""
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


class DisFlow:
    """
    Backward DIS flow current -> key on the 1/4 grid (not thread-safe: OpenCV objects inside).

    One OpenCV DIS object per input size: an object keeps the set-up of the first size it saw, and on
    another size it runs about 10x slower and gives a slightly different flow (measured here on
    128 x 256 inputs after one 32 x 48 call: 4.5 ms instead of 0.45 ms), which the warm-up's small
    image and a cluster's mixed region sizes would otherwise trigger.
    """

    def __init__(self, preset: str = DEFAULT_PRESET, scale: float = 1.0) -> None:
        if preset not in DIS_PRESETS:
            raise FlowSpecError(f"DIS preset must be one of {', '.join(DIS_PRESETS)}, got {preset!r}")
        self.preset = preset
        self.scale = float(scale)
        self._by_size: dict[tuple[int, int], Any] = {}  # cv2.DISOpticalFlow

    def _dis(self, size: tuple[int, int]) -> Any:
        dis = self._by_size.get(size)
        if dis is None:
            dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])  # type: ignore[attr-defined]
            self._by_size[size] = dis
        return dis

    @property
    def name(self) -> str:
        return f"dis:{self.preset}" + (f"@{self.scale:g}" if self.scale != 1.0 else "")

    def gray_flow(self, key_gray: UInt8Array, cur_gray: UInt8Array) -> FloatArray:
        """Backward flow (2, ceil(h/4), ceil(w/4)) between two gray regions of the same size."""
        if key_gray.shape != cur_gray.shape:
            raise ValueError(f"key is {key_gray.shape}, current is {cur_gray.shape}")
        h, w = cur_gray.shape
        a: np.ndarray = cur_gray
        b: np.ndarray = key_gray
        if self.scale != 1.0:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        # (h', w', 2): I0(x) ~ I1(x + f), I0 = current, I1 = key
        hwc = self._dis((a.shape[0], a.shape[1])).calc(a, b, None)
        chw = np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32)
        return resize_flow(chw, -(-h // STRIDE), -(-w // STRIDE))

    def __call__(self, key: UInt8Array, current: UInt8Array) -> FloatArray:
        """Backward flow of two RGB regions (see :meth:`gray_flow`)."""
        return self.gray_flow(to_gray(key), to_gray(current))
