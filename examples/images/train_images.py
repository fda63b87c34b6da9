r"""Train an image flow on one or more GPUs
=========================================

Fits a flow from ``N(0, I)`` to dequantised images with the paper's quadratic loss and
a DDPM-style U-Net (:class:`sitransport.nn.UNetVelocity`), then evaluates it. GPU-scale,
so the docs build shows this script but never runs it; ``examples/images/README.md`` is
the full guide (data sets, a first check of a new GPU, the way to the paper's numbers).

One GPU::

    python examples/images/train_images.py --config cifar10 \
        --data-root /data/cifar10 --out runs/c10

N GPUs on one machine (DDP, NCCL; ``batch_size`` in the config is the global batch)::

    torchrun --nproc_per_node=N examples/images/train_images.py --config cifar10 \
        --data-root /data/cifar10 --out runs/c10

A run resumes from ``OUT/checkpoint.pt`` when restarted with the same command.
``--eval-only`` re-evaluates a saved run; ``--fid-weights PATH`` adds FID when
torchmetrics (with torch-fidelity) is installed and ``PATH`` holds its Inception weights
(nothing is downloaded). ``--tiny`` shrinks everything (tiny U-Net, a few steps, few
images) to check the pipeline end to end on a CPU.

Configs (``configs/*.json``): ``cifar10``, ``imagenet32``, ``flowers128`` (an image
folder at 128x128, streamed through a torch Dataset with DistributedSampler shards) and
``digits`` (8x8, built in, CPU-sized).

What a run writes and prints
----------------------------
Rank 0 writes, in ``OUT`` (``--out``):

- ``flow.sit``: the fitted flow (read it back with :func:`sitransport.load`);
- ``checkpoint.pt``: the resumable state (model, EMA, optimiser, scheduler, step, random
  generator and data position), rewritten every ``checkpoint_every`` steps;
- ``samples.png``: a grid of ``n_samples`` samples;
- ``report.json``: the held-out bits/dim (Hutchinson log-densities, dopri5 at
  atol = rtol = 1e-5) with its standard error, the training time and images per second.

It shows a progress bar while training and ends with one line. From
``python examples/images/train_images.py --tiny --out runs/tiny`` on a CPU (4 steps of a
tiny U-Net: the numbers only show the form)::

    held-out bits/dim 5.3674 +- 0.0122 (uniform: 4.087); wrote runs/tiny

and ``report.json`` holds (its ``config`` entry, the configuration, cut short here)::

    {
      "bpd": 5.367387189771821,
      "bpd_stderr": 0.012239020036241933,
      "n_eval": 8,
      "nfe": 16.0,
      "eval_s": 0.17152409899790655,
      "config": {"dataset": "digits", "network": "tiny", "steps": 4, ...},
      "world_size": 1,
      "device": "cpu",
      "train_s": 1.2293460000000778,
      "images_per_s": 26.03010055753057
    }

"uniform" is the bits/dim of a uniform density over the pixel levels (8 for 256
levels, 4.087 for the 17 of ``digits``): a trained model is well below it, which the 4
steps of ``--tiny`` do not reach. The paper's targets
(Albergo & Vanden-Eijnden, arXiv:2209.15571) are 2.99 bits/dim on CIFAR-10 and 3.48 on
ImageNet-32; these configurations have not yet been run to the end on GPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import sitransport as st
from sitransport.images import ImageData

CONFIGS = Path(__file__).resolve().parent / "configs"


class FolderDataset(torch.utils.data.Dataset):
    """Image files read lazily (Pillow), centre-cropped and resized to ``size``: uint8
    ``(3, size, size)`` items, dequantised by the training loop on the global batch."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            im = im.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
            return torch.from_numpy(
                np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
            )


def load_config(name: str) -> dict:
    path = Path(name) if name.endswith(".json") else CONFIGS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no config {str(path)!r}; built in: {sorted(CONFIGS.glob('*'))}"
        )
    return json.loads(path.read_text())


def shrink(cfg: dict) -> dict:
    """--tiny: a CPU-sized version of any config (same code path)."""
    return dict(
        cfg,
        network="tiny",
        image_size=min(cfg.get("image_size", 8), 16),
        steps=4,
        batch_size=8,
        accumulate=2,
        warmup=1,
        checkpoint_every=2,
        eval_every=2,
        n_eval=8,
        probes=1,
        n_samples=4,
        num_workers=0,
        bf16=False,
        ode={"method": "rk4", "steps": 4},
    )


