"""Image flows: bits/dim, a samples grid and training throughput on 8x8 digits (CPU).

scikit-learn's 8x8 digits (17 grey levels, 1,797 images; the last 297 held out) with a
Gaussian base. Rows, side by side in one run on the same data, steps and batch size:

- ``unet tiny``: the U-Net preset "tiny" (75k parameters) on images ``(1, 8, 8)``;
- ``mlp``: the default MLP on the same pixels as 64-D vectors (a reference);

plus two reference models evaluated on the same held-out images: the uniform density on
``[0, 1]^64`` (``log2(17) = 4.09`` bits/dim) and the untrained flow (``v = 0``: a Gaussian
in the normalised coordinates). bpd is the held-out mean with Hutchinson log-densities
(2 probes, dopri5 at atol = rtol = 1e-4) and its standard error. Training throughput is
images per second of a training step (forward, backward, AdamW) of the two networks run
interleaved, one step of each in turn, so a shared machine's load hits both alike (median
and 25-75% range; single torch thread); their ratio is the comparable number. A samples grid
of the U-Net flow is written next to the results.

Full mode trains longer on digits and prints the GPU commands of ``examples/images``
(CIFAR-10, ImageNet-32, 128x128 flowers on ``torchrun``), which need a GPU and the data
sets on disk; no GPU numbers are reported from a machine without one.

Run: ``python benchmarks/bench_images.py --quick`` (CI-sized: 1,500 steps, about 2.5 min on
one core) or without it (full: 8,000 steps, about 15 min on one core).
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import numpy as np
import torch
from _common import FIT_MODULES, RESULTS, write_results

import sitransport as st
from sitransport.images import ImageData, bpd

COLUMNS = [
    "model",
    "params",
    "bpd",
    "bpd_stderr",
    "images_per_s",
    "images_per_s_q25",
    "images_per_s_q75",
    "train_s",
    "eval_nfe",
]

GPU_COMMANDS = """\
GPU runs (examples/images/README.md; not run here: this machine has no GPU), N GPUs each:

    torchrun --nproc_per_node=N examples/images/train_images.py --config cifar10 \\
        --data-root /data/cifar10 --out runs/cifar10
    torchrun --nproc_per_node=N examples/images/train_images.py --config imagenet32 \\
        --data-root /data/imagenet32 --out runs/imagenet32
    torchrun --nproc_per_node=N examples/images/train_images.py --config flowers128 \\
        --data-root /data/flowers/jpg --out runs/flowers128
    python examples/images/train_images.py --config cifar10 --data-root /data/cifar10 \\
        --out runs/cifar10 --eval-only [--fid-weights /path/to/inception.pth]

