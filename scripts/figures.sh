#!/usr/bin/env bash
# Regenerates the README picture from a real cluster run (master + 2 slaves) on the embedded sample:
# input | cluster output overlay | ground truth, frame FRAME (default 40). Needs the installed .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAME=${FRAME:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/dvs-cluster run --slaves 2 --frames $((FRAME + 1)) --save-labels "$tmp/labels" --save-gt "$tmp/gt"
mkdir -p docs/images
.venv/bin/python - "$tmp" "$FRAME" <<'PY'
import sys
from pathlib import Path

import cv2
import numpy as np

from dvs_cluster.core.classes import colorize, overlay
from dvs_cluster.data.synthetic import default_sample

tmp, frame = Path(sys.argv[1]), int(sys.argv[2])
name = sorted((tmp / "labels").iterdir())[frame].name
labels = cv2.imread(str(tmp / "labels" / name), cv2.IMREAD_UNCHANGED)
gt = cv2.imread(str(tmp / "gt" / name), cv2.IMREAD_UNCHANGED)
image = default_sample().frame(frame).image
row = np.concatenate([image, overlay(image, labels, 0.6), colorize(gt)], axis=1)
row = cv2.resize(row, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
cv2.imwrite("docs/images/demo.png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
print("wrote docs/images/demo.png from", name)
PY

# The real-image picture: a CamVid test frame (../shared/datasets/camvid.tar, extracted to the user cache
# by the training code) through `--models models`: input | DVS overlay | CamVid labels as trainIds.
REAL=${REAL:-Seq05VD_f01110}
.venv/bin/python - "$tmp" "$REAL" <<'PY'
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from dvs_cluster.core.classes import colorize, overlay
from dvs_cluster.train import datasets as D

tmp, name = Path(sys.argv[1]), sys.argv[2]
root = D.camvid_root()
if root is None:
    sys.exit("CamVid not found: the real-image picture needs ../shared/datasets/camvid.tar")
src = root / "test" / f"{name}.jpg"
cmd = [".venv/bin/dvs-cluster", "segment", "--models", "models", "--source", str(src),
       "--save-labels", str(tmp / "real"), "-q"]
subprocess.run(cmd, check=True)
labels = cv2.imread(str(next((tmp / "real").iterdir())), cv2.IMREAD_UNCHANGED)
image = D.read_rgb(src)
gt = D.read_label(root / "testannot" / f"{name}.png", D.CAMVID_LUT)
row = np.concatenate([image, overlay(image, labels, 0.6), colorize(gt)], axis=1)
cv2.imwrite("docs/images/real.png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
print("wrote docs/images/real.png from CamVid test", name)
PY
