#!/usr/bin/env bash
# Overload soak (issue 8): a camera 2x faster than the cluster for DURATION seconds (default 600 = 10 min).
#
#   bash scripts/soak.sh [DURATION_S] [SLAVES]        # e.g. bash scripts/soak.sh 120 2 for a 2-minute form
#
# 1. renders 100 synthetic frames once and links them in a loop into out/soak/frames (live rendering
#    would be slower than the camera, and then the source, not the cluster, would set the pace);
# 2. measures what the cluster sustains (a preloaded run, no drops) -> out/soak/capacity.json;
# 3. runs `dvs-cluster run --rate 2*fps` for DURATION seconds -> out/soak/report.json, and prints
#    frames in/out/dropped, the queue bound, frame latency and the start/end RSS of master and slaves.
# Pass/fail: queue bounded (by construction), drops counted (out + dropped = in), latency bounded
# (p99 under 2 s), RSS flat (master and each slave grow < 50 MiB from the sample after warm-up, a quarter
# of the run or 60 s, to the last; samples every 5 s in report.json "rss_samples"). Not in the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-600}
SLAVES=${2:-2}
W=${SOAK_WIDTH:-1024}
H=${SOAK_HEIGHT:-512}
PY=${PYTHON:-.venv/bin/python}
OUT=out/soak
mkdir -p "$OUT"

"$PY" - "$OUT" "$W" "$H" <<'EOF'
import sys
from pathlib import Path

import cv2

from dvs_cluster.io.sources import open_source

out, w, h = Path(sys.argv[1]) / "unique", int(sys.argv[2]), int(sys.argv[3])
if not (out / "0099.png").exists() or cv2.imread(str(out / "0099.png")).shape[:2] != (h, w):
    out.mkdir(parents=True, exist_ok=True)
    with open_source("synthetic", w, h, frames=100) as src:
        for f in src:
            cv2.imwrite(str(out / f"{f.index:04d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
EOF

link_frames() {  # link_frames N: out/soak/frames holds N frames cycling over the 100 rendered ones
    rm -rf "$OUT/frames" && mkdir -p "$OUT/frames"
    "$PY" -c "
import sys; from pathlib import Path
u, d = Path('$OUT/unique').resolve(), Path('$OUT/frames')
for i in range(int(sys.argv[1])):
    (d / f'{i:06d}.png').symlink_to(u / f'{i % 100:04d}.png')
" "$1"
}

link_frames 80
"$PY" -m dvs_cluster.cli run --slaves "$SLAVES" --source "$OUT/frames" --width "$W" --height "$H" \
    --frames 80 --preload --json "$OUT/capacity.json"
FPS=$("$PY" -c "import json; print(json.load(open('$OUT/capacity.json'))['fps'])")
RATE=$("$PY" -c "print(round(2 * $FPS, 2))")
FRAMES=$("$PY" -c "import math; print(math.ceil($RATE * $DUR))")
echo "cluster sustains $FPS fps; soak: camera at $RATE fps for $DUR s ($FRAMES frames)" >&2
link_frames "$FRAMES"
"$PY" -m dvs_cluster.cli run --slaves "$SLAVES" --source "$OUT/frames" --width "$W" --height "$H" \
    --frames "$FRAMES" --rate "$RATE" --json "$OUT/report.json"
"$PY" - "$OUT/report.json" "$FPS" "$RATE" <<'EOF'
import json
import sys

rep = json.load(open(sys.argv[1]))
rss, lat = rep["rss_mb"], rep["latency_ms"]["frame"]
summary = {
    "capacity_fps": float(sys.argv[2]),
    "camera_fps": float(sys.argv[3]),
    "wall_s": round(rep["wall_seconds"], 1),
    "frames_in": rep["frames_in"],
    "frames_out": rep["frames_out"],
    "frames_dropped": rep["frames_dropped"],
    "queue_bound_frames": rep["scheduler"]["max_queued_frames"],
    "latency_ms": {k: round(v, 1) for k, v in lat.items()},
    "rss_mb": rss,
}
# Flat after warm-up: the first sample after a quarter of the run (at most 60 s) against the last one.
samples = rep["rss_samples"]
warm = next((s for s in samples if s["t"] >= min(60.0, rep["wall_seconds"] / 4)), samples[0])
last = samples[-1]
summary["rss_after_warmup_mb"] = warm
summary["rss_last_sample_mb"] = last
summary["rss_growth_after_warmup_mb"] = {k: round(last[k] - warm[k], 1) for k in last if k != "t"}
ok = (
    rep["frames_out"] + rep["frames_dropped"] == rep["frames_in"]
    and lat["p99"] < 2000
    and all(v < 50 for v in summary["rss_growth_after_warmup_mb"].values())
)
summary["pass"] = ok
json.dump(summary, open(sys.argv[1].replace("report.json", "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if ok else 1)
EOF
