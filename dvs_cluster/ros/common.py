"""
Shared by the nodes: transport selection, image conversion (cv_bridge or the pure twin), QoS, ``main``.

Transport parameters (every cluster node):

- ``transport``: ``ros`` (topics of ``dvs_cluster_interfaces`` types), ``zenoh`` (the pip-only
  backend), or ``ros,zenoh`` (both at once: a master reaching ROS and Zenoh slaves);
- ``zenoh_mode``, ``zenoh_listen``, ``zenoh_connect``: as the CLI's ``--mode/--listen/--connect``
  (endpoints comma-separated, e.g. ``tcp/192.168.1.10:7447``).
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dvs_cluster.io import imgmsg
from dvs_cluster.ros.params import ParameterError, Spec
from dvs_cluster.transport.base import Transport, check_name

UInt8Array = npt.NDArray[np.uint8]
TRANSPORTS = ("ros", "zenoh", "ros,zenoh")
_ROS_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_ros_name(value: str) -> str | None:
    """Why ``value`` cannot be a chunk of both a cluster key and a ROS topic name (None if it can)."""
    try:
        check_name(value)
    except ValueError as exc:
        return str(exc)
    if not _ROS_TOKEN.match(value) or "__" in value:
        return f"{value!r} is not usable in a ROS topic name (letters, digits, '_'; no leading digit)"
    return None


def transport_specs() -> list[Spec]:
    """Parameters choosing and configuring the cluster transport."""
    return [
        Spec("transport", "ros", "cluster transport between master and slaves", choices=TRANSPORTS),
        Spec("zenoh_mode", "peer", "zenoh session mode", choices=("peer", "client", "router")),
        Spec("zenoh_listen", "", "zenoh listen endpoints, comma-separated (e.g. tcp/0.0.0.0:7447)"),
        Spec("zenoh_connect", "", "zenoh connect endpoints, comma-separated (e.g. tcp/10.0.0.2:7447)"),
    ]


def _endpoints(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def make_transport(node: Any, p: dict[str, Any]) -> Transport:
    """The transport the parameters ask for (:func:`dvs_cluster.transport.open`); ROS lives on ``node``."""
    from dvs_cluster import transport

    zenoh = {
        "mode": p["zenoh_mode"],
        "listen": _endpoints(p["zenoh_listen"]),
        "connect": _endpoints(p["zenoh_connect"]),
    }
    try:
        return transport.open(str(p["transport"]), ros={"node": node}, zenoh=zenoh)
    except Exception as exc:  # no eclipse-zenoh, or an endpoint that cannot be bound
        raise ParameterError(f"parameter 'transport': {p['transport']} unavailable: {exc}") from exc


# -- images --------------------------------------------------------------------------------------------


class ImageCodec:
    """Image messages <-> numpy through cv_bridge when present (ROS machines), else :mod:`imgmsg`."""

    def __init__(self, use_cv_bridge: bool = True) -> None:
        """Pick the converter once; ``name`` says which for the logs."""
        self.bridge: Any = None
        if use_cv_bridge:
            try:
                from cv_bridge import CvBridge

                self.bridge = CvBridge()
            except ImportError:
                self.bridge = None
        self.name = "cv_bridge" if self.bridge is not None else "dvs_cluster.io.imgmsg"

    def to_rgb(self, msg: Any) -> UInt8Array:
        """``sensor_msgs/Image`` -> (h, w, 3) RGB."""
        if self.bridge is not None:
            # Same checks as without cv_bridge first (encoding, zero size, step, data length): cv_bridge
            # answers some of them with TypeError or an empty array, and a camera callback must not die.
            imgmsg.image_to_array(msg)
            try:
                return np.asarray(self.bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"), dtype=np.uint8)
            except Exception as exc:
                raise imgmsg.ImageEncodingError(f"cv_bridge: {exc}") from None
        return imgmsg.image_to_rgb(msg)

    def to_msg(self, array: UInt8Array, header: Any) -> Any:
        """(h, w) -> mono8 / (h, w, 3) -> rgb8 ``sensor_msgs/Image`` carrying ``header``."""
        if self.bridge is not None:
            enc = "mono8" if array.ndim == 2 else "rgb8"
            msg = self.bridge.cv2_to_imgmsg(np.ascontiguousarray(array), encoding=enc)
        else:
            from sensor_msgs.msg import Image

            f = imgmsg.image_fields(array)
            msg = Image(
                height=f["height"],
                width=f["width"],
                encoding=f["encoding"],
                is_bigendian=f["is_bigendian"],
                step=f["step"],
            )
            msg.data.frombytes(f["data"])
        msg.header = header
        return msg


# -- QoS -----------------------------------------------------------------------------------------------


def output_qos(depth: int = 10) -> Any:
    """Reliable, volatile, keep-last: ROS 2's default publisher profile (REP 2003 for derived images)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def input_qos(reliability: str) -> Any:
    """Sensor-data QoS (best effort, depth 5) by default, as REP 2003 asks of sensor subscribers."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if reliability == "reliable":
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data


# -- main ----------------------------------------------------------------------------------------------


def run_node(factory: Callable[[], Any], args: Sequence[str] | None = None, threads: int = 4) -> int:
    """
    ``rclpy.init``, build the node, spin an executor (multi-threaded for ``threads`` > 1) until Ctrl-C.

    A :class:`ParameterError` (or another start-up error the node raises as ``ValueError``/
    ``RuntimeError``) is printed as one line naming the parameter, and the exit status is 2.

    Signals are this function's, not rclpy's: rclpy's handler shuts the context down from its own thread
    while the main thread, woken by the same signal, already cleans up (a race; CI saw the camera die with
    SIGSEGV on Jazzy), and Ctrl-C reaches a launched node twice (terminal and ``ros2 launch``), the second
    one landing anywhere in the clean-up as a KeyboardInterrupt (CI, Humble). Here the first SIGINT or
    SIGTERM only asks the spin loop to end; the clean-up then runs once, in order, with later signals ignored.
    """
    import threading

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from dvs_cluster.transport.ros import spin, stop_executor

    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    node = None
    executor = None
    try:
        try:
            node = factory()
        except ParameterError as exc:
            print(f"[dvs_cluster] error: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:  # Ctrl-C while the node was starting (the default handler is still on)
            return 130
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        try:
            spin(executor, node.context, stop)
        except ExternalShutdownException:
            pass
        return int(getattr(node, "exit_code", 0))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if executor is not None and not stop_executor(executor):
            print("[dvs_cluster] clean-up: a callback did not finish within 2 s", file=sys.stderr, flush=True)
        if node is not None:
            close = getattr(node, "close", None)
            try:
                if close is not None:
                    close()
                node.destroy_node()
            except Exception as exc:  # already shut down underneath
                print(f"[dvs_cluster] clean-up: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()


def stamp_nanoseconds(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds: exact, so outputs carry the input's stamp."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ros_time(ns: int) -> Any:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (the inverse of :func:`stamp_nanoseconds`)."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)
