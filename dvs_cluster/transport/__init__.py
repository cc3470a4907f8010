"""
Transport layer of dvs_cluster: ``transport.open(spec)`` picks a backend by name (:mod:`.registry`).

Backends: ``zenoh``, ``ros``, ``loopback``, and any of them joined by ``,`` (the multi backend).
"""

from .registry import names, open, register

__all__ = ["names", "open", "register"]
