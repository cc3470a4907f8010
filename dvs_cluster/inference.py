"""
onnxruntime sessions for the nets; the only runtime module that touches model files.

Implements the :class:`dvs_cluster.core.processor.Models` protocol one region at a time: pads H, W to
multiples of 32 by edge replication (the nets' constraint), runs, and crops the 1/4-grid outputs back,
so callers never see the padding. Model files are looked up in a fixed order (see
:func:`model_search_path`) so the same code works from a source checkout, a pip wheel and a colcon
install; anything wrong with them is a :class:`ModelError` naming the file.

The flow source is a choice (``flow``): the paper's FlowNet-S (``onnx``, ``flow.onnx``) or OpenCV's DIS
(``dis[:PRESET][@SCALE]``, no weights). The decision network is DVSNet's DN on FlowNet features
(``v1``, ``dn.onnx``, ``onnx`` flow only) or the DN v2 on decision cues any flow gives
(:mod:`dvs_cluster.core.cues`; ``dn2_<flow kind>.onnx``, trained for that flow source).

Every session is built by :func:`make_session` with one :class:`ThreadPolicy`, so the nets of one
process never fight over its cores (docs/DESIGN.md, "Threads").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.cues import CUE_CHANNELS, CUE_GRID, age_input, decision_cues
from dvs_cluster.core.flow import DisFlow, FlowSpecError, canonical_flow_spec, parse_flow_spec, to_gray
from dvs_cluster.core.processor import logit_grid

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

MODEL_FILES = {"seg": "seg.onnx", "flow": "flow.onnx", "dn": "dn.onnx"}
#: DN v2 per flow kind: trained on the cues of that flow source's flow (train/dn2.py).
DN2_FILES = {"onnx": "dn2_flownet.onnx", "dis": "dn2_dis.onnx"}
#: Expected (input names, output names) per model, from the model I/O contract in docs/DESIGN.md.
MODEL_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "seg": (("image",), ("logits",)),
    "flow": (("key", "current"), ("flow", "features")),
    "dn": (("features",), ("score",)),
    "dn2": (("cues", "age"), ("score",)),
}
FEATURES_SHAPE = (64, 4, 8)
CUES_SHAPE = (CUE_CHANNELS, *CUE_GRID)
PAD_MULTIPLE = 32
#: Flow nets with a FlowNet-S encoder at half input resolution reach 1/64 of the region, so they need
#: multiples of 64; a model may override either default with a ``pad_multiple`` metadata entry.
DEFAULT_PAD = {"seg": PAD_MULTIPLE, "flow": 64, "dn": 1, "dn2": 1}
ENV_MODELS = "DVS_CLUSTER_MODELS"
#: The shipped defaults (chosen from the bench: BENCHMARKS.md, README "Benchmarks").
#: DIS ULTRAFAST on the full region: on the synthetic bench (Fixed3/4, propagated) 54.2/52.5 mIoU for
#: 1.5 ms per 512x256 region, against 52.4/50.2 at half size (1.0 ms) and 54.1/52.5 for MEDIUM at
#: half size (3.0 ms). (An earlier pick of ``dis@0.5`` rested on a DIS object reused across sizes,
#: which computed a different, slower flow: ``core/flow.py`` DisFlow.)
DEFAULT_FLOW = "dis"
DN_VERSIONS = ("auto", "v1", "v2")

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
        name = provider_name(p)
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


def provider_name(alias: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full names pass through."""
    return PROVIDER_ALIASES.get(alias.strip().lower(), alias.strip())


