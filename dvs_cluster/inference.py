"""
onnxruntime sessions for the three nets; the only runtime module that touches model files.

Implements the :class:`dvs_cluster.core.processor.Models` protocol one region at a time: pads H, W to
multiples of 32 by edge replication (the nets' constraint), runs, and crops the 1/4-grid outputs back,
so callers never see the padding. Model files are looked up in a fixed order (see
:func:`model_search_path`) so the same code works from a source checkout, a pip wheel and a colcon
install; anything wrong with them is a :class:`ModelError` naming the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.processor import logit_grid

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

MODEL_FILES = {"seg": "seg.onnx", "flow": "flow.onnx", "dn": "dn.onnx"}
#: Expected (input names, output names) per model, from the model I/O contract in docs/DESIGN.md.
MODEL_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "seg": (("image",), ("logits",)),
    "flow": (("key", "current"), ("flow", "features")),
    "dn": (("features",), ("score",)),
}
FEATURES_SHAPE = (64, 4, 8)
PAD_MULTIPLE = 32
#: Flow nets with a FlowNet-S encoder at half input resolution reach 1/64 of the region, so they need
#: multiples of 64; a model may override either default with a ``pad_multiple`` metadata entry.
DEFAULT_PAD = {"seg": PAD_MULTIPLE, "flow": 64, "dn": 1}
ENV_MODELS = "DVS_CLUSTER_MODELS"

#: Short names accepted on the command line.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


class ModelError(RuntimeError):
    """A model file is missing, unreadable or breaks the I/O contract, or a provider is unavailable."""


def model_search_path(model_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """
    Candidate model directories, in resolution order.

    1. ``model_dir`` if given; 2. ``$DVS_CLUSTER_MODELS``; 3. ``<sys.prefix>/share/dvs_cluster/models``
    (pip wheel data files); 4. the ament share directory (colcon install) when ``ament_index_python``
    is importable; 5. ``<repo>/models`` of a source checkout.
    """
    if model_dir is not None:
        return [Path(model_dir)]
    env = os.environ.get(ENV_MODELS)
    if env:
        return [Path(env)]
    cands = [Path(sys.prefix) / "share" / "dvs_cluster" / "models"]
    try:
        from ament_index_python.packages import get_package_share_directory

        cands.append(Path(get_package_share_directory("dvs_cluster")) / "models")
    except Exception:  # not a ROS environment, or the package is not installed there
        pass
    cands.append(Path(__file__).resolve().parent.parent / "models")
    return cands


def resolve_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """The first candidate directory holding ``seg.onnx``; explicit choices are not second-guessed."""
    cands = model_search_path(model_dir)
    if model_dir is not None or os.environ.get(ENV_MODELS):
        d = cands[0]
        if not d.is_dir():
            src = "--models" if model_dir is not None else f"${ENV_MODELS}"
            raise ModelError(f"model directory {d} (from {src}) does not exist")
        return d
    for d in cands:
        if (d / MODEL_FILES["seg"]).is_file():
            return d
    where = ", ".join(str(d) for d in cands)
    raise ModelError(f"no models found (looked for seg.onnx in {where}); set ${ENV_MODELS} or pass --models")


def resolve_providers(providers: Sequence[str]) -> list[str]:
    """Expand aliases and check every provider against this onnxruntime build."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    out = []
    for p in providers:
        name = PROVIDER_ALIASES.get(p.strip().lower(), p.strip())
        if name not in available:
            hint = ""
            if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                hint = (
                    " (needs the GPU build of onnxruntime: `onnxruntime-gpu`, or on a Jetson the JetPack "
                    "wheel from the Jetson Zoo)"
                )
            raise ModelError(
                f"execution provider {name} is not available in onnxruntime {ort.__version__}{hint}; "
                f"available: {', '.join(available)}"
            )
        out.append(name)
    if not out:
        raise ModelError("no execution provider given")
    return out


