"""
Transport interface the master and slaves talk through, and the cluster's key space.

A backend moves opaque byte payloads (CDR messages from :mod:`dvs_cluster.transport.messages`) between
keys, and says who is alive. Zenoh is the backend that needs nothing but pip; a ROS 2 backend maps the
same keys onto topics. Callbacks may run on backend threads: node code only enqueues from them.

Key space (every key below ``<root>/<cluster_id>/`` so two clusters never cross-talk)::

    <root>/<cluster>/task/<slave>      RegionTask, master -> that slave
    <root>/<cluster>/result            RegionResult, every slave -> master
    <root>/<cluster>/status/<slave>    SlaveStatus heartbeat, slave -> master
    <root>/<cluster>/master/status     master heartbeat (JSON summary), master -> anyone
    <root>/<cluster>/alive/slave/<slave>, <root>/<cluster>/alive/master   liveliness tokens
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Payloads arrive as bytes; senders may pass any buffer.
Payload = bytes | bytearray | memoryview
MessageCallback = Callable[[str, bytes], None]  # (key, payload)
LivelinessCallback = Callable[[str, bool], None]  # (key, alive)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DEFAULT_ROOT = "dvs_cluster"
DEFAULT_CLUSTER = "default"


def check_name(name: str, what: str = "name") -> str:
    """Cluster ids and slave names become key chunks: letters, digits, ``_.-`` only (no wildcards)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid {what} {name!r}: use 1-64 of [A-Za-z0-9_.-]")
    return name


@dataclass(frozen=True)
class ClusterKeys:
    """The keys of one cluster."""

    cluster_id: str = DEFAULT_CLUSTER
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        """Validate the chunks once, so every key built later is well formed."""
        check_name(self.cluster_id, "cluster id")
        check_name(self.root, "key root")

    @property
    def prefix(self) -> str:
        """``<root>/<cluster>``."""
        return f"{self.root}/{self.cluster_id}"

    def task(self, slave: str) -> str:
        """Task key of one slave."""
        return f"{self.prefix}/task/{check_name(slave, 'slave name')}"

    @property
    def result(self) -> str:
        """The shared result key."""
        return f"{self.prefix}/result"

    def status(self, slave: str) -> str:
        """Heartbeat key of one slave."""
        return f"{self.prefix}/status/{check_name(slave, 'slave name')}"

    @property
    def status_all(self) -> str:
        """Key expression matching every slave's heartbeat."""
        return f"{self.prefix}/status/*"

    def alive_slave(self, slave: str) -> str:
        """Liveliness token of one slave."""
        return f"{self.prefix}/alive/slave/{check_name(slave, 'slave name')}"

    @property
    def alive_slaves(self) -> str:
        """Key expression matching every slave's liveliness token."""
        return f"{self.prefix}/alive/slave/*"

    @property
    def master_status(self) -> str:
        """Master heartbeat (JSON summary; Zenoh only, ROS nodes publish ``stats``)."""
        return f"{self.prefix}/master/status"

    @property
    def alive_master(self) -> str:
        """Liveliness token of the master."""
        return f"{self.prefix}/alive/master"

    def last_chunk(self, key: str) -> str:
        """The slave name at the end of a task/status/alive key."""
        return key.rsplit("/", 1)[-1]


class Handle(Protocol):
    """Something declared on a transport (subscription, liveliness token) that can be withdrawn."""

    def close(self) -> None:
        """Withdraw it; idempotent."""


class Transport(ABC):
    """Publish/subscribe of byte payloads plus liveliness; one per node process."""

    @abstractmethod
    def publish(self, key: str, payload: Payload) -> None:
        """Send ``payload`` to every subscriber of ``key``, reliably (blocks rather than drops)."""

    @abstractmethod
    def subscribe(self, key_expr: str, callback: MessageCallback) -> Handle:
        """Call ``callback(key, payload)`` for every payload published on keys matching ``key_expr``."""

    @abstractmethod
    def declare_liveliness(self, key: str) -> Handle:
        """Announce this node alive under ``key`` until the handle is closed or the process dies."""

    @abstractmethod
    def watch_liveliness(self, key_expr: str, callback: LivelinessCallback) -> Handle:
        """Call ``callback(key, alive)`` for tokens matching ``key_expr``, including those already alive."""

    @abstractmethod
    def close(self) -> None:
        """Withdraw everything declared and disconnect; idempotent."""

    def __enter__(self) -> Transport:
        """Context manager: close on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the transport."""
        self.close()
