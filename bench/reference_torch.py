#!/usr/bin/env python3
"""The training step of `deno task bench`, in PyTorch, for a ratio on one machine.

Same models and shapes as lib/presets.ts (`paper`, `mlp`, `dcgan`, `sngan`,
`sngan-fc`, `keras-mlp`, whose D steps on half a batch of real and half of
generated images), one D step
and one non-saturating G step per batch, fresh noise each step, a fixed "real"
batch uploaded every step as the Deno bench does. Prints one JSON line per
configuration in the same form:
{"backend": "torch-cpu" | "torch-cuda", "batch", "model", "images_per_s", "ms_per_step", "steps"}

Usage: python3 bench/reference_torch.py [--device cpu|cuda] [--batch 128,512,2048]
       [--model paper,mlp,dcgan,sngan,sngan-fc,keras-mlp] [--steps 20] [--warmup 3] [--threads N] [--max-seconds 60]

On a CPU it runs as PyTorch is fastest on a small machine: its own pool at one
thread (--threads 1) and OpenBLAS's at every core (OPENBLAS_NUM_THREADS, unless
set); each line says which ("torch_threads", "openblas_threads").
"""

import argparse
import json
import os
import time

# On a CPU, PyTorch at its best on a small machine: its own thread pool at one
# thread (set below) and OpenBLAS's at every core. Two pools of N threads each
# fight over N cores and halve the speed. OpenBLAS reads its variable when it
# loads, so it is set before torch is imported; the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(os.cpu_count() or 1))

import torch
import torch.nn as nn
import torch.nn.functional as F


class Maxout(nn.Module):
    def __init__(self, inputs, units, pieces):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(inputs, units * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=2).values


