"""Per-pixel logits (upsampled as at run time) at CamVid label pixels, for the bias check."""

import sys

import cv2
import numpy as np
import onnxruntime as ort

from dvs_cluster.io.frame import FrameTransform
from dvs_cluster.train.datasets import RUNTIME_H, RUNTIME_W, camvid_pairs, find_camvid, read_label, read_rgb
from dvs_cluster.train.dnset import region_batch

model, out, splits, sub = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = 2
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
root = find_camvid(None)
L, G = [], []
for sp in splits:
    pr = camvid_pairs(root, sp)
    for img_p, lab_p in zip(pr.images, pr.labels, strict=True):
        im = read_rgb(img_p)
        gt = read_label(lab_p, np.arange(256, dtype=np.uint8))
        tf = FrameTransform(im.shape[1], im.shape[0], RUNTIME_W, RUNTIME_H)
        rb = region_batch(tf.forward(im))
        lg = s.run(["logits"], {"image": rb})[0]
        rh, rw = rb.shape[1:3]
        ups = [
            cv2.resize(
                np.ascontiguousarray(lg[r].transpose(1, 2, 0)), (rw, rh), interpolation=cv2.INTER_LINEAR
            )
            for r in range(4)
        ]
        full = np.concatenate([np.concatenate(ups[:2], 1), np.concatenate(ups[2:], 1)], 0)
        ox, oy, cw, ch = tf.content
        crop = full[oy : oy + ch, ox : ox + cw]
        h, w = gt.shape
        ys = np.floor(np.arange(0, h, sub) * ch / h).astype(int).clip(0, ch - 1)
        xs = np.floor(np.arange(0, w, sub) * cw / w).astype(int).clip(0, cw - 1)
        L.append(crop[ys][:, xs].astype(np.float16).reshape(-1, crop.shape[2]))
        G.append(gt[::sub, ::sub].reshape(-1))
np.savez(out, logits=np.concatenate(L), gt=np.concatenate(G))
print(out, sum(len(g) for g in G))
