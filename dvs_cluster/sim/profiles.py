"""
Board profiles and networks for the simulator, kept as data files in ``dvs_cluster/sim/profiles/``.

A board profile is a pair of multipliers on the calibration machine's measured costs (``compute`` for
the nets, ``cpu`` for everything else); only ``local`` is measured, the Jetson-class ones are
documented assumptions and every report prints their ``assumption`` flag. ``networks.yaml`` holds the
links; ``loopback`` takes its numbers from the calibration's Zenoh measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dvs_cluster.sim.des import Board, Network

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
NETWORK_FILE = "networks.yaml"


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def board_names() -> list[str]:
    """Profiles shipped (file stems)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.name != NETWORK_FILE)


def load_board(name: str) -> Board:
    """A shipped profile by name, or a YAML file by path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown board profile {name!r} (shipped: {', '.join(board_names())})")
    d = _read(path)
    return Board(
        name=str(d.get("name", path.stem)),
        compute=float(d.get("compute", 1.0)),
        cpu=float(d.get("cpu", 1.0)),
        assumption=bool(d.get("assumption", True)),
        notes=str(d.get("notes", "")).strip(),
    )


def network_names() -> list[str]:
    """Networks shipped."""
    return sorted(_read(PROFILE_DIR / NETWORK_FILE))


def load_network(name: str, link: dict[str, float] | None = None) -> Network:
    """
    A network by name (``networks.yaml``), or ``<N>mbit`` / ``<N>gbit`` at 94 % goodput.

    ``loopback`` uses the calibration's measured ``link`` when given.
    """
    nets = _read(PROFILE_DIR / NETWORK_FILE)
    key = name.strip().lower()
    if key in nets:
        d = nets[key]
        net = Network(
            name=key,
            mb_per_s=float(d["mb_per_s"]),
            latency_ms=float(d["latency_ms"]),
            hops=int(d.get("hops", 2)),
            shared_medium=bool(d.get("shared_medium", False)),
            assumption=bool(d.get("assumption", True)),
            notes=str(d.get("notes", "")),
        )
        if key == "loopback" and link:
            net.mb_per_s = float(link["mb_per_s"])
            net.latency_ms = float(link["latency_ms"])
            net.notes = "measured (Zenoh between two sessions on the calibration machine)"
        return net
    for suffix, mult in (("gbit", 1000.0), ("mbit", 1.0)):
        if key.endswith(suffix):
            try:
                mbit = float(key[: -len(suffix)]) * mult
            except ValueError:
                break
            return Network(
                key, mbit / 8.0 * 0.94, 0.1, 2, notes="ASSUMPTION, switched Ethernet, 94 % goodput"
            )
    raise ValueError(f"unknown network {name!r} (use {', '.join(network_names())}, or e.g. 2.5gbit)")
