"""
rosbag2 in and out with the ``rosbags`` package (no ROS needed): replay a recording, record the outputs.

:class:`BagSource` reads ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` frames of one topic
from a rosbag2 bag (a directory with ``metadata.yaml``; sqlite3 or MCAP storage) in log order, with the
messages' header stamps. :class:`BagRecorder` is a sink writing an MCAP rosbag2 bag: ``/segmentation``
(mono8 trainIds), ``/segmentation_color`` and ``/overlay`` (rgb8), each frame with its input's header
(stamp and frame_id copied exactly for bag input), and ``/stats`` (``std_msgs/String``, the run's JSON
report, once at the end). Image conversion is :mod:`dvs_cluster.io.imgmsg`, the same as cv_bridge's.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dvs_cluster.core.classes import colorize, overlay
from dvs_cluster.io import imgmsg
from dvs_cluster.io.frame import DEFAULT_HEIGHT, DEFAULT_WIDTH, Frame, ResizeMode, Source, SourceError
from dvs_cluster.io.sinks import SinkError, _jsonable

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
OUTPUT_TOPICS = {
    "/segmentation": IMAGE,
    "/segmentation_color": IMAGE,
    "/overlay": IMAGE,
    "/stats": STRING,
}


def is_bag(path: str | os.PathLike[str]) -> bool:
    """A rosbag2 directory (``metadata.yaml`` inside)."""
    p = Path(path)
    return p.is_dir() and (p / "metadata.yaml").is_file()


class BagSource(Source):
    """Frames of one image topic of a rosbag2 bag; ``header(index)`` gives each frame's exact header."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        topic: str | None = None,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        resize: ResizeMode = "letterbox",
    ) -> None:
        """Open the bag and pick the topic (the only image topic when ``topic`` is None)."""
        from rosbags.highlevel import AnyReader

        super().__init__(width, height, resize)
        self.path = Path(path)
        try:
            self.reader = AnyReader([self.path])
            self.reader.open()
            self._opened = True
        except Exception as exc:  # rosbags raises its own errors for unreadable bags
            raise SourceError(f"bag {self.path} cannot be read: {exc}") from exc
        images = {c.topic: c.msgtype for c in self.reader.connections if c.msgtype in (IMAGE, COMPRESSED)}
        if topic is None:
            if len(images) != 1:
                self.reader.close()
                found = ", ".join(sorted(images)) or "none"
                raise SourceError(f"bag {self.path}: give --topic (image topics: {found})")
            topic = next(iter(images))
        if topic not in images:
            self.reader.close()
            found = ", ".join(sorted(images)) or "none"
            raise SourceError(
                f"bag {self.path} has no Image/CompressedImage topic {topic} (image topics: {found})"
            )
        self.topic = topic
        self.msgtype = images[topic]
        self.connections = [c for c in self.reader.connections if c.topic == topic]
        self.length = sum(c.msgcount for c in self.connections)
        self.name = f"{self.path}#{topic}"
        self.headers: dict[int, tuple[int, int, str]] = {}
        duration_s = (self.reader.end_time - self.reader.start_time) / 1e9 if self.length > 1 else 0.0
        self.fps = (self.length - 1) / duration_s if duration_s > 0 else 30.0

    def header(self, index: int) -> tuple[int, int, str] | None:
        """(sec, nanosec, frame_id) of frame ``index`` as recorded."""
        return self.headers.get(index)

    def __iter__(self) -> Iterator[Frame]:
        for index, (conn, _t, raw) in enumerate(self.reader.messages(connections=self.connections)):
            msg: Any = self.reader.deserialize(raw, conn.msgtype)
            try:
                rgb = (
                    imgmsg.compressed_to_rgb(msg) if conn.msgtype == COMPRESSED else imgmsg.image_to_rgb(msg)
                )
            except imgmsg.ImageEncodingError as exc:
                raise SourceError(f"bag {self.path} {self.topic} message {index}: {exc}") from exc
            st = msg.header.stamp
            self.headers[index] = (int(st.sec), int(st.nanosec), str(msg.header.frame_id))
            yield self._frame(index, rgb, float(st.sec) + float(st.nanosec) * 1e-9)

    def close(self) -> None:
        """Close the bag (idempotent)."""
        reader = getattr(self, "reader", None)
        if reader is not None and getattr(self, "_opened", False):
            self._opened = False
            reader.close()


class BagRecorder:
    """Sink writing the outputs to an MCAP rosbag2 bag at ``path`` (a new directory)."""

    def __init__(self, path: str | os.PathLike[str], source: Any = None, frame_id: str = "camera") -> None:
        """``source``: a :class:`BagSource` gives exact input headers; others give the frame stamp."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        from dvs_cluster.transport.messages import TYPESTORE

        self.path = Path(path)
        if self.path.exists():
            raise SinkError(f"--record {self.path}: already exists (rosbag2 writes a new directory)")
        self.store = TYPESTORE
        self.source = source
        self.frame_id = frame_id
        self.count = 0
        self._report: dict[str, Any] | None = None
        self._last_ns = 0
        try:
            self.writer: Any = Writer(self.path, version=8, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
        except Exception as exc:
            raise SinkError(f"--record {self.path}: cannot create the bag: {exc}") from exc
        self.conns = {
            t: self.writer.add_connection(t, ty, typestore=self.store) for t, ty in OUTPUT_TOPICS.items()
        }

    def _header(self, frame: Frame) -> Any:
        T = self.store.types
        exact = self.source.header(frame.index) if hasattr(self.source, "header") else None
        if exact is not None:
            sec, nsec, frame_id = exact
        else:
            sec = math.floor(frame.stamp)
            nsec = min(int(round((frame.stamp - sec) * 1e9)), 999_999_999)
            frame_id = self.frame_id
        return T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=int(sec), nanosec=nsec), frame_id=frame_id
        )

    def _image(self, array: np.ndarray, header: Any) -> Any:
        f = imgmsg.image_fields(np.ascontiguousarray(array, dtype=np.uint8))
        f["data"] = np.frombuffer(f["data"], dtype=np.uint8)
        return self.store.types[IMAGE](header=header, **f)

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        """One frame: segmentation, colour and overlay, logged at the header stamp."""
        header = self._header(frame)
        t_ns = max(header.stamp.sec * 1_000_000_000 + header.stamp.nanosec, self._last_ns)
        self._last_ns = t_ns
        for topic, img in (
            ("/segmentation", labels),
            ("/segmentation_color", colorize(labels)),
            ("/overlay", overlay(frame.raw, labels)),
        ):
            data = self.store.serialize_cdr(self._image(img, header), IMAGE)
            self.writer.write(self.conns[topic], t_ns, data)
        self.count += 1

    def set_report(self, report: dict[str, Any]) -> None:
        """The run's report, written on ``/stats`` when the bag is closed."""
        self._report = report

    def close(self) -> None:
        """Write ``/stats`` and finish the bag (idempotent)."""
        if getattr(self, "writer", None) is None:
            return
        report = self._report if self._report is not None else {"frames": self.count}
        msg = self.store.types[STRING](data=json.dumps(_jsonable(report)))
        self.writer.write(self.conns["/stats"], self._last_ns, self.store.serialize_cdr(msg, STRING))
        self.writer.close()
        self.writer = None
