"""
One table of the master's and the slave's options: name, default, bounds, choices, help, CLI flag.

Each :class:`Option`'s ``name`` is its name everywhere: the ROS parameter, the key in ``config/*.yaml``,
the field of :class:`~dvs_cluster.nodes.master.MasterConfig` (``config_field`` where that carries a
unit suffix) and of :class:`~dvs_cluster.sim.des.SimConfig`, and the argparse ``dest`` of ``flag``
(old spellings stay as ``aliases``). The ROS parameter specs (:mod:`dvs_cluster.ros.specs`) and the
scheduling options of ``dvs-cluster master | run`` are generated from it; ``test/test_options.py``
checks every other place (the hand-written argparse groups, the YAML, the simulator) against it.

Plain data (standard library and the validators only), so the CLI, the ROS nodes and the tests can
read it without rclpy, onnxruntime or OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dvs_cluster import validate

# Copies of the constants of the modules that own them (this module imports none of them, so that
# ``dvs-cluster --help`` does not load numpy or OpenCV); test/test_options.py checks they are equal.
#: ``core.policy.DEFAULT_MAX_AGE``: the DVSNet rule's key-age cap when none is given.
DEFAULT_MAX_AGE = 4
#: ``core.scheduler.DEFAULT_MAX_IN_FLIGHT``: tasks in flight per slave.
DEFAULT_MAX_IN_FLIGHT = 2
#: ``inference.DEFAULT_FLOW``: the default flow source.
DEFAULT_FLOW = "dis"
#: ``core.scheduler.REGION_ORDERS``; ``io.frame.RESIZE_MODES``.
REGION_ORDERS: tuple[str, ...] = ("fifo", "prefer", "strict")
RESIZE_MODES: tuple[str, ...] = ("letterbox", "stretch")
QUANTIZE = ("float32", "float16", "uint8")
#: ``MasterConfig.threshold`` / the ROS ``threshold`` for "the slaves' model default" (model_defaults).
THRESHOLD_MODEL_DEFAULT = -1.0


@dataclass(frozen=True)
class Option:
    """One option of the master or the slave, as every front end sees it."""

    name: str
    default: Any  # the CLI's and the config's default (None: decided at run time, see ``ros_default``)
    help: str
    flag: str | None = None  # the CLI flag (None: a ROS-only parameter)
    aliases: tuple[str, ...] = ()  # older CLI spellings, still accepted
    lo: float | None = None  # bounds of the ROS parameter (its descriptor's range)
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None  # argparse type of the flag
    ros: bool = True  # a parameter of the ROS node
    ros_value: Any = None  # the ROS default where ``default`` is None (ROS parameters cannot be None)
    config_field: str | None = None  # the MasterConfig field, when it is ``name`` plus a unit
    metavar: str | None = None  # the CLI's placeholder for the value

    @property
    def ros_default(self) -> Any:
        """The default the ROS node declares."""
        return self.default if self.ros_value is None else self.ros_value

    @property
    def field(self) -> str:
        """The MasterConfig field this option sets."""
        return self.config_field or self.name


def _opts(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


#: The master: the frame and its grid, the decision rule, scheduling (CLI ``master``/``run``, ROS master).
MASTER: dict[str, Option] = _opts(
    Option(
        "width",
        1024,
        f"processing width, >= {validate.MIN_FRAME_SIDE} (frames are letterboxed to it)",
        "--width",
        lo=64,
        hi=8192,
        type=validate.frame_side,
    ),
    Option(
        "height",
        512,
        f"processing height, >= {validate.MIN_FRAME_SIDE}",
        "--height",
        lo=64,
        hi=8192,
        type=validate.frame_side,
    ),
    Option("rows", 2, "region grid rows", "--rows", lo=1, hi=8, type=validate.positive_int),
    Option("cols", 2, "region grid columns", "--cols", lo=1, hi=8, type=validate.positive_int),
    Option(
        "overlap", 0, "region overlap margin in pixels", "--overlap", lo=0, hi=256, type=validate.nonneg_int
    ),
    Option(
        "resize",
        "letterbox",
        "fit other input sizes: keep aspect + edge-replicated bars (letterbox) or plain resize (stretch)",
        "--resize",
        choices=RESIZE_MODES,
    ),
    Option("policy", "dvsnet", "decision policy: dvsnet | dynamic | segpath | fixedK", "--policy"),
    Option(
        "max_age",
        None,
        "replace a key this many frames old whatever the DN says (0: DVSNet's rule alone)",
        "--max-age",
        lo=0,
        hi=1000,
        type=validate.nonneg_int,
        ros_value=DEFAULT_MAX_AGE,
    ),
    Option(
        "threshold",
        None,
        "DN threshold 0..100 (score below: segmentation path); default: the slaves' model card, else 90",
        "--threshold",
        lo=-1.0,
        hi=100.0,
        type=validate.threshold,
        ros_value=THRESHOLD_MODEL_DEFAULT,
    ),
    Option(
        "slaves_expected",
        1,
        "slaves to wait for (the ROS master subscribes to the camera then)",
        "--slaves-expected",
        lo=1,
        hi=256,
        type=validate.positive_int,
    ),
    Option(
        "wait_timeout",
        60.0,
        "seconds to wait for them (the ROS master then goes on once one slave is alive)",
        "--wait-timeout",
        aliases=("--wait",),
        lo=0.0,
        hi=3600.0,
        type=validate.nonneg_float,
    ),
    Option(
        "max_in_flight",
        DEFAULT_MAX_IN_FLIGHT,
        "tasks in flight per slave (a second one hides the round trip)",
        "--max-in-flight",
        lo=1,
        hi=64,
        type=validate.positive_int,
    ),
    Option(
        "max_queued_frames",
        4,
        "frames waiting for slaves at most (older ones are dropped)",
        "--max-queued-frames",
        aliases=("--queue",),
        lo=1,
        hi=1000,
        type=validate.positive_int,
    ),
    Option(
        "timeout",
        10.0,
        "re-dispatch a task unanswered this long (s)",
        "--timeout",
        lo=0.1,
        hi=600.0,
        type=validate.positive_float,
        config_field="timeout_s",
    ),
    Option(
        "lost",
        30.0,
        "no slave alive this long with work open: drop the open frames and stop (s; 0 = wait for ever)",
        "--lost",
        type=validate.nonneg_float,
        ros=False,  # a ROS master waits for slaves for ever (docs/OPERATIONS.md)
        config_field="lost_s",
    ),
    Option(
        "status_period",
        1.0,
        "master heartbeat period: <prefix>/master/status, and the ROS stats and /diagnostics (s; 0 = off)",
        "--status-period",
        lo=0.1,
        hi=60.0,
        type=validate.nonneg_float,
        config_field="status_period_s",
    ),
    Option(
        "forward_threshold",
        0,
        "forward the global key when the slave's is more than this many frames older",
        "--forward-threshold",
        lo=0,
        hi=1000,
        type=int,
    ),
    Option("affinity", False, "prefer the slave holding the freshest key of a region", "--affinity"),
    Option(
        "region_order",
        "prefer",
        "which job a free slave gets: fifo = the head of the queue (the paper); strict = a region "
        "waits while the same region of an earlier frame is in flight (one board's keys and mIoU, "
        "about 2.4x at most); prefer (default) = a region with nothing in flight first, else behind a "
        "region's newest job on its slave when that slave has a free slot, else the region whose newest "
        "job started last",
        "--region-order",
        choices=REGION_ORDERS,
    ),
    Option(
        "key_quantize",
        "float32",
        "encoding of forwarded key logits (float32: exact)",
        "--key-quantize",
        choices=QUANTIZE,
    ),
    Option(
        "rate",
        0.0,
        "emulate a camera at this fps (counted drops); 0 = off",
        "--rate",
        type=validate.nonneg_float,
        ros=False,  # the camera sets the pace
    ),
    # ROS only: the camera subscription and the outputs.
    Option("compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage)"),
    Option("input_reliability", "best_effort", "camera QoS reliability", choices=("best_effort", "reliable")),
    Option("publish_color", True, "publish segmentation_color (rgb8)"),
    Option("publish_overlay", True, "publish overlay (rgb8)"),
    Option("use_cv_bridge", True, "convert images with cv_bridge (else the identical pure numpy code)"),
)

#: The slave: what builds its nets and what it sends back (CLI ``slave``/``run``, ROS slave).
SLAVE: dict[str, Option] = _opts(
    Option(
        "models",
        None,
        "model directory (default: $DVS_CLUSTER_MODELS, installed, repo)",
        "--models",
        ros_value="",
    ),
    Option(
        "providers",
        "cpu",
        "onnxruntime execution providers in order, e.g. cpu | cuda,cpu | tensorrt,cuda,cpu",
        "--providers",
        ros_value=["cpu"],  # a ROS string list
    ),
    Option(
        "provider_options",
        None,
        "onnxruntime provider options, PROVIDER:KEY=VALUE[,KEY=VALUE][;PROVIDER:...], e.g. the TensorRT "
        "engine cache (docs/ROS2.md)",
        "--provider-options",
        ros_value="",
        metavar="SPEC",
    ),
    Option(
        "threads",
        None,
        "intra-op threads of each net (default: every core this process may use; threads never spin)",
        "--threads",
        lo=0,
        hi=256,
        type=validate.positive_int,
        ros_value=0,  # 0: every core
    ),
    Option(
        "flow",
        None,
        "flow source of the flow path: dis[:ultrafast|fast|medium][@SCALE] | onnx (FlowNet-S)",
        "--flow",
        ros_value=DEFAULT_FLOW,
        metavar="SOURCE",
    ),
    Option(
        "dn",
        "auto",
        "decision network: auto | v1 (DVSNet's, on FlowNet features) | v2 (cues any flow gives)",
        "--dn",
        choices=("auto", "v1", "v2"),
    ),
    Option(
        "warp_from",
        "auto",
        "what the flow path warps: previous output (one-frame flows) | key (DVSNet) | auto (by the DN)",
        "--warp-from",
        choices=("auto", "previous", "key"),
    ),
    Option(
        "result_quantize",
        "float32",
        "encoding of the seg-path logits sent back to the master (float32: exact keys)",
        "--result-quantize",
        choices=QUANTIZE,
    ),
    # ROS only.
    Option("slave_name", "", "name in the cluster (default: the node name; the CLI's --name)"),
    Option("heartbeat_period", 0.5, "seconds between SlaveStatus heartbeats", lo=0.05, hi=10.0),
    Option("diagnostics_period", 1.0, "seconds between /diagnostics messages", lo=0.1, hi=60.0),
)

#: Both: the cluster id (a key prefix and a ROS topic chunk).
CLUSTER_ID = Option(
    "cluster_id",
    "default",
    "cluster id, prefix of every key and topic",
    "--cluster-id",
    aliases=("--cluster",),
)


def help_text(o: Option) -> str:
    """The CLI help of ``o``: its help and its default (a None default is explained in the help)."""
    if o.default is None or isinstance(o.default, bool) or "default" in o.help:
        return o.help
    return f"{o.help} (default {o.default})"


def add_to(group: Any, options: dict[str, Option], names: tuple[str, ...]) -> None:
    """Add the options ``names`` to an argparse group: flag, aliases, dest, default, type, choices, help."""
    for name in names:
        o = options[name]
        assert o.flag is not None, name
        kw: dict[str, Any] = {"dest": o.name, "default": o.default, "help": help_text(o)}
        if o.metavar:
            kw["metavar"] = o.metavar
        if isinstance(o.default, bool):
            kw["action"] = "store_true"
        else:
            if o.type is not None:
                kw["type"] = o.type
            if o.choices is not None:
                kw["choices"] = o.choices
        group.add_argument(o.flag, *o.aliases, **kw)