def load_data(cfg: dict, root: str | None, tiny: bool):
    """(training data for fit, held-out ImageData for bits/dim)."""
    kind = cfg["dataset"]
    if kind == "digits":
        digits = st.images.load_digits()
        n_test = cfg["n_eval"]
        return (
            ImageData(digits.pixels[:-n_test], None, digits.levels),
            ImageData(digits.pixels[-n_test:], None, digits.levels),
        )
    if root is None:
        raise SystemExit(f"--data-root is required for the {kind!r} data set")
    if kind == "cifar10":
        train, test = (
            st.images.load_cifar10(root, "train"),
            st.images.load_cifar10(root, "test"),
        )
    elif kind == "imagenet32":
        batches = 1 if tiny else 10
        train = st.images.load_imagenet32(root, "train", batches=batches)
        test = st.images.load_imagenet32(root, "val")
    elif kind == "folder":
        suffixes = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
        files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in suffixes)
        n_test = min(cfg["n_eval"], len(files) // 2)
        if n_test < 1:
            raise SystemExit(
                f"need at least 2 images under {root!r}, found {len(files)}"
            )
        size = cfg["image_size"]
        held = FolderDataset(files[-n_test:], size)
        test = ImageData(
            torch.stack([held[i] for i in range(len(held))]).numpy(), None, 256
        )
        return FolderDataset(files[:-n_test], size), test
    else:
        raise SystemExit(f"unknown dataset {kind!r} in the config")
    return train, test


def evaluate(
    flow, test: ImageData, cfg: dict, out: Path, fid_weights: str | None
) -> dict:
    """Held-out bits/dim, a samples grid and (optionally) FID; rank 0 only."""
    n = min(cfg["n_eval"], len(test))
    sub = ImageData(test.pixels[:n], None, test.levels)
    ode = st.ODEOptions(**cfg["ode"]) if "ode" in cfg else None  # default: dopri5, 1e-5
    t0 = time.perf_counter()
    est = st.images.bpd(
        flow, sub, probes=cfg["probes"], seed=0, batch_size=256, ode=ode
    )
    report = {
        "bpd": est.bpd,
        "bpd_stderr": est.stderr,
        "n_eval": est.n,
        "nfe": est.nfe,
        "eval_s": time.perf_counter() - t0,
    }
    samples = np.clip(flow.sample(cfg["n_samples"], seed=0, ode=ode), 0.0, 1.0)
    st.images.save_grid(samples, out / "samples.png")
    if fid_weights is not None:
        report["fid"] = fid(flow, test, fid_weights, n=min(len(test), 10_000))
    return report


def fid(flow, test: ImageData, weights: str, n: int) -> float:
    """FID of ``n`` samples against ``n`` test images with torchmetrics (optional)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        raise SystemExit(
            "--fid-weights needs: pip install torchmetrics torch-fidelity"
        ) from None
    metric = FrechetInceptionDistance(
        feature_extractor_weights_path=weights, normalize=True
    )
    for i in range(0, n, 500):
        real = st.images.dequantize(
            test.pixels[i : i + 500], levels=test.levels, seed=i
        )
        metric.update(
            torch.as_tensor(real, dtype=torch.float32).expand(-1, 3, -1, -1), real=True
        )
        fake = np.clip(flow.sample(len(real), seed=10_000 + i), 0.0, 1.0)
        metric.update(
            torch.as_tensor(fake, dtype=torch.float32).expand(-1, 3, -1, -1), real=False
        )
    return float(metric.compute())


# configuration entries that are st.TrainSettings fields, passed as they are
TRAINING_KEYS = (
    "steps",
    "batch_size",
    "accumulate",
    "lr",
    "warmup",
    "ema",
    "clip_grad",
    "eval_every",
)


def unet_spec(network: str | dict) -> st.UNetSpec:
    """The config's ``network``: a U-Net preset name, or
    ``{"preset": name, **arguments}`` with U-Net arguments overriding the preset's."""
    if isinstance(network, str):
        return st.UNetSpec(network)
    options = dict(network)
    return st.UNetSpec(options.pop("preset", None), options)


def fit_arguments(cfg: dict, out: Path, device: torch.device, progress: bool) -> dict:
    """``st.fit`` keywords from a config's flat entries: the network as a
    :class:`~sitransport.UNetSpec`, the optimisation as
    :class:`~sitransport.TrainSettings` (bf16 autocast on GPUs when ``cfg["bf16"]``),
    checkpoints every ``checkpoint_every`` steps in ``out``, resumed from there when
    present."""
    precision = "bf16" if cfg["bf16"] and device.type == "cuda" else None
    training = st.TrainSettings(
        **{key: cfg[key] for key in TRAINING_KEYS},
        mixed_precision=precision,
        progress=progress,
    )
    return dict(
        interpolant=cfg["interpolant"],
        network=unet_spec(cfg["network"]),
        training=training,
        checkpoint=st.Checkpointing(out, every=cfg["checkpoint_every"], resume=True),
        validation=cfg["validation"],
        num_workers=cfg.get("num_workers", 0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default="digits", help="name in configs/ or a .json path"
    )
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/images")
    parser.add_argument(
        "--tiny", action="store_true", help="CPU-sized end-to-end check"
    )
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--fid-weights", default=None, help="Inception weights for FID")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = st.distributed.setup()  # torchrun: NCCL on GPUs, gloo on CPUs
    rank, world = st.distributed.rank_and_world()
    if device.type == "cpu":
        torch.set_num_threads(1)
    cfg = load_config(args.config)
    if args.tiny:
        cfg = shrink(cfg)
    out = Path(args.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    train, test = load_data(cfg, args.data_root, args.tiny)
    if args.tiny and isinstance(train, ImageData):
        train = ImageData(train.pixels[:64], None, train.levels)
    try:
        if args.eval_only:
            flow = st.load(out / "flow.sit", map_location=device)
        else:
            t0 = time.perf_counter()
            keywords = fit_arguments(cfg, out, device, progress=rank == 0)
            flow = st.fit("gaussian", train, device=device, seed=args.seed, **keywords)
            train_s = time.perf_counter() - t0
            if rank == 0:
                flow.save(out / "flow.sit")
        if rank == 0:
            report = evaluate(flow, test, cfg, out, args.fid_weights)
            report.update(config=cfg, world_size=world, device=str(device))
            if not args.eval_only:
                steps = cfg["steps"]
                report["train_s"] = train_s
                report["images_per_s"] = steps * cfg["batch_size"] / max(train_s, 1e-9)
            (out / "report.json").write_text(
                json.dumps(report, indent=2, default=str) + "\n"
            )
            bpd = f"{report['bpd']:.4f} +- {report['bpd_stderr']:.4f}"
            uniform = math.log2(test.levels)
            print(f"held-out bits/dim {bpd} (uniform: {uniform:.3f}); wrote {out}")
    finally:
        st.distributed.cleanup()


if __name__ == "__main__":
    main()
