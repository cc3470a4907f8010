"""
Zenoh backend (``eclipse-zenoh`` 1.x): the cluster over a real network protocol with nothing but pip.

Peer mode by default: nodes on one host find each other by multicast scouting. Across hosts give
``listen`` endpoints on the master (``tcp/0.0.0.0:7447``) and ``connect`` endpoints on the slaves
(``tcp/<master-ip>:7447``); scouting is then off unless asked for, so the topology is exactly what was
configured. Between processes of one host zenoh moves large payloads through shared memory unless
``shm=False`` (what separate boards, or network namespaces emulating them, should measure). Publications
are reliable and block under congestion: a region task must not be dropped
silently (drops are the scheduler's decision, and it counts them). Peers retry their ``connect``
endpoints for ever, so slaves find a restarted master (or a healed link) by themselves. Mutual TLS
(:class:`TlsFiles`) and a base config file cover multi-host deployments (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zenoh

from .base import Handle, LivelinessCallback, MessageCallback, Payload, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """
    PEM files for Zenoh mutual TLS (``tls/HOST:PORT`` endpoints) between boards of one cluster.

    ``root_ca`` signs every node's certificate; each node presents ``cert``/``key`` both when listening
    and when connecting, and requires the peer's certificate (mTLS), so a host without a certificate
    of this CA can neither join nor listen in.
    """

    root_ca: str
    cert: str
    key: str

    def check(self) -> None:
        """Refuse at start-up, naming the option, when a file is missing (zenoh's error is vaguer)."""
        for what, path in (
            ("--tls-root-ca", self.root_ca),
            ("--tls-cert", self.cert),
            ("--tls-key", self.key),
        ):
            if not Path(path).is_file():
                raise ValueError(f"{what}: {path} is not a readable file")


#: Batches the TX queue of the ``data`` priority holds per link: zenoh's default is 2 (of 64 KiB), its
#: maximum 16 (a larger value panics its pipeline). A task of one 512x256 region is 393 kB (7 batches),
#: a result with logits 754 kB (12): with 2, ``put`` waits for the socket batch by batch (BENCHMARKS.md,
#: master stages over TCP). Buffers are allocated when used (``allocation: lazy``), 1 MiB a link at most.
DATA_QUEUE_BATCHES = 16


def make_config(
    mode: str = "peer",
    listen: Sequence[str] = (),
    connect: Sequence[str] = (),
    multicast: bool | None = None,
    shm: bool | None = None,
    config_file: str | None = None,
    tls: TlsFiles | None = None,
) -> zenoh.Config:
    """
    Zenoh config: mode, endpoints, multicast scouting, shared memory, optional base file and mTLS.

    Multicast defaults to on only without ``connect``; shared memory to zenoh's default (on: large
    payloads between processes of one host skip the socket). ``config_file`` (a zenoh JSON5 config) is
    the base for anything without a flag; the flags given here override it. The TX queue of the data
    priority holds at least :data:`DATA_QUEUE_BATCHES` batches, so publishing a region task does not
    wait for the socket.
    """
    if mode not in ("peer", "client", "router"):
        raise ValueError(f"zenoh mode must be peer, client or router, not {mode!r}")
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ValueError(f"--zenoh-config: {config_file} is not a readable file")
        try:
            conf = zenoh.Config.from_file(config_file)
        except Exception as exc:
            raise ValueError(f"--zenoh-config: {config_file}: {exc}") from None
    else:
        conf = zenoh.Config()
    if tls is not None:
        tls.check()
        for k, v in (
            ("root_ca_certificate", tls.root_ca),
            ("listen_certificate", tls.cert),
            ("listen_private_key", tls.key),
            ("connect_certificate", tls.cert),
            ("connect_private_key", tls.key),
            ("enable_mtls", True),
        ):
            conf.insert_json5(f"transport/link/tls/{k}", json.dumps(v))
    queue_key = "transport/link/tx/queue/size/data"
    if json.loads(conf.get_json(queue_key)) < DATA_QUEUE_BATCHES:  # a config file cannot lower it
        conf.insert_json5(queue_key, json.dumps(DATA_QUEUE_BATCHES))
    conf.insert_json5("mode", json.dumps(mode))
    if listen:
        conf.insert_json5("listen/endpoints", json.dumps(list(listen)))
    if connect:
        conf.insert_json5("connect/endpoints", json.dumps(list(connect)))
    if multicast is None:
        multicast = not connect
        if config_file is not None:  # the file decides unless a flag does
            multicast = None
    if multicast is not None:
        conf.insert_json5("scouting/multicast/enabled", json.dumps(bool(multicast)))
    if shm is not None:
        conf.insert_json5("transport/shared_memory/enabled", json.dumps(bool(shm)))
    return conf


def _as_bytes(payload: Payload) -> bytes | bytearray:
    """Zenoh takes bytes/bytearray, not memoryview: unwrap a whole-buffer view (as rosbags returns)."""
    if isinstance(payload, memoryview):
        base = payload.obj
        if isinstance(base, bytes | bytearray) and payload.c_contiguous and payload.nbytes == len(base):
            return base
        return payload.tobytes()
    return payload


class _ZenohHandle:
    """Wraps a zenoh subscriber or token so closing twice (or after the session) is harmless."""

    def __init__(self, obj: Any, owner: ZenohTransport) -> None:
        self._obj: Any = obj
        self._owner = owner

    def close(self) -> None:
        obj, self._obj = self._obj, None
        if obj is not None:
            self._owner._forget(self)
            try:
                obj.undeclare()
            except Exception as exc:  # session already closed
                log.debug("undeclare failed: %s", exc)


class ZenohTransport(Transport):
    """One zenoh session per node."""

    def __init__(
        self,
        mode: str = "peer",
        listen: Sequence[str] = (),
        connect: Sequence[str] = (),
        multicast: bool | None = None,
        shm: bool | None = None,
        config_file: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """Open the session (raises if an endpoint cannot be bound)."""
        self._session = zenoh.open(make_config(mode, listen, connect, multicast, shm, config_file, tls))
        self._publishers: dict[str, Any] = {}
        self._handles: list[_ZenohHandle] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def zid(self) -> str:
        """Zenoh id of the session (diagnostics)."""
        return str(self._session.zid())

    def publish(self, key: str, payload: Payload) -> None:
        """Reliable, blocking put through a per-key publisher."""
        with self._lock:
            if self._closed:
                raise RuntimeError("transport closed")
            pub = self._publishers.get(key)
            if pub is None:
                pub = self._session.declare_publisher(
                    key,
                    congestion_control=zenoh.CongestionControl.BLOCK,
                    reliability=zenoh.Reliability.RELIABLE,
                )
                self._publishers[key] = pub
        pub.put(_as_bytes(payload))

    def subscribe(self, key_expr: str, callback: MessageCallback) -> Handle:
        """Deliver (key, bytes) to ``callback`` on a zenoh thread; exceptions are logged, not raised."""

        def on_sample(sample: zenoh.Sample) -> None:
            try:
                callback(str(sample.key_expr), sample.payload.to_bytes())
            except Exception:
                log.exception("subscriber callback for %s failed", key_expr)

        return self._keep(self._session.declare_subscriber(key_expr, on_sample))

    def declare_liveliness(self, key: str) -> Handle:
        """Liveliness token: withdrawn on close, or by zenoh when the process or link dies."""
        return self._keep(self._session.liveliness().declare_token(key))

    def watch_liveliness(self, key_expr: str, callback: LivelinessCallback) -> Handle:
        """Token appear/disappear events, with history (tokens alive before the watch started)."""

        def on_sample(sample: zenoh.Sample) -> None:
            try:
                callback(str(sample.key_expr), sample.kind == zenoh.SampleKind.PUT)
            except Exception:
                log.exception("liveliness callback for %s failed", key_expr)

        sub = self._session.liveliness().declare_subscriber(key_expr, on_sample, history=True)
        return self._keep(sub)

    def close(self) -> None:
        """Undeclare everything and close the session."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handles, self._handles = list(self._handles), []
            pubs, self._publishers = list(self._publishers.values()), {}
        for h in handles:
            h.close()
        for p in pubs:
            try:
                p.undeclare()
            except Exception as exc:
                log.debug("publisher undeclare failed: %s", exc)
        self._session.close()

    def _keep(self, obj: Any) -> Handle:
        handle = _ZenohHandle(obj, self)
        with self._lock:
            self._handles.append(handle)
        return handle

    def _forget(self, handle: _ZenohHandle) -> None:
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)
