"""
Transport backends by name: a front end opens one from a string, and a new backend is one ``register``.

A spec is a backend name (``zenoh``, ``ros``, ``loopback``) or several joined by ``,``
(``ros,zenoh``): the multi backend, a :class:`~dvs_cluster.transport.multi.MultiTransport` over them in
that order. Options go to each backend by name::

    open("zenoh", zenoh={"listen": ["tcp/0.0.0.0:7447"], "multicast": False})
    open("ros,zenoh", ros={"node": node}, zenoh={"mode": "peer", "connect": ["tcp/10.0.0.1:7447"]})

Built in: ``zenoh`` (:class:`~dvs_cluster.transport.zenoh.ZenohTransport`, its keyword arguments),
``ros`` (:class:`~dvs_cluster.transport.ros.RosTransport` on ``node``, or without one a standalone
node with its own context: ``name``, ``namespace``), ``loopback``
(:class:`~dvs_cluster.transport.loopback.LoopbackTransport`, ``bus`` to share one). Backends import
their library only when opened, so the package works with any of them missing. Why a registry: the
CLI, the ROS nodes and the tests used to each build transports their own way, and a new backend meant
editing all of them; ``test/test_transport_contract.py`` holds every registered backend to one contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import Transport

#: ``factory(**options) -> Transport``.
Factory = Callable[..., Transport]

_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make ``name`` openable; a name already taken is replaced (a test double, a patched backend)."""
    if not name or "," in name:
        raise ValueError(f"backend name {name!r} must be non-empty and without ','")
    _FACTORIES[name] = factory


def names() -> tuple[str, ...]:
    """The registered backend names."""
    return tuple(sorted(_FACTORIES))


def parse(spec: str) -> list[str]:
    """The backend names of ``spec`` (``ValueError`` naming the known ones for an unknown or repeated one)."""
    kinds = [k.strip() for k in spec.split(",")]
    for k in kinds:
        if k not in _FACTORIES:
            raise ValueError(f"unknown transport {k!r} in {spec!r}; known: {', '.join(names())}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"transport {spec!r} names a backend twice")
    return kinds


def open(spec: str, **options: Mapping[str, Any]) -> Transport:
    """
    Open the transport ``spec`` names, each backend with ``options[name]``; raises what a backend raises.

    Options of backends ``spec`` does not name are ignored (a front end passes all it has). When one
    backend of a multi spec fails, those already open are closed first.
    """
    kinds = parse(spec)
    opened: list[Transport] = []
    try:
        for k in kinds:
            opened.append(_FACTORIES[k](**dict(options.get(k, {}))))
    except BaseException:
        for t in opened:
            t.close()
        raise
    if len(opened) == 1:
        return opened[0]
    from .multi import MultiTransport

    return MultiTransport(opened)


def _zenoh(**kwargs: Any) -> Transport:
    from .zenoh import ZenohTransport

    return ZenohTransport(**kwargs)


def _ros(
    node: Any = None, name: str = "dvs_cluster_transport", namespace: str = "", **kwargs: Any
) -> Transport:
    from . import ros

    if node is not None:
        return ros.RosTransport(node, **kwargs)
    return ros.standalone(name, namespace, **kwargs)


def _loopback(**kwargs: Any) -> Transport:
    from .loopback import LoopbackTransport

    return LoopbackTransport(**kwargs)


register("zenoh", _zenoh)
register("ros", _ros)
register("loopback", _loopback)
