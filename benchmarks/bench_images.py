"""Image flows: bits/dim, a samples grid and training throughput on 8x8 digits (CPU).

scikit-learn's 8x8 digits (17 grey levels, 1,797 images; the last 297 held out) with a
Gaussian base. Rows, side by side in one run on the same data, steps and batch size:

- ``unet tiny``: the U-Net preset "tiny" (75k parameters) on images ``(1, 8, 8)``;
- ``mlp``: the default MLP on the same pixels as 64-D vectors (a reference);

plus two reference models evaluated on the same held-out images: the uniform density on
``[0, 1]^64`` (``log2(17) = 4.09`` bits/dim) and the untrained flow (``v = 0``: a Gaussian
in the normalised coordinates). bpd is the held-out mean with Hutchinson log-densities
(2 probes, dopri5 at atol = rtol = 1e-4) and its standard error; training throughput is
images per second from the per-step wall times after 20 warm-up steps (median, and the
25-75% range), single torch thread. A samples grid of the U-Net flow is written next to
the results.

Full mode trains longer on digits and prints the GPU commands of ``examples/images``
(CIFAR-10, ImageNet-32, 128x128 flowers on ``torchrun``), which need a GPU and the data
sets on disk; no GPU numbers are reported from a machine without one.

Run: ``python benchmarks/bench_images.py --quick`` (CI-sized) or without it (full).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from _common import RESULTS, write_results

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

Published targets (REFERENCES.md, V): CIFAR-10 2.99 bpd, ImageNet-32 3.48 bpd (FID 8.49)."""


def throughput(history, batch: int) -> tuple[float, float, float]:
    """Images/s from per-step wall times after 20 warm-up steps: median, 25% and 75%."""
    dt = np.diff(history["wall_time"].values)[20:]
    rate = batch / dt
    return float(np.median(rate)), float(np.quantile(rate, 0.25)), float(np.quantile(rate, 0.75))


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
    q50, q25, q75 = throughput(unet.history, batch)
    n_params = sum(p.numel() for p in unet.network.parameters())
    rows.append(
        dict(
            model="unet tiny (1x8x8)",
            params=n_params,
            bpd=est.bpd,
            bpd_stderr=est.stderr,
            images_per_s=q50,
            images_per_s_q25=q25,
            images_per_s_q75=q75,
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
    q50, q25, q75 = throughput(mlp.history, batch)
    rows.append(
        dict(
            model="mlp (64-D vectors)",
            params=sum(p.numel() for p in mlp.network.parameters()),
            bpd=est_mlp.bpd,
            bpd_stderr=est_mlp.stderr,
            images_per_s=q50,
            images_per_s_q25=q25,
            images_per_s_q75=q75,
            train_s=t_mlp,
            eval_nfe=est_mlp.nfe,
        )
    )

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
        f"images, {steps} steps of batch {batch}, 1 torch thread. U-Net/MLP training "
        f"throughput ratio: {ratio:.3g}. Samples grid: `{grid.name}`.\n\n{GPU_COMMANDS}"
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
    path = write_results(name, rows, COLUMNS, params, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
