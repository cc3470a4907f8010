#!/usr/bin/env bash
# Regenerates every generated benchmark section from the installed .venv, in one sitting:
#   README.md             the Single-machine bench on the synthetic sample (default options, as a user runs it)
#   BENCHMARKS.md#fps30   the same at a 30 fps camera (synthetic@30)
#   BENCHMARKS.md#real    real video without labels (agreement with SegPath): OpenCV's vtest.avi, tree.avi
#                         and Megamind.avi (Debian's opencv-doc; VIDEOS=dir, default ~/.cache/dvs_cluster)
#   BENCHMARKS.md         the cluster bench (1+1 ... 1+6, options, simulator, planner calibration)
# Pass the parts to run: scripts/bench_all.sh single fps30 real cluster (default: all). 26 min on 2 cores
# with the Lite1 seg net (2026-12-08; ~1.5 h with the slower net before it).
# Other jobs on the machine skew the speeds; stop them first (kill -STOP <pid>, kill -CONT after).
set -euo pipefail
cd "$(dirname "$0")/.."
B=.venv/bin/dvs-cluster
VIDEOS=${VIDEOS:-$HOME/.cache/dvs_cluster}
parts=${*:-single fps30 real cluster}
FRONT=segpath,segpath@0.75,segpath@0.5
SWEEP=80,85,88,90,92,93,94,95,96,98,90:3,93:3,94:3,94.5:3,95:3,85:5,85:6  # THRESHOLD:CAP points: the fronts of caps 3, 5 and 6 beside the default cap
for part in $parts; do
  case $part in
    single)
      $B bench --configs $FRONT,single,single:onnx,fixed3,fixed4 --frames 120 --sweep $SWEEP \
        --json docs/bench/single.json --plot docs/bench/single_sweep.png --markdown README.md ;;
    fps30)
      $B bench --source synthetic@30 --configs $FRONT,single,single:onnx,fixed3,fixed4 --frames 120 \
        --sweep $SWEEP --json docs/bench/fps30.json --plot docs/bench/fps30_sweep.png \
        --markdown 'BENCHMARKS.md#fps30' ;;
    real)
      for v in vtest tree Megamind; do
        f=$VIDEOS/$v.avi
        [[ -f $f ]] || { echo "bench_all: $f missing (dpkg-deb -x opencv-doc_*.deb; see docs/CAMVID.md)" >&2; exit 2; }
        $B bench --source "$f" --configs $FRONT,single,single:onnx --frames 120 --sweep $SWEEP \
          --json "docs/bench/real_$v.json" --plot "docs/bench/real_${v}_sweep.png" \
          --markdown "BENCHMARKS.md#real-$v"
      done ;;
    cluster)
      # pipe1 = one task per slave (the default before 2026-12-04); fifo:pipe1 = the paper's scheme.
      taskset -c 1 $B bench --configs segpath,single,1+1,1+2,1+3,1+4,1+5,1+6,1+1:pipe1,1+2:pipe1,1+4:pipe1,\
1+2:fifo:pipe1,1+4:fifo:pipe1,1+6:fifo:pipe1,1+2:strict,1+4:strict,1+1:logits,1+1:res16,1+1:res8,1+2:aff,\
1+2:aff:fwd2,1+2:keys16,1+2:keys8,1+4:aff,1+6:aff,1+4:aff:keys8:res8:fwd2,1+1:echo:pipe4,1+1:echo:hold25 \
        --frames 60 --threads 1 --sweep '' --json docs/bench/bench.json --plot docs/bench --markdown BENCHMARKS.md ;;
    *) echo "bench_all: unknown part $part (single, fps30, real, cluster)" >&2; exit 2 ;;
  esac
done
