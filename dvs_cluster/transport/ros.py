"""
ROS 2 backend: the cluster's keys as topics of the generated ``dvs_cluster_interfaces`` types.

The payloads stay CDR bytes end to end: publishers send them with ``publish(bytes)`` (rclpy's raw
publish) and subscriptions are created with ``raw=True``, so the bytes :mod:`messages` writes with
rosbags are exactly what goes on the wire, and a node of another language (or ``ros2 topic echo``)
sees ordinary typed messages. ``test/ros/test_cdr.py`` checks that rclpy and rosbags produce the same
bytes for every cluster message.

Mapping: key ``dvs_cluster/<cluster>/task/<slave>`` -> topic ``dvs_cluster/<cluster>/task/<slave>``,
relative, so it lands under the node's namespace (``/robot1/dvs_cluster/...`` with a launch
``namespace``). Every chunk must be a ROS name token (letters, digits, ``_``; no leading digit, no
``__``); other names raise ``ValueError`` naming the key. The message type follows from the key kind
(``task`` -> RegionTask, ``result`` -> RegionResult, ``status`` -> SlaveStatus).

ROS has no key wildcards and no liveliness tokens, so both come from the ROS graph, which DDS keeps
current (a process that dies drops out when its participant lease ends, a clean exit at once):

- a liveliness token is a ``std_msgs/Empty`` publisher on the token's topic; it is alive while the
  graph shows a publisher there;
- wildcard subscriptions (``status/*``) and liveliness watches are resolved by polling the graph
  every ``graph_period_s`` and subscribing to / reporting the matching topics as they come and go.

QoS of the cluster topics: reliable, volatile, keep-last ``depth`` (default 64, far more than the
scheduler ever has in flight, so nothing is overwritten), the ROS equivalent of the Zenoh backend's
reliable blocking publications. On first use a publisher waits (up to ``match_timeout_s``) until it has
matched every subscriber the graph already shows, so a task is not lost to discovery when a slave has
just appeared; with no subscriber in the graph it does not wait (a mixed cluster publishes every task on
both backends, and only one of them has the slave).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Handle, LivelinessCallback, MessageCallback, Payload, Transport

log = logging.getLogger(__name__)

INTERFACES = "dvs_cluster_interfaces"
#: Key kind (the chunk after ``<root>/<cluster>``) -> message type name.
KIND_TYPES = {
    "task": f"{INTERFACES}/msg/RegionTask",
    "result": f"{INTERFACES}/msg/RegionResult",
    "status": f"{INTERFACES}/msg/SlaveStatus",
    "alive": "std_msgs/msg/Empty",
}
_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_ros_key(key: str) -> str:
    """A key (or key expression with ``*`` chunks) whose chunks are ROS name tokens; returns it."""
    for chunk in key.split("/"):
        if chunk == "*":
            continue
        if not _TOKEN_RE.match(chunk) or "__" in chunk:
            raise ValueError(
                f"key {key!r}: chunk {chunk!r} cannot be part of a ROS topic name "
                "(letters, digits and '_' only, no leading digit, no '__'); rename the cluster or slave"
            )
    return key


def key_kind(key: str) -> str:
    """``task``/``result``/``status``/``alive``: the third chunk of a cluster key."""
    parts = key.split("/")
    if len(parts) < 3 or parts[2] not in KIND_TYPES:
        raise ValueError(f"key {key!r} is not a cluster key (<root>/<cluster>/{'|'.join(KIND_TYPES)}/...)")
    return parts[2]


def message_class(type_name: str) -> Any:
    """``pkg/msg/Name`` -> the generated Python class (imports the interfaces package)."""
    import importlib

    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def cluster_qos(depth: int = 64) -> Any:
    """Reliable, volatile, keep-last ``depth``: the QoS of every cluster topic."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class _Handle:
    """Closes once; the closer runs under the transport's lock-free teardown."""

    def __init__(self, closer: Callable[[], None]) -> None:
        self._closer: Callable[[], None] | None = closer

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            try:
                closer()
            except Exception as exc:  # node or context already gone
                log.debug("close failed: %s", exc)