class View(nn.Module):
    """Reshapes each example (the layers' `reshape` and `flatten`)."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def sngan_nets(fc):
    """The presets `sngan` and, with `fc`, `sngan-fc`: spectral norm on D's
    layers; `sngan-fc` adds a dense 1024 layer first in G (batch norm,
    ReLU) and last but one in D (spectrally normalised, LeakyReLU 0.1)."""
    sn = nn.utils.spectral_norm
    first = [nn.Linear(100, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU()] if fc else []
    g = nn.Sequential(
        *first,
        nn.Linear(1024 if fc else 100, 7 * 7 * 128, bias=False), nn.BatchNorm1d(7 * 7 * 128),
        nn.ReLU(), View(128, 7, 7),
        nn.ConvTranspose2d(128, 64, 4, 2, padding=1, bias=False),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, padding=1), nn.Tanh(), View(784))
    last = ([sn(nn.Linear(128 * 7 * 7, 1024)), nn.LeakyReLU(0.1), sn(nn.Linear(1024, 1))]
            if fc else [sn(nn.Linear(128 * 7 * 7, 1))])
    d = nn.Sequential(
        View(1, 28, 28), sn(nn.Conv2d(1, 64, 4, 2, padding=1)), nn.LeakyReLU(0.1),
        sn(nn.Conv2d(64, 128, 4, 2, padding=1)), nn.LeakyReLU(0.1),
        View(128 * 7 * 7), *last)
    return g, d


def build(model):
    if model == "paper":
        g = nn.Sequential(
            nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(),
            nn.Linear(1200, 784), nn.Sigmoid())
        d = nn.Sequential(
            nn.Dropout(0.2), Maxout(784, 240, 5), nn.Dropout(0.5),
            Maxout(240, 240, 5), nn.Dropout(0.5), nn.Linear(240, 1))
        opt = lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5)
    elif model == "mlp":
        g = nn.Sequential(
            nn.Linear(100, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(),
            nn.Linear(1024, 784), nn.Tanh())
        d = nn.Sequential(
            nn.Linear(784, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 512),
            nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 1))
        opt = lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.999))
    elif model == "dcgan":
        # TensorFlow's DCGAN tutorial (the preset `dcgan`), in NCHW.
        bn = lambda n, two=True: (nn.BatchNorm2d if two else nn.BatchNorm1d)(
            n, eps=1e-3, momentum=0.01)
        g = nn.Sequential(
            nn.Linear(100, 7 * 7 * 256, bias=False), bn(7 * 7 * 256, False),
            nn.LeakyReLU(0.3), View(256, 7, 7),
            nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False), bn(128),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1, bias=False),
            bn(64), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, 1, 5, 2, padding=2, output_padding=1, bias=False),
            nn.Tanh(), View(784))
        d = nn.Sequential(
            View(1, 28, 28), nn.Conv2d(1, 64, 5, 2, padding=2), nn.LeakyReLU(0.3),
            nn.Dropout(0.3), nn.Conv2d(64, 128, 5, 2, padding=2), nn.LeakyReLU(0.3),
            nn.Dropout(0.3), View(128 * 7 * 7), nn.Linear(128 * 7 * 7, 1))
        opt = lambda p: torch.optim.Adam(p, lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    elif model == "keras-mlp":
        # Keras' defaults: batch norm momentum 0.99 (PyTorch's 0.01) and
        # epsilon 1e-3, LeakyReLU 0.3, Adam's epsilon 1e-7.
        g = nn.Sequential(
            *[m for i, o in ((32, 128), (128, 256), (256, 512)) for m in (
                nn.Linear(i, o), nn.BatchNorm1d(o, eps=1e-3, momentum=0.01),
                nn.LeakyReLU(0.3))],
            nn.Linear(512, 784), nn.Tanh())
        d = nn.Sequential(
            *[m for i, o in ((784, 512), (512, 256), (256, 128)) for m in (
                nn.Linear(i, o), nn.LeakyReLU(0.3))],
            nn.Linear(128, 1))
        opt = lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.9), eps=1e-7)
    elif model in ("sngan", "sngan-fc"):
        g, d = sngan_nets(fc=model == "sngan-fc")
        opt = lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.999))
    else:
        raise SystemExit(f"unknown model {model}")
    return g, d, opt(g.parameters()), opt(d.parameters())


def time_configuration(model, batch, device, steps, warmup, max_seconds):
    torch.manual_seed(0)
    g, d, opt_g, opt_d = build(model)
    g.to(device)
    d.to(device)
    low = 0.0 if model == "paper" else -1.0
    latent = 32 if model == "keras-mlp" else 100
    # D's real (and generated) images a step: half a batch for keras-mlp.
    rows = batch // 2 if model == "keras-mlp" else batch
    real_cpu = torch.empty(rows, 784).uniform_(low, 1.0)
    ones = torch.ones(batch, 1, device=device)
    zeros = torch.zeros(rows, 1, device=device)

    def step():
        real = real_cpu.to(device, non_blocking=True)
        z = torch.randn(rows, latent, device=device)
        fake = g(z)
        loss_d = (F.binary_cross_entropy_with_logits(d(real), ones[:rows])
                  + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        z = torch.randn(batch, latent, device=device)
        loss_g = F.binary_cross_entropy_with_logits(d(g(z)), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g

    for _ in range(warmup):
        step().item()
    start = time.perf_counter()
    done = 0
    last = None
    while done < steps:
        last = step()
        done += 1
        if done >= 3 and time.perf_counter() - start > max_seconds:
            break
    last.item()  # one read-back at the end, as in the Deno bench
    seconds = time.perf_counter() - start
    return {
        "backend": f"torch-{device}",
        "batch": batch,
        "model": model,
        "images_per_s": round(done * batch / seconds),
        "ms_per_step": round(1000 * seconds / done, 2),
        "steps": done,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", default="128,512,2048")
    p.add_argument("--model", default="paper,mlp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch's CPU threads (default on a CPU: 1, beside OpenBLAS's at every core; 0: PyTorch's default)")
    p.add_argument("--max-seconds", type=float, default=60)
    a = p.parse_args()
    threads = a.threads if a.threads is not None else (1 if a.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    # Which setting ran, in every line.
    setting = {"torch_threads": torch.get_num_threads()}
    if a.device == "cpu":
        setting["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    for model in a.model.split(","):
        for batch in (int(b) for b in a.batch.split(",")):
            print(json.dumps({**time_configuration(
                model, batch, a.device, a.steps, a.warmup, a.max_seconds), **setting}), flush=True)


if __name__ == "__main__":
    main()
