#!/usr/bin/env bash
# The chain after a new seg net (issue 19): everything that depends on the seg net's outputs, redone
# into a staging copy of models/, so the shipped set changes only when the result is checked.
#
#   bash scripts/seg_chain.sh SEG_DIR [STAGE]     (STAGE defaults to build/stage)
#
# SEG_DIR holds the new seg.onnx and its training.json (train/lite.py writes both). Steps, in order
# (each DN is fitted on targets the seg net defines, so all of them are refit):
#   1. STAGE = models/ with SEG_DIR's seg.onnx + training.json
#   2. DN v2 for the default flow source (dis) + its real-video threshold
#   3. DN v1 (dn.onnx, --flow onnx) + its threshold
#   4. DN v2 for the flow net (dn2_flownet.onnx)
#   5. the card: evaluate.py (held-out synthetic, CamVid test, vtest agreement) -> metrics.json, README.md
#   6. compare.py: the shipped set against STAGE side by side (CamVid through the runtime, ms per region)
#   7. CamVid test through the product's command: `dvs-cluster segment --policy segpath` on the test
#      folder, its PNGs scored by realeval --labels (STAGE-reports/camvid_segment.json)
# Each step's wall time goes to STAGE-reports/chain_times.txt. Then inspect and `cp STAGE/* models/`.
# FROM=<step name> continues a chain that stopped, from that step, in the same STAGE.
set -euo pipefail
cd "$(dirname "$0")/.."
SEG=${1:?usage: seg_chain.sh SEG_DIR [STAGE]}
STAGE=${2:-build/stage}
REP=$STAGE-reports  # step times, compare.txt, camvid_segment.json: beside STAGE, so STAGE/* is the model set
VIDEO=${VIDEO:-$HOME/.cache/dvs_cluster/vtest.avi}
CAMVID=${CAMVID:-$HOME/.cache/dvs_cluster/camvid}
PY=${PY:-.venv/bin/python}
for f in "$SEG/seg.onnx" "$SEG/training.json" "$VIDEO" "$CAMVID/test.txt"; do
    [[ -f $f ]] || { echo "seg_chain.sh: $f not found" >&2; exit 2; }
done
export OMP_WAIT_POLICY=PASSIVE
FROM=${FROM:-}
if [[ -z $FROM ]]; then
    rm -rf "$STAGE" "$REP" && mkdir -p "$STAGE" "$REP" && cp models/* "$STAGE"/
    cp "$SEG/seg.onnx" "$SEG/training.json" "$STAGE"/
    : >"$REP/chain_times.txt"
    # The card lists this command after the seg net's: it made every file but seg.onnx and flow.onnx.
    $PY - "$STAGE/training.json" "bash scripts/seg_chain.sh $*" <<'PY'
import json, sys
from pathlib import Path
p = Path(sys.argv[1])
info = json.loads(p.read_text())
info["chain_command"] = sys.argv[2]
p.write_text(json.dumps(info, indent=2))
PY
fi
step() {
    local name=$1; shift
    if [[ -n $FROM && $name != "$FROM" ]]; then echo "== $name: done before, skipped" >&2; return; fi
    FROM=
    local t0=$SECONDS
    echo "== $name: $*" >&2
    "$@"
    echo "$name $((SECONDS - t0)) s: $*" >>"$REP/chain_times.txt"
}
step dn2-dis $PY -m dvs_cluster.train.dn2 --models "$STAGE" --flow dis --seeds 20 --steps 5000
step threshold-dis $PY -m dvs_cluster.train.threshold --models "$STAGE" --flow dis --video "$VIDEO" \
    --select 400 --synthetic 92
step dn-v1 $PY -m dvs_cluster.train.camvid_train --budget camvid-trainval --stages dn --dn-seeds 20 \
    --dn-steps 8000 --out "$STAGE" --base "$STAGE" --work build/stage_work
step threshold-v1 $PY -m dvs_cluster.train.threshold --models "$STAGE" --flow onnx --dn v1 \
    --video "$VIDEO" --select 400 --grid 90,91,92,93,94,95,96,97,98,99
step dn2-flownet $PY -m dvs_cluster.train.dn2 --models "$STAGE" --flow onnx --seeds 20 --steps 5000
step evaluate $PY -m dvs_cluster.train.evaluate --models "$STAGE" --camvid auto --video "$VIDEO"
step compare $PY -m dvs_cluster.train.compare models "$STAGE" >"$REP/compare.txt"
camvid_segment() {
    rm -rf build/stage_labels
    .venv/bin/dvs-cluster segment --source "$CAMVID/test" --policy segpath --models "$STAGE" \
        --save-labels build/stage_labels -q
    $PY -m dvs_cluster.train.realeval --camvid "$CAMVID" --labels build/stage_labels >"$REP/camvid_segment.json"
}
step camvid-segment camvid_segment
cat "$REP/chain_times.txt"