class _Pattern:
    """A wildcard subscription or a liveliness watch, resolved against the graph."""

    def __init__(self, key_expr: str, callback: Callable[[str, Any], None], liveliness: bool) -> None:
        self.key_expr = key_expr
        self.liveliness = liveliness
        self.callback = callback
        self.known: dict[str, Any] = {}  # key -> subscription (wildcard subs) or True (liveliness)
        self.closed = False


class RosTransport(Transport):
    """Cluster keys on topics of one rclpy node (the node is spun by its owner's executor)."""

    def __init__(
        self,
        node: Any,
        *,
        depth: int = 64,
        graph_period_s: float = 0.2,
        match_timeout_s: float = 2.0,
        own_node: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """Use ``node`` for every entity; a graph timer on it resolves wildcards and liveliness."""
        from rclpy.callback_groups import ReentrantCallbackGroup

        self.node = node
        self.depth = depth
        self.match_timeout_s = match_timeout_s
        self._qos = cluster_qos(depth)
        self._group = ReentrantCallbackGroup()
        self._lock = threading.RLock()
        self._publishers: dict[str, Any] = {}
        self._patterns: list[_Pattern] = []
        self._handles: list[_Handle] = []
        self._closed = False
        self._own_node = own_node
        self._on_close = on_close
        # "/" or "/<namespace>/": what a relative key gets in front of it.
        self._ns_prefix = str(node.resolve_topic_name("x"))[:-1]
        self._timer = node.create_timer(graph_period_s, self._poll_graph, callback_group=self._group)

    # -- naming ----------------------------------------------------------------------------------------

    def topic(self, key: str) -> str:
        """Fully qualified topic of a key under this node's namespace."""
        return str(self.node.resolve_topic_name(check_ros_key(key)))

    def _key_of(self, topic: str, key_expr: str) -> str | None:
        """The key a graph topic stands for, if it matches ``key_expr`` (chunk-wise ``*``)."""
        prefix = self._ns_prefix
        if not topic.startswith(prefix):
            return None
        key = topic[len(prefix) :]
        kparts, eparts = key.split("/"), key_expr.split("/")
        if len(kparts) != len(eparts) or not all(
            fnmatch.fnmatchcase(k, e) for k, e in zip(kparts, eparts, strict=True)
        ):
            return None
        return key

    # -- Transport -------------------------------------------------------------------------------------

    def _publisher(self, key: str) -> tuple[Any, bool]:
        with self._lock:
            if self._closed:
                raise RuntimeError("transport closed")
            pub = self._publishers.get(key)
            if pub is not None:
                return pub, False
            cls = message_class(KIND_TYPES[key_kind(key)])
            pub = self.node.create_publisher(cls, check_ros_key(key), self._qos)
            self._publishers[key] = pub
            return pub, True

    def publish(self, key: str, payload: Payload) -> None:
        """Publish CDR bytes as the key's message type (raw: no decode on this side)."""
        pub, new = self._publisher(key)
        if new and self.match_timeout_s > 0:
            # A subscriber the graph already shows but this new publisher has not matched yet would miss
            # the message (volatile QoS): wait for the match. With none in the graph, nobody can miss it.
            topic = pub.topic_name
            deadline = time.monotonic() + self.match_timeout_s
            while (
                pub.get_subscription_count() < self.node.count_subscribers(topic)
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
        pub.publish(payload if isinstance(payload, bytes) else bytes(payload))

    def subscribe(self, key_expr: str, callback: MessageCallback) -> Handle:
        """Exact key: one raw subscription; ``*`` chunks: subscriptions follow the graph."""
        check_ros_key(key_expr)
        if "*" not in key_expr:
            sub = self._raw_subscription(key_expr, callback)
            return self._keep(lambda: self.node.destroy_subscription(sub))
        return self._add_pattern(_Pattern(key_expr, callback, liveliness=False))

    def declare_liveliness(self, key: str) -> Handle:
        """A token: an Empty publisher on the key's topic, visible in the graph while it exists."""
        check_ros_key(key)
        if key_kind(key) != "alive":
            raise ValueError(f"liveliness key {key!r} is not under <root>/<cluster>/alive/")
        with self._lock:
            pub = self.node.create_publisher(message_class(KIND_TYPES["alive"]), key, self._qos)
        return self._keep(lambda: self.node.destroy_publisher(pub))

    def watch_liveliness(self, key_expr: str, callback: LivelinessCallback) -> Handle:
        """Token appear/disappear events from the graph (tokens alive already are reported first)."""
        check_ros_key(key_expr)
        return self._add_pattern(_Pattern(key_expr, lambda key, alive: callback(key, bool(alive)), True))

    def close(self) -> None:
        """Destroy every entity this transport made (and the node/context when it owns them)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handles, self._handles = list(self._handles), []
            pubs, self._publishers = list(self._publishers.values()), {}
            patterns, self._patterns = list(self._patterns), []
        for p in patterns:
            p.closed = True
        for h in handles:
            h.close()
        for pub in pubs:
            try:
                self.node.destroy_publisher(pub)
            except Exception as exc:
                log.debug("destroy publisher failed: %s", exc)
        try:
            self.node.destroy_timer(self._timer)
        except Exception as exc:
            log.debug("destroy timer failed: %s", exc)
        if self._on_close is not None:
            self._on_close()

    # -- internals -------------------------------------------------------------------------------------

    def _raw_subscription(self, key: str, callback: MessageCallback) -> Any:
        cls = message_class(KIND_TYPES[key_kind(key)])

        def on_bytes(data: bytes) -> None:
            try:
                callback(key, bytes(data))
            except Exception:
                log.exception("subscriber callback for %s failed", key)

        with self._lock:
            return self.node.create_subscription(
                cls, key, on_bytes, self._qos, raw=True, callback_group=self._group
            )

    def _keep(self, closer: Callable[[], None]) -> Handle:
        handle = _Handle(closer)
        with self._lock:
            self._handles.append(handle)
        return handle

    def _add_pattern(self, pattern: _Pattern) -> Handle:
        def close() -> None:
            pattern.closed = True
            with self._lock:
                if pattern in self._patterns:
                    self._patterns.remove(pattern)
                known, pattern.known = dict(pattern.known), {}
            if not pattern.liveliness:
                for sub in known.values():
                    self.node.destroy_subscription(sub)

        with self._lock:
            self._patterns.append(pattern)
        handle = self._keep(close)
        self._poll_graph()  # what is already there is reported / subscribed at once
        return handle

    def _poll_graph(self) -> None:
        """Diff the graph's publishers against every pattern: subscribe / report what changed."""
        with self._lock:
            if self._closed or not self._patterns:
                return
            patterns = list(self._patterns)
        try:
            topics = [name for name, _ in self.node.get_topic_names_and_types()]
        except Exception as exc:  # context shutting down
            log.debug("graph query failed: %s", exc)
            return
        for pattern in patterns:
            live = set()
            for topic in topics:
                key = self._key_of(topic, pattern.key_expr)
                if key is not None and self.node.count_publishers(topic) > 0:
                    live.add(key)
            if pattern.liveliness:
                self._diff_liveliness(pattern, live)
            else:
                self._diff_subscriptions(pattern, live)

    def _diff_liveliness(self, pattern: _Pattern, live: set[str]) -> None:
        with self._lock:
            if pattern.closed:
                return
            appeared = sorted(live - set(pattern.known))
            gone = sorted(set(pattern.known) - live)
            for key in appeared:
                pattern.known[key] = True
            for key in gone:
                del pattern.known[key]
        for key in appeared:
            self._safe_call(pattern, key, True)
        for key in gone:
            self._safe_call(pattern, key, False)

    def _diff_subscriptions(self, pattern: _Pattern, live: set[str]) -> None:
        # Subscriptions stay when a publisher goes (it may come back); only new topics are added.
        with self._lock:
            if pattern.closed:
                return
            new = sorted(live - set(pattern.known))
            for key in new:
                pattern.known[key] = self._raw_subscription(key, pattern.callback)

    @staticmethod
    def _safe_call(pattern: _Pattern, key: str, value: Any) -> None:
        try:
            pattern.callback(key, value)
        except Exception:
            log.exception("liveliness callback for %s failed", pattern.key_expr)


def spin(executor: Any, context: Any = None, stop: threading.Event | None = None) -> None:
    """
    ``executor.spin()`` that survives a message rclpy cannot take.

    rcl refuses a zero-length raw payload (``RCLError``: "new size of uint8_array has to be greater than
    zero") inside the executor, and a plain ``spin()`` dies with it: one bad publisher would leave the
    node deaf for good. Worse, rclpy's handler marks the subscription busy before the take and only
    clears the mark after a successful one, so even a re-entered spin never serves that subscription
    again. Such errors are logged (rate-limited), the stuck marks are cleared (:func:`_unstick`) and
    spinning goes on; shutdown, Ctrl-C and ``stop`` (checked every 0.25 s) end it.
    """
    from rclpy.executors import ExternalShutdownException, ShutdownException

    last_log = 0.0
    skipped = 0
    while (context is None or context.ok()) and not (stop is not None and stop.is_set()):
        try:
            executor.spin_once(timeout_sec=0.25)
        except (ShutdownException, ExternalShutdownException):
            return
        except Exception as exc:  # noqa: BLE001 - anything one message causes must not stop the node
            skipped += 1
            now = time.monotonic()
            if now - last_log > 5.0:
                log.warning("executor: skipped a message it could not take (%d so far): %s", skipped, exc)
                last_log = now
            _unstick(executor)


def stop_executor(executor: Any, timeout_sec: float = 2.0) -> bool:
    """
    ``executor.shutdown`` that really waits for the callbacks in flight (True if they all finished).

    Jazzy's ``Executor.shutdown`` sets its shut-down flag and then tests that same flag before waiting,
    so it never waits; a node destroyed while a worker thread was still publishing crashed the camera
    with SIGSEGV on Ctrl-C (CI, Jazzy only). The multi-threaded executor's pool is drained here too,
    bounded by ``timeout_sec`` so a stuck callback cannot hang the clean-up.
    """
    done = bool(executor.shutdown(timeout_sec=timeout_sec))
    pool = getattr(executor, "_executor", None)  # MultiThreadedExecutor's pool (rclpy internals)
    if not isinstance(pool, ThreadPoolExecutor):
        return done
    waiter = threading.Thread(target=pool.shutdown, kwargs={"wait": True}, name="executor-drain", daemon=True)
    waiter.start()
    waiter.join(timeout_sec)
    return done and not waiter.is_alive()


def _unstick(executor: Any) -> None:
    """Clear the busy marks a failed take leaves on subscriptions (rclpy Humble/Jazzy internals)."""
    for node in executor.get_nodes():
        for sub in node.subscriptions:
            if getattr(sub, "_executor_event", False):
                sub._executor_event = False
                group = sub.callback_group
                if getattr(group, "_active_entity", None) is sub:
                    group.ending_execution(sub)
    guard = getattr(executor, "_guard", None)
    if guard is not None:
        guard.trigger()


def standalone(name: str = "dvs_cluster_transport", namespace: str = "", **kwargs: Any) -> RosTransport:
    """
    A transport with its own rclpy context, node and spinning thread (for code that is not a ROS node).

    The context is private, so it neither needs nor disturbs ``rclpy.init`` elsewhere in the process.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, namespace=namespace, context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=spin, args=(executor, context), name=f"{name}-spin", daemon=True)
    thread.start()

    def shutdown() -> None:
        stop_executor(executor)
        node.destroy_node()
        context.try_shutdown()
        thread.join(timeout=2.0)

    return RosTransport(node, own_node=True, on_close=shutdown, **kwargs)
