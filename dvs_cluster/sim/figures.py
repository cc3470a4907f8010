"""
Figures 5 and 6 of the paper from a bench report.

Per-config mIoU / fps / speed-up, and the master and slave latency breakdowns as stacked bars.
Measured runs and simulator predictions are drawn apart (hatched grey bars: processes shared a
core, so those runs are not board measurements).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MASTER_STAGES = (
    "split",
    "schedule",
    "serialize",
    "publish",
    "deserialize",
    "keys",
    "assembly",
    "metrics",
    "output",
    "other",
)
SLAVE_STAGES = (
    "deserialize",
    "key_update",
    "flow",
    "dn",
    "seg",
    "warp",
    "labels",
    "serialize_prev",
    "publish",
)


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:
        from dvs_cluster.bench import BenchError

        raise BenchError("figures need matplotlib: pip install 'dvs_cluster[plot]'") from e
    return plt


def figure5(report: dict[str, Any], path: Path) -> Path:
    """mIoU, fps and speed-up per configuration: measured bars, simulator markers, board predictions."""
    plt = _plt()
    rows = [r for r in report["configs"] if r.get("fps") and r.get("kind") != "capacity"]
    sim = report.get("simulation") or {}
    pred = {v["name"]: v for v in sim.get("validation", [])}
    boards = (sim.get("boards") or {}).get("networks", {})
    names = [r["name"] for r in rows]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=110)
    panels = (("miou", "mIoU (%)"), ("fps", "frames per second"), ("speedup", "speed-up vs Single"))
    single = next((r for r in rows if r["name"] == "Single"), None)
    for ax, (key, label) in zip(axes, panels, strict=True):
        vals = [r.get(key) or 0.0 for r in rows]
        hatches = ["//" if r.get("shared_cores") else "" for r in rows]
        for xi, v, h in zip(x, vals, hatches, strict=True):
            ax.bar(
                xi, v, color="tab:blue" if not h else "tab:gray", hatch=h, edgecolor="black", linewidth=0.5
            )
        pk = {"miou": "predicted_miou", "fps": "predicted_fps", "speedup": "predicted_fps"}[key]
        px, py = [], []
        for xi, r in zip(x, rows, strict=True):
            p = pred.get(r["name"], {}).get(pk)
            if p is None:
                continue
            if key == "speedup":
                base = pred.get("Single", {}).get("predicted_fps") or (single or {}).get("fps")
                p = p / base if base else None
            if p is not None:
                px.append(xi)
                py.append(p)
        if px:
            ax.plot(px, py, "D", color="tab:orange", label="simulator, as run")
        for net, style in (("1gbit", "-"), ("loopback", ":")):
            pts = [b for b in boards.get(net, []) if b["variant"] == "best"]
            bx, by = [], []
            for b in pts:
                if b["name"] in names:
                    bx.append(names.index(b["name"]))
                    by.append(b.get(key) if key != "fps" else b["fps"])
            if bx and all(v is not None for v in by):
                ax.plot(
                    bx,
                    by,
                    style,
                    marker="o",
                    color="tab:green",
                    ms=4,
                    label=f"simulator, 1 board/process, best variant, {net}",
                )
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel(label)
        if key == "miou" and any(vals):
            lo = min(v for v in vals if v)
            ax.set_ylim(max(0.0, lo - 3.0), max(vals) + 1.5)  # the differences are what matters
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "Figure 5: configurations (bars measured; grey hatched = processes shared cores)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _stack(
    ax: Any, labels: list[str], parts: list[dict[str, float]], stages: tuple[str, ...], extra: str | None
) -> None:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20")
    bottoms = [0.0] * len(parts)
    keys = [*stages, *([extra] if extra else [])]
    for i, st in enumerate(keys):
        vals = [p.get(st, 0.0) for p in parts]
        if not any(v > 1e-3 for v in vals):
            continue
        color = "lightgrey" if st == "idle" else cmap(i % 20)
        ax.bar(
            range(len(parts)), vals, bottom=bottoms, color=color, label=st, edgecolor="black", linewidth=0.3
        )
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
    ax.set_xticks(range(len(parts)))
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _slave_per_frame(
    slave_ms_per_region: dict[str, float], regions: int, slaves: int, fps: float
) -> dict[str, float]:
    """Slave ms per frame and per slave (its share of the frame's regions) plus idle up to the period."""
    out = {k: v * regions / slaves for k, v in slave_ms_per_region.items() if k != "total"}
    if fps > 0:
        out["idle"] = max(0.0, 1000.0 / fps - sum(out.values()))
    return out


def figure6(report: dict[str, Any], path: Path) -> Path:
    """Master (ms per frame) and slave (ms per frame per slave) breakdowns; measured and simulated."""
    plt = _plt()
    grid = report.get("grid") or [2, 2]
    regions = int(grid[0]) * int(grid[1])
    measured = [r for r in report["configs"] if r.get("kind") == "cluster"]
    sim = report.get("simulation") or {}
    boards = [
        b for b in (sim.get("boards") or {}).get("networks", {}).get("1gbit", []) if b["variant"] == "default"
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), dpi=110)
    sets = [
        ("measured on this machine", measured, lambda r: int(r["slaves"])),
        (
            "simulated, one board per process, 1 Gbit/s, default options",
            boards,
            lambda r: int(r["name"].split("+")[1]),
        ),
    ]
    for row_i, (title, rows, nslaves) in enumerate(sets):
        am, asl = axes[row_i]
        if not rows:
            am.set_visible(False)
            asl.set_visible(False)
            continue
        labels = [r["name"] for r in rows]
        _stack(am, labels, [r["breakdown"]["master"] for r in rows], MASTER_STAGES, "idle")
        am.set_ylabel("master ms per frame")
        am.set_title(f"master, {title}", fontsize=9)
        sl = [_slave_per_frame(r["breakdown"]["slave"], regions, nslaves(r), r["fps"]) for r in rows]
        _stack(asl, labels, sl, SLAVE_STAGES, "idle")
        asl.set_ylabel("slave ms per frame (per slave)")
        asl.set_title(f"slave, {title}", fontsize=9)
    for ax in axes.flat:
        if ax.get_visible():
            ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Figure 6: latency breakdown of the master and the slaves", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
