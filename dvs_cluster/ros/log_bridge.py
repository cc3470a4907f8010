"""
Python ``logging`` records of ``dvs_cluster.*`` into a ROS node's logger, so they reach ``/rosout``.

The cluster code (``nodes/``, ``transport/``) logs with the standard library ("slave s0 gone; 2 task(s)
re-queued", "task 7/2 timed out; re-queued", "dropped malformed task"); rclpy does not forward those,
so without this rqt_console and ``ros2 bag record /rosout`` would never see them. :class:`RosLogHandler`
sends each record to ``node.get_logger()`` at its level (DEBUG, INFO, WARN, ERROR, FATAL: the numbers
match Python's), which prints it as every ROS log line and publishes it on ``/rosout``.
"""

from __future__ import annotations

import logging
from typing import Any

#: The loggers the nodes forward: the package's, so every module logger below it.
PACKAGE_LOGGER = "dvs_cluster"


class RosLogHandler(logging.Handler):
    """A ``logging.Handler`` that writes records to an rclpy logger at their level."""

    def __init__(self, ros_logger: Any) -> None:
        """Forward to ``ros_logger`` (``node.get_logger()``)."""
        super().__init__()
        self.ros_logger = ros_logger
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """One call site per severity: rclpy refuses a call site whose severity changes."""
        try:
            msg = self.format(record)
            lg = self.ros_logger
            if record.levelno >= logging.CRITICAL:
                lg.fatal(msg)
            elif record.levelno >= logging.ERROR:
                lg.error(msg)
            elif record.levelno >= logging.WARNING:
                lg.warning(msg)
            elif record.levelno >= logging.INFO:
                lg.info(msg)
            else:
                lg.debug(msg)
        except Exception:  # a closed node or a shut-down context: never raise into the caller
            self.handleError(record)


def forward_logging(node: Any) -> RosLogHandler:
    """
    Send ``dvs_cluster.*`` records to ``node``'s logger from now on; returns the handler to remove.

    The package logger's level follows the node logger's (``--ros-args --log-level``), so the INFO
    records a ROS user expects get past Python's default WARNING.
    """
    ros_logger = node.get_logger()
    handler = RosLogHandler(ros_logger)
    pkg = logging.getLogger(PACKAGE_LOGGER)
    level = int(ros_logger.get_effective_level())
    if level > 0 and (pkg.level == logging.NOTSET or pkg.level > level):
        pkg.setLevel(level)
    pkg.addHandler(handler)
    return handler


def stop_forwarding(handler: logging.Handler) -> None:
    """Undo :func:`forward_logging` (the node is closing)."""
    logging.getLogger(PACKAGE_LOGGER).removeHandler(handler)