Published targets (Albergo & Vanden-Eijnden, Building Normalizing Flows with Stochastic
Interpolants, ICLR 2023, arXiv:2209.15571, image-generation results): CIFAR-10 2.99 bpd,
ImageNet-32 3.48 bpd (FID 8.49)."""


def throughput(flows: dict, batch: int, repeats: int, seed: int) -> dict:
    """Training-step images/s of each flow's network, measured interleaved (one step of each
    in turn, so load on a shared machine hits all alike): a step is forward, backward and an
    AdamW update of a copy of the network on a batch of ``batch`` normal inputs at random
    times; 20 warm-up rounds, then ``repeats`` rounds. Returns {name: (median, q25, q75)}."""
    gen = torch.Generator().manual_seed(seed)
    setups = {}
    for name, flow in flows.items():
        net = copy.deepcopy(flow.network).train()
        x = torch.randn((batch, *flow.shape), generator=gen)
        setups[name] = (net, torch.optim.AdamW(net.parameters(), lr=1e-4), x)
    times: dict[str, list[float]] = {name: [] for name in flows}
    for r in range(20 + repeats):
        for name, (net, opt, x) in setups.items():
            t = torch.rand(batch, generator=gen)
            t0 = time.perf_counter()
            opt.zero_grad()
            net(x, t).pow(2).mean().backward()
            opt.step()
            if r >= 20:
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, dt in times.items():
        rate = batch / np.array(dt)
        out[name] = (float(np.median(rate)), *map(float, np.quantile(rate, [0.25, 0.75])))
    return out


# what a run exercises (the freshness record of its results): fit with the U-Net and the MLP,
# the digits, dequantisation, bits/dim and the samples grid
MODULES = (*FIT_MODULES, "sitransport.images", "sitransport.metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 1500 if args.quick else 8000
    batch, n_test = 64, 297
    digits = st.images.load_digits()
    train = ImageData(digits.pixels[:-n_test], None, digits.levels)
    test = ImageData(digits.pixels[-n_test:], None, digits.levels)
    ode = st.ODEOptions(atol=1e-4, rtol=1e-4)
    common = dict(steps=steps, batch_size=batch, lr=2e-3, seed=args.seed, progress=False)
    rows = []

    t0 = time.perf_counter()
    unet = st.fit("gaussian", train, network="tiny", **common)
    t_unet = time.perf_counter() - t0
    est = bpd(unet, test, probes=2, ode=ode, seed=args.seed, progress=False)
    n_params = sum(p.numel() for p in unet.network.parameters())
    rows.append(
        dict(
            model="unet tiny (1x8x8)",
            params=n_params,
            bpd=est.bpd,
            bpd_stderr=est.stderr,
            train_s=t_unet,
            eval_nfe=est.nfe,
        )
    )
    grid = RESULTS / (
        "bench_images_samples_quick.png" if args.quick else "bench_images_samples.png"
    )
    samples = unet.sample(64, seed=args.seed, ode=ode)
    st.images.save_grid(np.clip(samples, 0, 1), grid, nrow=8, scale=4)

    # the same pixels as 64-D vectors, dequantised afresh each batch as well
    flat = ImageData(train.pixels.reshape(len(train), -1), None, train.levels)
    t0 = time.perf_counter()
    mlp = st.fit("gaussian", flat, **common)
    t_mlp = time.perf_counter() - t0
    test_flat = ImageData(test.pixels.reshape(n_test, -1), None, test.levels)
    est_mlp = bpd(mlp, test_flat, probes=2, ode=ode, seed=args.seed, progress=False)
    rows.append(
        dict(
            model="mlp (64-D vectors)",
            params=sum(p.numel() for p in mlp.network.parameters()),
            bpd=est_mlp.bpd,
            bpd_stderr=est_mlp.stderr,
            train_s=t_mlp,
            eval_nfe=est_mlp.nfe,
        )
    )

    rates = throughput({0: unet, 1: mlp}, batch, repeats=200 if args.quick else 1000,
                       seed=args.seed)  # fmt: skip
    for i, (q50, q25, q75) in rates.items():
        rows[i].update(images_per_s=q50, images_per_s_q25=q25, images_per_s_q75=q75)

    untrained = st.TransportFlow(
        lambda z, t: 0 * z,
        "trig",
        base=unet.base,
        normalization=unet.normalization,
        shape=unet.shape,
    )
    est0 = bpd(untrained, test, probes=2, ode=ode, seed=args.seed, progress=False)
    rows.append(
        dict(
            model="untrained flow (v = 0)",
            params=0,
            bpd=est0.bpd,
            bpd_stderr=est0.stderr,
            eval_nfe=est0.nfe,
        )
    )
    rows.append(
        dict(model="uniform on [0, 1]^64", params=0, bpd=math.log2(digits.levels), bpd_stderr=0.0)
    )

    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    notes = (
        f"Digits 8x8, {digits.levels} grey levels, {len(train)} training / {n_test} held-out "
        f"images, {steps} steps of batch {batch}, 1 torch thread. bpd: held-out mean and "
        "standard error (Hutchinson, 2 probes). images_per_s: training steps (forward, "
        "backward, AdamW) of the two networks interleaved on a shared machine, median and "
        f"quartiles; U-Net / MLP ratio of medians {ratio:.3g}. train_s: wall time of fit "
        f"(load-dependent). Samples grid: `{grid.name}`.\n\n{GPU_COMMANDS}"
    )
    params = dict(
        steps=steps,
        batch_size=batch,
        n_test=n_test,
        seed=args.seed,
        quick=args.quick,
        ode="dopri5 atol=rtol=1e-4",
        probes=2,
    )
    name = "bench_images_quick" if args.quick else "bench_images"
    path = write_results(name, rows, COLUMNS, params, notes, modules=MODULES)
    print(path.read_text())


if __name__ == "__main__":
    main()
