"""
``master`` node: camera images in, segmentation out, the cluster's master logic in between.

Subscribes to ``image`` (``sensor_msgs/Image``; remap it to the camera, e.g. ``image:=/camera/image_raw``)
or, with ``compressed: true``, ``image/compressed`` (``sensor_msgs/CompressedImage``), with sensor-data
QoS. Each image becomes a frame of :class:`~dvs_cluster.nodes.master.MasterNode` (split, schedule on
the slaves through the chosen transport, gather, assemble in order); finished frames are published,
every one with the input's header (stamp and frame_id), at the input's size:

- ``segmentation``: mono8 Cityscapes trainIds (255 = ignore), the machine-readable result;
- ``segmentation_color``: rgb8 Cityscapes palette; ``overlay``: rgb8 palette blended over the input;
- ``stats``: ``std_msgs/String`` with the master's JSON report (fps, drops, per-slave work, latency);
- ``/diagnostics``: ``diagnostic_msgs/DiagnosticArray`` (REP 107), WARN while fewer slaves than
  ``slaves_expected`` are alive or frames were dropped since the last report.

The camera is subscribed only once ``slaves_expected`` slaves joined (or ``wait_timeout`` passed with
at least one), so frames are not queued for a cluster that cannot serve them yet.

Threads (the structure of ros2/demos nodes, plus one worker): the executor runs the camera callback,
which converts the image and pushes the frame, its header included, into the master's inbox
(:meth:`~dvs_cluster.nodes.master.MasterNode.push`) and touches nothing the master thread writes; the
master thread runs :meth:`~dvs_cluster.nodes.master.MasterNode.run`, the loop ``dvs-cluster master``
runs, and publishes the outputs, ``stats`` and ``/diagnostics`` from it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from rclpy.node import Node

from dvs_cluster.core.classes import colorize, overlay
from dvs_cluster.core.policy import policy_spec
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.io.frame import Frame, FrameTransform
from dvs_cluster.io.sinks import _jsonable
from dvs_cluster.nodes.master import MasterConfig, MasterNode
from dvs_cluster.ros.common import (
    ImageCodec,
    input_qos,
    make_transport,
    output_qos,
    ros_time,
    run_node,
    stamp_nanoseconds,
)
from dvs_cluster.ros.log_bridge import forward_logging, stop_forwarding
from dvs_cluster.ros.params import ParameterError, declare
from dvs_cluster.ros.specs import MASTER_SPECS


class _RosSink:
    """Publishes finished frames with their input header (a :class:`~dvs_cluster.io.sinks.Sink`)."""

    def __init__(self, node: MasterRos) -> None:
        self.node = node

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        self.node.publish_frame(frame, labels)

    def close(self) -> None:
        return None


class MasterRos(Node):
    """The cluster master as a ROS 2 node (the loop runs on its own thread; rclpy spins callbacks)."""

    def __init__(self, node_name: str = "master", **kwargs: Any) -> None:
        """Declare and validate parameters, open the transport, start the master thread."""
        super().__init__(node_name, **kwargs)
        self._log_handler = forward_logging(self)  # dvs_cluster.* records -> this node's logger, /rosout
        p = self.p = declare(self, MASTER_SPECS)
        try:
            RegionGrid(p["width"], p["height"], p["rows"], p["cols"], p["overlap"])
        except ValueError as exc:
            raise ParameterError(f"parameter 'width'/'height'/'rows'/'cols'/'overlap': {exc}") from None
        self.codec = ImageCodec(p["use_cv_bridge"])
        self.config = MasterConfig(
            cluster_id=p["cluster_id"],
            width=p["width"],
            height=p["height"],
            rows=p["rows"],
            cols=p["cols"],
            overlap=p["overlap"],
            policy=policy_spec(p["policy"], p["max_age"]),
            threshold=p["threshold"],
            max_in_flight=p["max_in_flight"],
            max_queued_frames=p["max_queued_frames"],
            timeout_s=p["timeout"],
            forward_threshold=p["forward_threshold"],
            affinity=p["affinity"],
            region_order=p["region_order"],
            key_quantize=p["key_quantize"],
            status_period_s=p["status_period"],  # the heartbeat hook publishes stats and /diagnostics
            lost_s=0.0,  # a ROS master waits for slaves for ever (docs/OPERATIONS.md)
            keep_trace=False,  # a live stream runs for ever: no per-region history
        )
        self.transport = make_transport(self, p)
        self.master = MasterNode(self.transport, self.config, heartbeat=self._publish_stats)
        qos = output_qos()
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.pub_seg = self.create_publisher(Image, "segmentation", qos)
        self.pub_color = (
            self.create_publisher(Image, "segmentation_color", qos) if p["publish_color"] else None
        )
        self.pub_overlay = self.create_publisher(Image, "overlay", qos) if p["publish_overlay"] else None
        self.pub_stats = self.create_publisher(String, "stats", qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        # Camera callback state (the executor runs it one call at a time: the node's default callback
        # group is mutually exclusive); the master thread reads only ``_bad_input``, written there alone.
        self._transforms: dict[tuple[int, int], FrameTransform] = {}
        self._next_index = 0
        self._bad_input = 0
        self._last_dropped = 0  # master thread
        self._camera_sub: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dvs-master", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"master up: cluster {p['cluster_id']!r}, transport {p['transport']}, "
            f"{p['width']}x{p['height']} in {p['rows']}x{p['cols']} regions, images via {self.codec.name}"
        )

    # -- camera --------------------------------------------------------------------------------------

    def _subscribe_camera(self) -> None:
        qos = input_qos(self.p["input_reliability"])
        if self.p["compressed"]:
            from sensor_msgs.msg import CompressedImage

            self._camera_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos
            )
        else:
            from sensor_msgs.msg import Image

            self._camera_sub = self.create_subscription(Image, "image", self._on_image, qos)
        self.get_logger().info(f"subscribed to {self._camera_sub.topic_name}")

    def _on_image(self, msg: Any) -> None:
        """Executor thread: convert and push the frame, header included, to the master (never blocks)."""
        try:
            if self.p["compressed"]:
                from dvs_cluster.io.imgmsg import compressed_to_rgb

                rgb = compressed_to_rgb(msg)
            else:
                rgb = self.codec.to_rgb(msg)
            h, w = rgb.shape[:2]
            if h <= 0 or w <= 0:
                raise ValueError(f"image of size {w}x{h}")
            tf = self._transforms.get((w, h))
            if tf is None:  # a size change mid-stream gets its own letterbox
                if len(self._transforms) >= 16:  # a camera flipping sizes must not grow memory
                    self._transforms.clear()
                tf = self._transforms[(w, h)] = FrameTransform(
                    w, h, self.config.width, self.config.height, self.p["resize"]
                )
            image = tf.forward(rgb)
        except Exception as exc:  # never let one bad image kill the executor
            self._bad_input += 1
            self.get_logger().warning(f"dropped input image: {exc}", throttle_duration_sec=5.0)
            return
        index = self._next_index
        self._next_index += 1
        ns = stamp_nanoseconds(msg.header.stamp)
        frame = Frame(index, image, None, ns * 1e-9, tf, rgb, frame_id=msg.header.frame_id, stamp_ns=ns)
        self.master.push(frame)  # a full inbox counts it in and dropped, on the master's thread

    # -- outputs -------------------------------------------------------------------------------------

    def publish_frame(self, frame: Frame, labels: np.ndarray) -> None:
        """Master thread: publish one finished frame (labels at the input size) with its input's header."""
        from std_msgs.msg import Header

        ns = frame.stamp_ns if frame.stamp_ns is not None else round(frame.stamp * 1e9)
        header = Header(stamp=ros_time(ns), frame_id=frame.frame_id)
        self.pub_seg.publish(self.codec.to_msg(labels, header))
        if self.pub_color is not None:
            self.pub_color.publish(self.codec.to_msg(colorize(labels), header))
        if self.pub_overlay is not None:
            self.pub_overlay.publish(self.codec.to_msg(overlay(frame.raw, labels), header))

    def _publish_stats(self, m: MasterNode) -> None:
        """Master thread, every ``status_period`` (the master's heartbeat hook): stats, /diagnostics."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        from std_msgs.msg import String

        rep = m.report()
        rep["slaves_alive"] = sorted(m.wm.slaves)
        rep["bad_input"] = self._bad_input
        self.pub_stats.publish(String(data=json.dumps(_jsonable(rep))))
        alive = len(m.wm.slaves)
        dropped = m.frames_dropped - self._last_dropped
        self._last_dropped = m.frames_dropped
        level, msg = DiagnosticStatus.OK, f"{alive} slave(s), {rep['fps']:.1f} fps"
        if alive < self.p["slaves_expected"]:
            level, msg = DiagnosticStatus.WARN, f"{alive} of {self.p['slaves_expected']} slaves alive"
        elif dropped:
            level, msg = (
                DiagnosticStatus.WARN,
                f"{dropped} frame(s) dropped: the cluster is slower than the camera",
            )
        values = {
            "frames_in": m.frames_in,
            "frames_out": m.frames_out,
            "frames_dropped": m.frames_dropped,
            "frames_pending": m.pending,
            "fps": round(rep["fps"], 2),
            "seg_fraction": round(rep["seg_fraction"], 3),
            "slaves_alive": alive,
            "malformed": m.malformed,
            "bad_input": self._bad_input,
        }
        for name, st in rep["per_slave"].items():
            values[f"regions[{name}]"] = st["regions"]
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: cluster {self.config.cluster_id}",
            message=msg,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    # -- the master thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        m, stop = self.master, self._stop
        waited = m.wait_for_slaves(self.p["slaves_expected"], self.p["wait_timeout"], stop)
        if not waited and not stop.is_set():
            self.get_logger().warning(
                f"only {len(m.wm.slaves)} of {self.p['slaves_expected']} slaves after "
                f"{self.p['wait_timeout']:g} s; waiting for one"
            )
            while not m.wait_for_slaves(1, 1.0, stop) and not stop.is_set():
                pass
        if stop.is_set():
            return
        self.get_logger().info(f"slaves alive: {', '.join(sorted(m.wm.slaves))}")
        self._subscribe_camera()
        try:
            m.run(None, [_RosSink(self)], stop=stop)
        except Exception as exc:
            if stop.is_set() or not self.context.ok():
                return  # shutting down: a publisher whose context is gone
            self.get_logger().fatal(f"master loop failed: {exc!r}")  # say why output stopped
            raise

    def close(self) -> None:
        """Stop the master thread, withdraw from the cluster, close the transport."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.master.close()
        self.transport.close()
        stop_forwarding(self._log_handler)


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run dvs_cluster master``."""
    return run_node(MasterRos, args)


if __name__ == "__main__":
    raise SystemExit(main())
