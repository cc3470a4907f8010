import numpy as np

from dvs_cluster.train.realeval import camvid_confusion, camvid_scores

d = np.load("build/cal/trval.npz")
n_tr = 367 * 180 * 240


def prep(L, G):
    m = G < 11
    return L[m].astype(np.float32), G[m]


Ltr, Gtr = prep(d["logits"][:n_tr], d["gt"][:n_tr])
Lva, Gva = prep(d["logits"][n_tr:], d["gt"][n_tr:])
t = np.load("build/cal/test.npz")
Lte, Gte = prep(t["logits"], t["gt"])
rng = np.random.default_rng(0)
i = rng.choice(len(Gtr), 4_000_000, replace=False)
Lf, Gf = Ltr[i], Gtr[i]


def sc(L, G, b):
    return camvid_scores(camvid_confusion((L + b).argmax(1).astype(np.uint8), G))["miou"]


b = np.zeros(19, np.float32)
best = sc(Lf, Gf, b)
print("zero: val", round(sc(Lva, Gva, b), 2), "test", round(sc(Lte, Gte, b), 2), flush=True)
for r in range(3):
    for c in range(19):
        for s in (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0):
            x = b.copy()
            x[c] += s
            v = sc(Lf, Gf, x)
            if v > best + 1e-3:
                best, b = v, x
    print(
        "round",
        r,
        "train",
        round(best, 2),
        "val",
        round(sc(Lva, Gva, b), 2),
        "test",
        round(sc(Lte, Gte, b), 2),
        np.round(b, 2).tolist(),
        flush=True,
    )