def pad_to_multiple(image: UInt8Array, multiple: int = PAD_MULTIPLE) -> UInt8Array:
    """Edge-replicate the bottom/right of an (h, w, 3) image up to multiples of ``multiple``."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(image)
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


class OnnxModels:
    """The seg, flow and DN nets as onnxruntime sessions (the ``Models`` protocol of the processor)."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        warmup: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.model_dir = resolve_model_dir(model_dir)
        self.providers = resolve_providers(providers)
        self.intra_op_threads = intra_op_threads
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.inter_op_num_threads = 1
        if intra_op_threads:
            opts.intra_op_num_threads = int(intra_op_threads)
        opts.log_severity_level = 3
        self.sessions: dict[str, Any] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        for kind, fname in MODEL_FILES.items():
            path = self.model_dir / fname
            if not path.is_file():
                raise ModelError(f"model file {path} is missing")
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
            except Exception as e:  # onnxruntime raises several unrelated types for bad files
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ModelError(f"model file {path} cannot be loaded: {msg}") from e
            ins = tuple(i.name for i in sess.get_inputs())
            outs = tuple(o.name for o in sess.get_outputs())
            want_in, want_out = MODEL_IO[kind]
            if ins != want_in or outs != want_out:
                raise ModelError(
                    f"model file {path} has inputs {list(ins)} / outputs {list(outs)}, "
                    f"expected {list(want_in)} / {list(want_out)} (see docs/DESIGN.md)"
                )
            self.sessions[kind] = sess
            self.metadata[kind] = dict(sess.get_modelmeta().custom_metadata_map)
        self.pad = {k: self._pad_multiple(k) for k in MODEL_FILES}
        if warmup:
            self.warmup()

    def _pad_multiple(self, kind: str) -> int:
        raw = self.metadata[kind].get("pad_multiple", DEFAULT_PAD[kind])
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ModelError(f"model file {self.model_dir / MODEL_FILES[kind]}: bad pad_multiple {raw!r}")
        return value

    def _run(self, kind: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            out: list[np.ndarray] = self.sessions[kind].run(None, feeds)
        except Exception as e:
            raise ModelError(f"model file {self.model_dir / MODEL_FILES[kind]} failed to run: {e}") from e
        return out

    def seg(self, image: UInt8Array) -> FloatArray:
        """(h, w, 3) RGB -> logits (19, ceil(h/4), ceil(w/4)) float32."""
        gh, gw = logit_grid(*image.shape[:2])
        (logits,) = self._run("seg", {"image": pad_to_multiple(image, self.pad["seg"])[None]})
        return np.ascontiguousarray(logits[0, :, :gh, :gw], dtype=np.float32)

    def flow(self, key: UInt8Array, current: UInt8Array) -> tuple[FloatArray, FloatArray]:
        """Backward flow (2, ceil(h/4), ceil(w/4)) current -> key, and the DN features (64, 4, 8)."""
        gh, gw = logit_grid(*current.shape[:2])
        flow, feats = self._run(
            "flow",
            {
                "key": pad_to_multiple(key, self.pad["flow"])[None],
                "current": pad_to_multiple(current, self.pad["flow"])[None],
            },
        )
        return (
            np.ascontiguousarray(flow[0, :, :gh, :gw], dtype=np.float32),
            np.ascontiguousarray(feats[0], dtype=np.float32),
        )

    def dn(self, features: FloatArray) -> float:
        """Predicted flow-path accuracy (0..100) for one region's features."""
        (score,) = self._run("dn", {"features": np.ascontiguousarray(features, np.float32)[None]})
        return float(np.asarray(score).reshape(-1)[0])

    def warmup(self, height: int = 64, width: int = 96) -> None:
        """Run every net once (first-run allocations) and check output shapes against the contract."""
        img = np.zeros((height, width, 3), np.uint8)
        gh, gw = logit_grid(height, width)
        logits = self.seg(img)
        self._expect("seg", logits.shape, (NUM_CLASSES, gh, gw))
        flow, feats = self.flow(img, img)
        self._expect("flow", flow.shape, (2, gh, gw))
        self._expect("flow", feats.shape, FEATURES_SHAPE)
        (score,) = self._run("dn", {"features": feats[None]})
        self._expect("dn", score.shape, (1, 1))

    def _expect(self, kind: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
        if tuple(got) != tuple(want):
            raise ModelError(
                f"model file {self.model_dir / MODEL_FILES[kind]} produced shape {tuple(got)}, "
                f"expected {tuple(want)} (see docs/DESIGN.md)"
            )

    def describe(self) -> dict[str, Any]:
        """What ran the benchmark: model dir, providers, threads, onnxruntime version, model metadata."""
        import onnxruntime as ort

        return {
            "model_dir": str(self.model_dir),
            "providers": list(self.providers),
            "intra_op_threads": self.intra_op_threads,
            "onnxruntime": ort.__version__,
            "metadata": self.metadata,
        }