def parse_provider_options(text: str | None) -> dict[str, dict[str, str]]:
    """
    ``PROVIDER:KEY=VALUE,KEY=VALUE;PROVIDER:...`` -> {full provider name: {key: value}}.

    E.g. ``tensorrt:trt_engine_cache_enable=1,trt_engine_cache_path=/var/cache/trt,trt_fp16_enable=1``
    (TensorRT builds its engines once and reuses them at the next start) or ``cuda:device_id=1``.
    """
    out: dict[str, dict[str, str]] = {}
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        prov, sep, kvs = part.partition(":")
        if not sep or not prov.strip():
            raise ModelError(f"provider options {part!r}: expected PROVIDER:KEY=VALUE[,KEY=VALUE...]")
        opts = out.setdefault(provider_name(prov), {})
        for kv in kvs.split(","):
            key, eq, value = kv.strip().partition("=")
            if not eq or not key.strip():
                raise ModelError(f"provider options {part!r}: {kv.strip()!r} is not KEY=VALUE")
            opts[key.strip()] = value.strip()
    return out


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask: taskset, cgroup cpusets), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPolicy:
    """
    How the nets of one process share its cores: one policy for every entry point (issue 18).

    Each session keeps its own intra-op pool of ``threads`` (default: every core this process may use)
    but its threads do **not spin** waiting for work after a run. With onnxruntime's default (spinning
    on) the pools of the idle nets kept the cores busy while the next net ran: the seg net cost 2x
    more inside Single (flow, DN and seg interleaved) than alone, and Single was no faster than the seg
    path. Measured candidates and the reasons for this one: docs/DESIGN.md, "Threads".
    """

    threads: int | None = None
    spin: bool = False

    @property
    def intra_op_threads(self) -> int:
        return int(self.threads) if self.threads else cpu_count()

    def session_options(self) -> Any:
        """The ``onnxruntime.SessionOptions`` carrying this policy."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        spin = "1" if self.spin else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
        opts.log_severity_level = 3
        return opts

    def describe(self) -> dict[str, Any]:
        return {"intra_op_threads": self.intra_op_threads, "spinning": self.spin}


def make_session(
    path: Path,
    providers: Sequence[str],
    policy: ThreadPolicy,
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
) -> Any:
    """The one place a runtime ``InferenceSession`` is built (a test checks no other place does)."""
    import onnxruntime as ort

    opts = provider_options or {}
    provs: list[Any] = [(p, dict(opts[p])) if p in opts else p for p in providers]
    try:
        return ort.InferenceSession(str(path), sess_options=policy.session_options(), providers=provs)
    except Exception as e:  # onnxruntime raises several unrelated types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model file {path} cannot be loaded: {msg}") from e


def net_choice(flow: str, dn: str = "auto") -> tuple[tuple[str, str, float], str]:
    """Check a flow source and DN version: ((kind, preset, scale), dn version with ``auto`` resolved)."""
    try:
        spec = parse_flow_spec(flow)
    except FlowSpecError as e:
        raise ModelError(str(e)) from None
    if dn not in DN_VERSIONS:
        raise ModelError(f"unknown DN version {dn!r} (use {', '.join(DN_VERSIONS)})")
    if dn == "auto":
        dn = "v1" if spec[0] == "onnx" else "v2"
    if dn == "v1" and spec[0] != "onnx":
        raise ModelError(f"DN v1 reads FlowNet features: it needs --flow onnx, not {flow!r} (use --dn v2)")
    return spec, dn


def model_files(flow: str, dn: str = "auto") -> dict[str, str]:
    """The files a flow source and DN need, by model kind (seg, flow, dn, dn2)."""
    (kind, _, _), version = net_choice(flow, dn)
    files = {"seg": MODEL_FILES["seg"]}
    if kind == "onnx":
        files["flow"] = MODEL_FILES["flow"]
    if version == "v1":
        files["dn"] = MODEL_FILES["dn"]
    else:
        files["dn2"] = DN2_FILES[kind]
    return files


WARP_FROM = ("auto", "previous", "key")


def propagate_for(warp_from: str, models: Any) -> bool:
    """
    Whether the flow path warps the previous output (``--warp-from``).

    ``auto``: when the DN can judge a chain, i.e. the DN v2, whose cues are taken against the key;
    DVSNet's DN v1 reads the flow net's features of one pair only, so with it the flow path warps the
    key, as in the paper.
    """
    if warp_from not in WARP_FROM:
        raise ModelError(f"unknown --warp-from {warp_from!r} (use {', '.join(WARP_FROM)})")
    if warp_from == "auto":
        return getattr(models, "dn_version", "v2") != "v1"
    return warp_from == "previous"


def pad_to_multiple(image: UInt8Array, multiple: int = PAD_MULTIPLE) -> UInt8Array:
    """Edge-replicate the bottom/right of an (h, w, 3) image up to multiples of ``multiple``."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(image)
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


