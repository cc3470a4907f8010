"""
Declared, typed, range-checked parameters: a node refuses bad values at start-up, naming the parameter.

Every parameter is declared with a ``ParameterDescriptor`` (description, ``read_only`` because the
cluster is configured once, integer/floating-point ranges that ``ros2 param describe`` shows), and
checked again here for what descriptors cannot say (choices, names). Any violation raises
:class:`ParameterError` whose message starts with ``parameter '<name>'``; the nodes' ``main`` prints it
and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class ParameterError(ValueError):
    """A parameter value the node cannot run with."""


@dataclass(frozen=True)
class Spec:
    """One parameter: default (its type is the parameter's type), description and constraints."""

    name: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    choices: Sequence[str] | None = None
    check: Callable[[Any], str | None] | None = None  # returns why a value is bad, or None


def _descriptor(spec: Spec) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = spec.description
    if spec.choices:
        desc += f" (one of: {', '.join(spec.choices)})"
    d = ParameterDescriptor(description=desc, read_only=True)
    if spec.lo is not None and spec.hi is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=0)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=spec.lo, to_value=spec.hi, step=0.0)]
    return d


def declare(node: Any, specs: Sequence[Spec]) -> dict[str, Any]:
    """Declare ``specs`` on ``node``; name -> validated value (ParameterError on the first bad one)."""
    from rclpy.exceptions import ParameterException

    values: dict[str, Any] = {}
    for spec in specs:
        try:
            value = node.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
        except ParameterException as exc:
            raise ParameterError(f"parameter '{spec.name}': {_why(exc, spec)}") from None
        values[spec.name] = validate(spec, value)
    return values


def _why(exc: Exception, spec: Spec) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    if spec.lo is not None and "out of range" in text:
        return f"{text} (allowed: {spec.lo:g} .. {spec.hi:g})"
    return text


def validate(spec: Spec, value: Any) -> Any:
    """Ranges (again: older rclpy skip them for overrides), choices and the spec's own check."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.lo is not None and value < spec.lo or spec.hi is not None and value > spec.hi:
            raise ParameterError(
                f"parameter '{spec.name}': {value!r} out of range {spec.lo:g} .. {spec.hi:g}"
            )
    if spec.choices is not None and value not in spec.choices:
        raise ParameterError(f"parameter '{spec.name}': {value!r} is not one of {', '.join(spec.choices)}")
    if spec.check is not None:
        why = spec.check(value)
        if why:
            raise ParameterError(f"parameter '{spec.name}': {why}")
    return value
