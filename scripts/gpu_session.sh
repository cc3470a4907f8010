#!/usr/bin/env bash
# What to run when a machine with a CUDA GPU and many cores is available for a few minutes
# (docs/CAMVID.md, "The GPU run"): one seg-net training on the GPU and, on the other cores, the
# cluster bench with one core per process. Written for a bare machine that already has python3 with
# torch, numpy, opencv and onnxruntime (zenoh/rosbags may come as wheels in ./.whl); nothing here
# downloads. Everything it keeps goes to $OUT (default out/gpu_session), at most 8 files:
#   main.log   machine (lscpu, nvidia-smi, versions), data rendering, bench table
#   seg/log.txt, seg/seg_camvid.pt   the training log and its checkpoint (written every minute)
#   bench.tgz  the bench's JSON, report, figures, per-run master reports and traces
# Then, here:  python -m dvs_cluster.train.camvid_train --stages export --init $OUT/seg/seg_camvid.pt
#   --out DIR --base models, then --stages dn, then python -m dvs_cluster.train.threshold / evaluate.
#
# Knobs (environment): MINUTES (seg loop, default 8), WIDTH (xlarge), CAMVID (a CamVid folder holding
# train.txt; default: found as camvid_train finds it), BENCH=0 (skip the bench), CONFIGS (bench
# configurations), BUDGET (gpu), GEN ("seed0 seeds frames stride" of the budget's synthetic set),
# DEVICE (cuda), PY (python3), NO_WHEELS=1 (ignore .whl). A dry run on a CPU machine: BUDGET=gpu-tiny GEN="1000 2 2 5" MINUTES=0.2
# DEVICE=cpu BENCH=0 bash scripts/gpu_session.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu_session}
mkdir -p "$OUT/seg"
MINUTES=${MINUTES:-8}
WIDTH=${WIDTH:-xlarge}
BUDGET=${BUDGET:-gpu}
read -r S0 NS FR ST <<<"${GEN:-1000 160 16 7}"
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
NCPU=$(nproc)
LOG="$OUT/main.log"
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s] $*" >>"$LOG"; }

if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$LOG" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
el "start, $NCPU cpus"
{
  lscpu 2>&1 | head -30
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "
import platform, torch, numpy, cv2, onnxruntime as o
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      'numpy', numpy.__version__, 'cv2', cv2.__version__, 'onnxruntime', o.__version__, o.get_available_providers())"
} >>"$LOG" 2>&1

# 1. The synthetic training set, rendered once on every core (the trainer then reads the cache).
el "rendering the synthetic set"
$PY -c "
from pathlib import Path
from dvs_cluster.train import data as D
s = D.make_seg_set(list(range($S0, $S0 + $NS)), $FR, $ST, workers=max(1, $NCPU - 1), cache=Path('/dev/shm/dvs_synth'))
print('synthetic set', s.images.shape)" >>"$LOG" 2>&1 || { el "rendering failed"; exit 1; }

# 2. The seg net on the GPU, pinned to core 0 (its Python thread feeds the GPU), checkpoint every minute.
camvid=()
[ -n "${CAMVID:-}" ] && camvid=(--camvid "$CAMVID")
el "seg training: $WIDTH, $MINUTES min"
(
  timeout $(( $(printf '%.0f' "$MINUTES") * 60 + 120 )) taskset -c 0 $PY -m dvs_cluster.train.camvid_train \
    --budget "$BUDGET" --device "$DEVICE" --width "$WIDTH" --seg-minutes "$MINUTES" --stages seg --no-export \
    --synth-cache /dev/shm/dvs_synth "${camvid[@]}" --base models --threads 1 \
    --out /tmp/gpu_session_models --work "$OUT/seg" >"$OUT/seg/log.txt" 2>&1
  echo "exit $?" >>"$OUT/seg/log.txt"
) &
(sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >>"$LOG" 2>&1) &

# 3. The cluster bench on cores 2.. (core 1 runs the bench itself and the in-process configurations).
if [ "${BENCH:-1}" != 0 ] && [ "$NCPU" -ge 8 ]; then
  rm -rf /tmp/gpu_session_bench && mkdir -p /tmp/gpu_session_bench && cp BENCHMARKS.md /tmp/gpu_session_bench/BENCH.md
  el "bench on cores 2-$((NCPU - 1))"
  DVS_BENCH_CORES=$(seq -s, 2 $((NCPU - 1))) timeout $(( $(printf '%.0f' "$MINUTES") * 60 + 60 )) taskset -c 1 \
    $PY -m dvs_cluster.cli bench --frames 60 --threads 1 --sweep '' \
    --configs "${CONFIGS:-segpath,single,1+1,1+2,1+3,1+4,1+5,1+6,1+8,1+10,1+4:fifo,1+6:fifo,1+4:pipe2:aff:keys8:res8:fwd2,1+6:pipe2:aff,1+1:echo:pipe4,1+1:echo:hold25}" \
    --json /tmp/gpu_session_bench/bench.json --plot /tmp/gpu_session_bench \
    --markdown /tmp/gpu_session_bench/BENCH.md >>"$LOG" 2>&1
  el "bench exit $?"
  tar czf "$OUT/bench.tgz" -C /tmp gpu_session_bench 2>>"$LOG"
fi
wait
el "done"