#: What :meth:`OnnxModels.flow` returns for the cues when asked not to compute them.
_NO_CUES: FloatArray = np.zeros((0,), np.float32)


class OnnxModels:
    """The seg net, a flow source and a DN as onnxruntime sessions (the processor's ``Models``)."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        warmup: bool = True,
        *,
        threads: ThreadPolicy | None = None,
        provider_options: Mapping[str, Mapping[str, str]] | str | None = None,
        flow: str = DEFAULT_FLOW,
        dn: str = "auto",
    ) -> None:
        self.model_dir = resolve_model_dir(model_dir)
        self.providers = resolve_providers(providers)
        self.policy = threads or ThreadPolicy(intra_op_threads)
        opts = parse_provider_options(provider_options) if isinstance(provider_options, str) else None
        self.provider_options = {k: dict(v) for k, v in (opts or provider_options or {}).items()}  # type: ignore[union-attr]
        unknown = sorted(set(self.provider_options) - set(self.providers))
        if unknown:
            raise ModelError(f"provider options for {', '.join(unknown)}, which is not in the providers list")
        try:
            kind, preset, scale = parse_flow_spec(flow)
        except FlowSpecError as e:
            raise ModelError(str(e)) from None
        if dn not in DN_VERSIONS:
            raise ModelError(f"unknown DN version {dn!r} (use {', '.join(DN_VERSIONS)})")
        if dn == "auto":
            dn = "v1" if kind == "onnx" else "v2"
        if dn == "v1" and kind != "onnx":
            raise ModelError(
                f"DN v1 reads FlowNet features: it needs --flow onnx, not {flow!r} (use --dn v2)"
            )
        self.flow_kind = kind
        self.flow_source = canonical_flow_spec(flow)
        self.dn_version = dn
        self.intra_op_threads = self.policy.intra_op_threads
        self._dis = DisFlow(preset, scale) if kind == "dis" else None
        self.files = {k: self.model_dir / f for k, f in model_files(flow, dn).items()}
        self.sessions: dict[str, Any] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        for k, path in self.files.items():
            if not path.is_file():
                hint = " (a model set from before the DN v2: pass --flow onnx)" if k == "dn2" else ""
                raise ModelError(f"model file {path} is missing{hint}")
            sess = make_session(path, self.providers, self.policy, self.provider_options)
            ins = tuple(i.name for i in sess.get_inputs())
            outs = tuple(o.name for o in sess.get_outputs())
            want_in, want_out = MODEL_IO[k]
            if ins != want_in or outs != want_out:
                raise ModelError(
                    f"model file {path} has inputs {list(ins)} / outputs {list(outs)}, "
                    f"expected {list(want_in)} / {list(want_out)} (see docs/DESIGN.md)"
                )
            self.sessions[k] = sess
            self.metadata[k] = dict(sess.get_modelmeta().custom_metadata_map)
        # The active DN's metadata is what thresholds are read from (model_defaults.default_threshold).
        self.metadata["dn"] = self.metadata.pop("dn2", self.metadata.get("dn", {}))
        self.pad = {k: self._pad_multiple(k) for k in self.files}
        if warmup:
            self.warmup()

    def _pad_multiple(self, kind: str) -> int:
        meta = self.metadata["dn" if kind == "dn2" else kind]
        raw = meta.get("pad_multiple", DEFAULT_PAD[kind])
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ModelError(f"model file {self.files[kind]}: bad pad_multiple {raw!r}")
        return value

    def _run(self, kind: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            out: list[np.ndarray] = self.sessions[kind].run(None, feeds)
        except Exception as e:
            raise ModelError(f"model file {self.files[kind]} failed to run: {e}") from e
        return out

    def seg(self, image: UInt8Array) -> FloatArray:
        """(h, w, 3) RGB -> logits (19, ceil(h/4), ceil(w/4)) float32."""
        gh, gw = logit_grid(*image.shape[:2])
        (logits,) = self._run("seg", {"image": pad_to_multiple(image, self.pad["seg"])[None]})
        return np.ascontiguousarray(logits[0, :, :gh, :gw], dtype=np.float32)

    def flow(
        self, key: UInt8Array, current: UInt8Array, *, cues: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """
        Backward flow (2, ceil(h/4), ceil(w/4)) current -> key, and what the DN reads.

        The DN input is FlowNet's features (64, 4, 8) for DN v1, else the decision cues (8, 4, 8);
        with ``cues=False`` the cues are skipped (an empty array comes back in their place).
        """
        if self._dis is not None:
            kg, cg = to_gray(key), to_gray(current)
            fl = self._dis.gray_flow(kg, cg)
            return fl, (decision_cues(kg, cg, fl) if cues else _NO_CUES)
        gh, gw = logit_grid(*current.shape[:2])
        flow, feats = self._run(
            "flow",
            {
                "key": pad_to_multiple(key, self.pad["flow"])[None],
                "current": pad_to_multiple(current, self.pad["flow"])[None],
            },
        )
        fl = np.ascontiguousarray(flow[0, :, :gh, :gw], dtype=np.float32)
        if self.dn_version == "v2":
            return fl, (decision_cues(to_gray(key), to_gray(current), fl) if cues else _NO_CUES)
        return fl, np.ascontiguousarray(feats[0], dtype=np.float32)

    def dn_cues(self, key: UInt8Array, current: UInt8Array, flow: FloatArray) -> FloatArray | None:
        """The DN v2's cues of ``current`` against ``key`` for a given flow (None for DN v1)."""
        if self.dn_version == "v1":
            return None
        return decision_cues(to_gray(key), to_gray(current), flow)

    def dn(self, features: FloatArray, key_age: int = 1) -> float:
        """Predicted flow-path agreement (0..100) from :meth:`flow`'s DN input and the key's age."""
        if self.dn_version == "v1":
            (score,) = self._run("dn", {"features": np.ascontiguousarray(features, np.float32)[None]})
        else:
            feeds = {
                "cues": np.ascontiguousarray(features, np.float32)[None],
                "age": age_input(key_age)[None],
            }
            (score,) = self._run("dn2", feeds)
        return float(np.asarray(score).reshape(-1)[0])

    def warmup(self, height: int = 64, width: int = 96) -> None:
        """Run every net once (first-run allocations) and check output shapes against the contract."""
        img = np.zeros((height, width, 3), np.uint8)
        gh, gw = logit_grid(height, width)
        logits = self.seg(img)
        self._expect("seg", logits.shape, (NUM_CLASSES, gh, gw))
        flow, feats = self.flow(img, img)
        self._expect("flow", flow.shape, (2, gh, gw))
        kind = "dn" if self.dn_version == "v1" else "dn2"
        self._expect(kind, feats.shape, FEATURES_SHAPE if kind == "dn" else CUES_SHAPE)
        if kind == "dn":
            (score,) = self._run("dn", {"features": feats[None]})
        else:
            (score,) = self._run("dn2", {"cues": feats[None], "age": age_input(1)[None]})
        self._expect(kind, score.shape, (1, 1))

    def _expect(self, kind: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
        if tuple(got) != tuple(want):
            where = self.files.get(kind) or f"flow source {self.flow_source}"
            raise ModelError(
                f"model file {where} produced shape {tuple(got)}, expected {tuple(want)} (see docs/DESIGN.md)"
            )

    def describe(self) -> dict[str, Any]:
        """What ran the benchmark: models, flow source, DN, providers, threads, onnxruntime version."""
        import onnxruntime as ort

        return {
            "model_dir": str(self.model_dir),
            "flow_source": self.flow_source,
            "dn": self.dn_version,
            "providers": list(self.providers),
            "provider_options": self.provider_options,
            "intra_op_threads": self.intra_op_threads,
            "threads": self.policy.describe(),
            "onnxruntime": ort.__version__,
            "metadata": self.metadata,
        }
