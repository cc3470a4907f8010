"""
Option checks shared by every ``dvs-cluster`` subcommand, as argparse ``type=`` functions.

One place so that ``segment``, ``bench``, ``master``, ``slave``, ``run`` and ``plan`` refuse the same
values with the same words (a threshold of 150, a 7x5 frame, an endpoint without ``tcp/``) before any
model, source or Zenoh session is opened. A leaf module: the standard library only, so ``--help`` and
the checks stay fast.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re

#: Smallest processing width or height: the synthetic renderer needs 16 per side and a 2x2 grid of
#: 16x16 regions is the least the nets can say anything about.
MIN_FRAME_SIDE = 32
#: Smallest region side a grid may cut a frame into (``--rows``/``--cols`` against the frame size).
MIN_REGION_SIDE = 16
#: Zenoh link protocols whose address is ``HOST:PORT``.
HOST_PORT_PROTOCOLS = ("tcp", "udp", "tls", "quic", "ws")
#: Zenoh link protocols with another address form (a path, a device): only checked for being non-empty.
OTHER_PROTOCOLS = ("unixsock-stream", "unixpipe", "serial", "vsock")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _fail(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def positive_int(text: str) -> int:
    """An integer > 0."""
    try:
        v = int(text)
    except ValueError:
        raise _fail(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise _fail(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise _fail(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise _fail(f"expected an integer >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise _fail(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise _fail(f"expected a positive number, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise _fail(f"expected a number >= 0, got {text!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise _fail(f"expected a number >= 0, got {text!r}")
    return v


def threshold(text: str) -> float:
    """DN threshold: a number in 0..100, the DN's score range (leave the option out for the default)."""
    try:
        v = float(text)
    except ValueError:
        raise _fail(f"expected a number in 0..100, got {text!r}") from None
    if not 0.0 <= v <= 100.0:  # also refuses NaN
        raise _fail(f"expected a number in 0..100, got {text!r}")
    return v


def frame_side(text: str) -> int:
    """A processing width or height: an integer >= :data:`MIN_FRAME_SIDE`."""
    try:
        v = int(text)
    except ValueError:
        raise _fail(f"expected an integer >= {MIN_FRAME_SIDE} (pixels), got {text!r}") from None
    if v < MIN_FRAME_SIDE:
        raise _fail(f"frame side {v} too small: at least {MIN_FRAME_SIDE} pixels")
    return v


def check_grid(width: int, height: int, rows: int, cols: int, overlap: int = 0) -> None:
    """Frame size against the region grid (options that argparse checks one at a time): ValueError."""
    if width // cols < MIN_REGION_SIDE or height // rows < MIN_REGION_SIDE:
        raise ValueError(
            f"--rows {rows} --cols {cols} cut a {width}x{height} frame into regions under "
            f"{MIN_REGION_SIDE}x{MIN_REGION_SIDE} pixels: use fewer rows/columns or a larger frame"
        )
    if overlap < 0:
        raise ValueError(f"--overlap must be >= 0, got {overlap}")


def _host_port(endpoint: str, address: str, listen: bool) -> None:
    """``HOST:PORT`` of a tcp/udp/tls/quic/ws endpoint: an IP address or a host name, a port."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise _fail(f"endpoint {endpoint!r}: expected HOST:PORT after the protocol, e.g. tcp/10.0.0.2:7447")
    if not port_text.isdigit() or not (0 if listen else 1) <= int(port_text) <= 65535:
        raise _fail(f"endpoint {endpoint!r}: port {port_text!r} is not a port number (1..65535)")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _fail(f"endpoint {endpoint!r}: {host} is not an IPv6 address") from None
        return
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _fail(f"endpoint {endpoint!r}: {host} is not an IPv4 address") from None
        return
    if ":" in host:
        raise _fail(f"endpoint {endpoint!r}: write an IPv6 address in brackets, e.g. tcp/[::1]:7447")
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise _fail(f"endpoint {endpoint!r}: {host!r} is not a host name or IP address")


def _endpoint(text: str, listen: bool) -> str:
    """A Zenoh endpoint ``<protocol>/<address>[?<metadata>][#<config>]``, checked before Zenoh sees it."""
    endpoint = text.strip()
    proto, sep, rest = endpoint.partition("/")
    if not sep or proto not in HOST_PORT_PROTOCOLS + OTHER_PROTOCOLS:
        if re.match(r"^[\w.\-\[\]:]+:\d+$", endpoint):
            raise _fail(f"endpoint {endpoint!r} has no protocol: write tcp/{endpoint}")
        known = ", ".join(HOST_PORT_PROTOCOLS + OTHER_PROTOCOLS)
        raise _fail(f"endpoint {endpoint!r}: expected PROTOCOL/ADDRESS, e.g. tcp/10.0.0.2:7447 ({known})")
    address = re.split(r"[?#]", rest, maxsplit=1)[0]
    if not address:
        raise _fail(f"endpoint {endpoint!r}: no address after {proto}/")
    if proto in HOST_PORT_PROTOCOLS:
        _host_port(endpoint, address, listen)
    return endpoint


def listen_endpoint(text: str) -> str:
    """``--listen``: an endpoint to bind (port 0 = any free port)."""
    return _endpoint(text, listen=True)


def connect_endpoint(text: str) -> str:
    """``--connect``: an endpoint to reach."""
    return _endpoint(text, listen=False)
