"""Ridge probe of frozen last-stage tokens -> block-mean true AGB (diagnostic behind experiments/gfm/README.md).

Usage: python probe.py ENCODER.pt   (scenes: the compare run folder /tmp/gfm3/vw1_e40_s0/scenes = seeds 0, 1 train, 500 test)
Prints the best test RMSE (Mg/ha) over ridge penalties for stages L0-L3, for three random encoders and the given one.
Measured 2026-11-25 (stage L3): random 98.3 / 115.6 / 104.5; SimMIM as published 27.8; visible weight 1 at mask
ratio 0.6: 26.2; the final recipe (mask ratio 0.3, visible weight 1, /tmp/gfm4/pretrain/encoder.pt): 22.2.
"""

import sys

import numpy as np
import torch

from terracarbon.data.synthetic.scenes import load_scene
from terracarbon.gfm.pretrain import gfm_spec_from_encoder, read_encoder_checkpoint
from terracarbon.models.registry import build_model

torch.manual_seed(0)
enc_path = sys.argv[1]
ck = read_encoder_checkpoint(enc_path)
mean = np.array(ck["mean"], np.float32)[:, None, None]
std = np.array(ck["std"], np.float32)[:, None, None]


def feats(spec, scene):
    m = build_model(spec).eval()
    sc = load_scene(scene)
    x = sc.read_stack()
    agb = sc.read_agb()
    x = np.nan_to_num((x - mean) / std).astype(np.float32)
    with torch.no_grad():
        f = m.encoder(torch.from_numpy(x)[None])
    return [t[0].numpy() for t in f], agb


def run(tag, spec):
    res = {}
    tr = [feats(spec, f"/tmp/gfm3/vw1_e40_s0/scenes/train{i}") for i in range(2)]
    te = feats(spec, "/tmp/gfm3/vw1_e40_s0/scenes/test0")
    for lvl in range(4):

        def XY(fa, lvl=lvl):
            f, agb = fa
            C, h, w = f[lvl].shape
            s = agb.shape[0] // h
            a = np.nan_to_num(agb).reshape(h, s, w, s).mean((1, 3))
            return f[lvl].reshape(C, -1).T, a.ravel()

        X = np.concatenate([XY(t)[0] for t in tr])
        y = np.concatenate([XY(t)[1] for t in tr])
        Xt, yt = XY(te)
        mu, sd = X.mean(0), X.std(0) + 1e-6
        X = (X - mu) / sd
        Xt = (Xt - mu) / sd
        best = 1e9
        for lam in [1e-2, 1e-1, 1, 10, 100, 1000]:
            A = np.c_[X, np.ones(len(X))]
            w = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ y)
            p = np.c_[Xt, np.ones(len(Xt))] @ w
            best = min(best, np.sqrt(np.mean((p - yt) ** 2)))
        res[lvl] = best
    print(tag, " ".join(f"L{k}:{v:.1f}" for k, v in res.items()), flush=True)


for s in range(3):
    torch.manual_seed(s)
    spec = gfm_spec_from_encoder(enc_path, freeze_encoder=True, decoder="conv")
    spec.pop("encoder_weights")
    spec["in_channels"] = 12
    run(f"random{s}", spec)
spec = gfm_spec_from_encoder(enc_path, freeze_encoder=True, decoder="conv")
spec["in_channels"] = 12
run("pretrained", spec)
