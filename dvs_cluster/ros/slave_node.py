"""
``slave`` node: one per board; runs the three ONNX nets on the region tasks the master sends.

The work is :class:`~dvs_cluster.nodes.slave.SlaveNode` (same code as ``dvs-cluster slave``) on its own
thread; the node adds parameters, the transport and ``/diagnostics``. ``providers`` picks onnxruntime's
execution providers in order, e.g. ``[cuda, cpu]`` or ``[tensorrt, cuda, cpu]`` on a Jetson (the GPU
build of onnxruntime must be installed there); an unavailable provider stops the node at start-up.
The slave's cluster name is ``slave_name``, or the node's name when that is empty, so
``ros2 launch ... slaves:=3`` gives ``slave0 .. slave2``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rclpy.node import Node

from dvs_cluster.nodes.slave import SlaveNode
from dvs_cluster.ros.common import check_ros_name, make_transport, output_qos, run_node
from dvs_cluster.ros.log_bridge import forward_logging, stop_forwarding
from dvs_cluster.ros.params import ParameterError, Spec, declare, validate
from dvs_cluster.ros.specs import SLAVE_SPECS


class SlaveRos(Node):
    """A cluster slave as a ROS 2 node."""

    def __init__(self, node_name: str = "slave", **kwargs: Any) -> None:
        """Declare parameters, load the models (errors name the parameter), join the cluster."""
        super().__init__(node_name, **kwargs)
        self._log_handler = forward_logging(self)  # dvs_cluster.* records -> this node's logger, /rosout
        p = self.p = declare(self, SLAVE_SPECS)
        self.slave_name = p["slave_name"] or self.get_name()
        validate(Spec("slave_name", "", "", check=check_ros_name), self.slave_name)
        from dvs_cluster.inference import ModelError, OnnxModels, ThreadPolicy, propagate_for

        try:
            models = OnnxModels(
                p["models"] or None,
                [str(v) for v in p["providers"]],
                threads=ThreadPolicy(p["threads"] or None),
                provider_options=p["provider_options"] or None,
                flow=p["flow"],
                dn=p["dn"],
            )
        except ModelError as exc:
            msg = str(exc)
            which = next(
                (
                    k
                    for k, word in (
                        ("provider_options", "provider options"),
                        ("providers", "provider"),
                        ("flow", "flow source"),
                        ("dn", "DN"),
                    )
                    if word in msg
                ),
                "models",
            )
            raise ParameterError(f"parameter '{which}': {exc}") from None
        self.transport = make_transport(self, p)
        self.slave = SlaveNode(
            self.slave_name,
            self.transport,
            models,
            cluster_id=p["cluster_id"],
            result_quantize=p["result_quantize"],
            heartbeat_s=p["heartbeat_period"],
            propagate=propagate_for(p["warp_from"], models),
        )
        from diagnostic_msgs.msg import DiagnosticArray

        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos())
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.slave.run, args=(self._stop,), name="dvs-slave", daemon=True
        )
        self._thread.start()
        self.get_logger().info(
            f"slave {self.slave_name!r} up: cluster {p['cluster_id']!r}, transport {p['transport']}, "
            f"providers {', '.join(models.providers)}, models {models.model_dir}"
        )

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        c = self.slave.counters
        values = {
            "tasks_done": c.tasks_done,
            "seg": c.seg,
            "flow": c.flow,
            "malformed": c.malformed,
            "foreign": c.foreign,
            "errors": c.errors,
            "keys_received": c.keys_received,
        }
        level = DiagnosticStatus.WARN if c.errors or c.malformed else DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: slave {self.slave_name}",
            message=f"{c.tasks_done} regions ({c.seg} seg / {c.flow} flow)",
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def close(self) -> None:
        """Stop serving, withdraw the liveliness token, close the transport."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.slave.close()
        self.transport.close()
        stop_forwarding(self._log_handler)


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run dvs_cluster slave``."""
    return run_node(SlaveRos, args)


if __name__ == "__main__":
    raise SystemExit(main())
