"""A GPU check in one command: the image configs' U-Nets on synthetic CIFAR-shaped data.

Made for the first minutes on a new GPU machine, with no internet and no data files: the
data are smooth random 3x32x32 images drawn in memory from a fixed seed (nothing is read or
downloaded). For each config (``examples/images/configs/{cifar10,imagenet32}.json``: its
U-Net preset, batch size, learning rate, EMA and clipping; warm-up shortened to a tenth of
the run) this script

1. trains 200 steps with ``sitransport.fit`` under bf16 autocast (on CUDA) and reports
   images/s, the peak GPU memory (``torch.cuda.max_memory_allocated``; none on a CPU) and
   the loss curve, checked to decrease (mean of the last fifth below the first fifth's);
2. times training steps (``sitransport.train``, no EMA) of the eager and the compiled U-Net
   (on CUDA ``TrainSettings(compile=True)``, the library's compiled loss; on a CPU the
   network alone under ``aot_eager``); a compile failure (or the library's fallback to
   eager training) is recorded, not raised;
3. re-launches itself under ``python -m torch.distributed.run --nproc_per_node=N`` (NCCL on
   GPUs, gloo on CPUs; N = all GPUs, or one) for 50 steps, checks that every rank ends with
   the same weights (SHA-256 of the parameters gathered from all ranks, and the largest
   elementwise spread) and reports the scaling efficiency against one process;
4. samples 64 images with the ODE (dopri5 at atol = rtol = 1e-5, and fixed-step rk4) with
   their NFE and samples/s, and the bits/dim of 256 held-out synthetic images with its
   standard error (Hutchinson, one probe, dopri5 at 1e-5);
5. solves one entropic global plan (``GlobalEntropicOT``, 65,536 points per end) on the
   device and checks that its dual potentials and the drawn pairs stay there, then times a
   small 2-D fit with ``coupling="global_entropic"`` against independent pairing
   (``_gpu_entropic``);
6. writes ``benchmarks/results/bench_gpu.{json,md}`` (device, torch/CUDA versions, every
   number) and a samples grid per config.

``--tiny`` runs the same code on a CPU (the cifar10 config only, tiny U-Net preset at 3x8x8,
40 steps of batch 16, two gloo ranks, 16 images, a 384-point entropic plan; about half a
minute on two idle cores); it writes ``bench_gpu_tiny.*``. The test suite runs it so the
script cannot rot. ``--device cuda`` without CUDA fails at once, naming the option.

Run: ``python benchmarks/bench_gpu.py`` on a GPU machine (meant to take under 8 minutes on
one GPU, not yet timed on one; shorter with ``--configs cifar10`` or ``--no-compile``),
``python benchmarks/bench_gpu.py --tiny`` anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import FIT_MODULES, RESULTS, markdown_table, write_results
from _gpu_entropic import FULL, TINY, PlanCheck, entropic_markdown, entropic_report

import sitransport as st
from sitransport.images import ImageData
from sitransport.nn import UNetVelocity, unet_config

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "images" / "configs"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and switches of a run (full on a GPU, or ``--tiny``)."""

    device: str
    tiny: bool
    configs: tuple[str, ...]
    steps: int
    ddp_steps: int
    compile_steps: tuple[int, int]  # (warm-up steps, timed steps)
    compile_backend: str | None  # None: no torch.compile
    nproc: int
    image_size: int
    n_train: int
    n_held: int
    n_samples: int
    rk4_steps: int
    seed: int
    out: str
    entropic: PlanCheck

    @property
    def name(self) -> str:
        return "bench_gpu_tiny" if self.tiny else "bench_gpu"


# ------------------------------------------------------------------------------ set-up
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", "--quick", action="store_true", help="CPU-sized, same code")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument(
        "--configs", default=None, help="comma-separated (cifar10,imagenet32; --tiny: cifar10)"
    )
    parser.add_argument("--nproc", type=int, default=None, help="DDP ranks (default: all GPUs)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)  # internal
    return parser.parse_args(argv)


def resolve_device(requested: str, tiny: bool) -> str:
    """``"cuda"`` or ``"cpu"``; a clear ``SystemExit`` naming ``--device`` when CUDA is asked
    for and absent, or full sizes are asked for without it."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise SystemExit(
            f"--device cuda was requested, but CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); run on a GPU machine, or pass --device cpu "
            "--tiny for the CPU check"
        )
    device = requested if requested != "auto" else ("cuda" if cuda else "cpu")
    if device == "cpu" and not tiny:
        raise SystemExit(
            "--device is cpu (no CUDA here), but the full sizes need a GPU (the cifar10 U-Net "
            "takes hours per 200 steps on a CPU); pass --tiny for the CPU check"
        )
    return device


def make_plan(args: argparse.Namespace) -> Plan:
    device = resolve_device(args.device, args.tiny)
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    nproc = args.nproc or (max(gpus, 1) if device == "cuda" else 2)
    if device == "cuda" and nproc > gpus:
        raise SystemExit(f"--nproc {nproc} exceeds the {gpus} visible GPU(s)")
    names = args.configs or ("cifar10" if args.tiny else "cifar10,imagenet32")
    configs = tuple(c for c in names.split(",") if c)
    # tiny: the inductor's C++ compile takes minutes on a CPU; aot_eager still traces
    # the network with dynamo and AOTAutograd
    backend = None if args.no_compile else ("aot_eager" if device == "cpu" else "inductor")
    sizes: dict[str, Any] = (
        dict(steps=40, ddp_steps=8, compile_steps=(1, 3), image_size=8, n_train=512,
             n_held=16, n_samples=16, rk4_steps=4)
        if args.tiny
        else dict(steps=200, ddp_steps=50, compile_steps=(10, 20), image_size=32, n_train=10_000,
                  n_held=256, n_samples=64, rk4_steps=25)
    )  # fmt: skip
    return Plan(
        device=device,
        tiny=args.tiny,
        configs=configs,
        compile_backend=backend,
        nproc=nproc,
        seed=args.seed,
        out=args.out,
        entropic=TINY if args.tiny else FULL,
        **sizes,
    )


def load_config(name: str, plan: Plan) -> dict[str, Any]:
    """A config of ``examples/images/configs``, its warm-up cut to a tenth of the run;
    ``--tiny``: the tiny preset, batch 16 and the library's default learning rate."""
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(
            f"--configs: no {path}; available: {sorted(p.stem for p in CONFIGS.glob('*.json'))}"
        )
    cfg = json.loads(path.read_text())
    cfg["warmup"] = max(1, plan.steps // 10)
    if plan.tiny:
        cfg.update(network="tiny", batch_size=16, lr=2e-3)
    return cfg


def synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` smooth random RGB images ``(n, 3, size, size)``, uint8: a shared luminance
    field and weaker colour fields at two coarse scales, upsampled, plus a tint per image."""
    g = torch.Generator().manual_seed(seed)

    def field(channels: int, cells: int, scale: float) -> torch.Tensor:
        coarse = torch.randn(n, channels, cells, cells, generator=g) * scale
        return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)

    luminance = field(1, 4, 1.0) + field(1, 8, 0.4)
    colour = field(3, 4, 0.4) + torch.randn(n, 3, 1, 1, generator=g) * 0.5
    x = torch.sigmoid(1.5 * (luminance + colour))
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()


# ---------------------------------------------------------------------------- measuring
def clock(device: str) -> float:
    """``time.perf_counter()`` after the device's queued work is done."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def reset_memory(device: str) -> None:
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> float | None:
    """``torch.cuda.max_memory_allocated`` since :func:`reset_memory`, GiB (``None`` on CPU)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def step_times(history: Any) -> np.ndarray:
    """Seconds of each step, from the record's cumulative wall time (the trainer reads the
    loss back every step, so steps do not overlap on the GPU)."""
    return np.diff(np.concatenate([[0.0], np.asarray(history["wall_time"])]))


def steady(seconds: np.ndarray) -> float:
    """Median step time after the first tenth of the steps (cuDNN autotuning, compiling)."""
    return float(np.median(seconds[max(1, len(seconds) // 10) :]))


def loss_summary(history: Any) -> dict[str, Any]:
    """The loss curve and whether it decreased: mean of the last fifth below the first's."""
    loss = np.asarray(history["loss"], dtype=float)
    k = max(1, len(loss) // 5)
    first, last = float(loss[:k].mean()), float(loss[-k:].mean())
    return {
        "loss_curve": [round(float(v), 6) for v in loss],
        "fm_loss_curve": [round(float(v), 6) for v in np.asarray(history["fm_loss"])],
        "loss_first_fifth": first,
        "loss_last_fifth": last,
        "loss_decreased": bool(last < first),
    }


# ----------------------------------------------------------------------------- training
def fit_flow(cfg: dict[str, Any], plan: Plan, data: ImageData, steps: int, device: Any):
    """``sitransport.fit`` from ``N(0, I)`` to the images with the config's settings."""
    batch = cfg["batch_size"]
    _, world = st.distributed.rank_and_world()
    batch -= batch % world  # the global batch splits into equal slices
    training = st.TrainSettings(
        warmup=cfg["warmup"],
        ema=cfg["ema"],
        clip_grad=cfg["clip_grad"],
        accumulate=cfg["accumulate"],
        eval_every=steps,
        mixed_precision="bf16" if cfg["bf16"] and plan.device == "cuda" else None,
    )
    return st.fit(
        "gaussian",
        data,
        interpolant=cfg["interpolant"],
        steps=steps,
        batch_size=batch,
        lr=cfg["lr"],
        seed=plan.seed,
        device=device,
        validation=0.0,
        progress=False,
        network=st.UNetSpec(cfg["network"]),
        training=training,
    )


def train_report(cfg: dict[str, Any], plan: Plan, data: ImageData) -> tuple[Any, dict]:
    """Step 1: ``plan.steps`` steps of ``fit``; the flow and its numbers."""
    reset_memory(plan.device)
    t0 = clock(plan.device)
    flow = fit_flow(cfg, plan, data, plan.steps, plan.device)
    seconds = clock(plan.device) - t0
    per_step = step_times(flow.history)
    batch = cfg["batch_size"]
    report = {
        "preset": cfg["network"],
        "params": sum(p.numel() for p in flow.network.parameters()),
        "batch_size": batch,
        "steps": plan.steps,
        "autocast": flow.config.training.mixed_precision,
        "fit_s": seconds,
        "images_per_s": plan.steps * batch / seconds,
        "step_ms": 1e3 * steady(per_step),
        "images_per_s_steady": batch / steady(per_step),
        "peak_memory_gib": peak_memory_gib(plan.device),
        **loss_summary(flow.history),
    }
    return flow, report


class DeviceDraw:
    """Training pairs drawn on the device: images dequantised once and uploaded (pinned,
    ``non_blocking``), indices and Gaussian noise from a device generator."""

    def __init__(self, pixels: np.ndarray, device: str, seed: int) -> None:
        host = torch.from_numpy(pixels)
        if device == "cuda":
            host = host.pin_memory()
        images = host.to(device, non_blocking=True).float()
        self.x1 = (images + torch.rand(images.shape, device=device)) / 128.0 - 1.0
        self.g = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.x1), (n,), device=self.x1.device, generator=self.g)
        x1 = self.x1[idx]
        return torch.randn(x1.shape, device=x1.device, generator=self.g), x1


def time_steps(cfg: dict[str, Any], plan: Plan, draw: DeviceDraw, backend: str | None) -> dict:
    """Seconds per training step of ``sitransport.train`` (no EMA), eager or compiled."""
    warm, timed = plan.compile_steps
    net: torch.nn.Module = UNetVelocity(**unet_config(cfg["network"], 3, plan.image_size))
    if backend is not None:
        torch._dynamo.reset()
    # inductor (CUDA): the library's TrainSettings(compile=True), which compiles the whole loss;
    # another backend (aot_eager on a CPU): the network alone, compiled here
    library = backend == "inductor"
    if backend is not None and not library:
        net = torch.compile(net, backend=backend)
    settings = st.TrainSettings(
        compile=library,
        steps=warm + timed,
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        warmup=1,
        ema=None,
        progress=False,
        mixed_precision="bf16" if cfg["bf16"] and plan.device == "cuda" else None,
    )
    interpolant = st.interpolants.get_interpolant(cfg["interpolant"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = st.train.train(net, interpolant, draw, settings=settings, device=plan.device)
    fallback = [str(w.message) for w in caught if "compile=True" in str(w.message)]
    if fallback:  # trained eagerly: a compile failure, recorded by compile_report
        raise RuntimeError(fallback[0])
    seconds = step_times(result.history)
    return {"first_step_s": float(seconds[0]), "step_ms": 1e3 * float(np.median(seconds[warm:]))}


def compile_report(cfg: dict[str, Any], plan: Plan, pixels: np.ndarray) -> dict[str, Any]:
    """Step 2: time per step without and with ``torch.compile`` (failures recorded)."""
    draw = DeviceDraw(pixels, plan.device, plan.seed)
    eager = time_steps(cfg, plan, draw, None)
    report: dict[str, Any] = {"backend": plan.compile_backend, "eager_step_ms": eager["step_ms"]}
    if plan.compile_backend is None:
        return {**report, "compiled_step_ms": None, "compile_error": "skipped (--no-compile)"}
    try:
        compiled = time_steps(cfg, plan, draw, plan.compile_backend)
    except Exception as err:  # any compiler failure: record it and go on uncompiled
        torch._dynamo.reset()
        message = f"{type(err).__name__}: {err}".strip()[:800]
        return {**report, "compiled_step_ms": None, "compile_error": message}
    finally:
        del draw
    return {
        **report,
        "compiled_step_ms": compiled["step_ms"],
        "compile_s": compiled["first_step_s"] - eager["first_step_s"],
        "speedup": eager["step_ms"] / compiled["step_ms"],
        "compile_error": None,
    }


# ---------------------------------------------------------------------- sampling, bpd
def sample_report(flow: Any, plan: Plan, grid: Path) -> dict[str, Any]:
    """Step 4a: ``plan.n_samples`` ODE samples with dopri5 (1e-5) and fixed-step rk4."""
    n = plan.n_samples
    x0 = torch.randn(n, *flow.shape, generator=torch.Generator().manual_seed(plan.seed))
    solvers = {
        "dopri5": st.ODEOptions(method="dopri5", atol=1e-5, rtol=1e-5),
        f"rk4x{plan.rk4_steps}": st.ODEOptions(method="rk4", steps=plan.rk4_steps),
    }
    report: dict[str, Any] = {"n_samples": n}
    for name, ode in solvers.items():
        t0 = clock(plan.device)
        result = flow.transport(x0.numpy(), ode=ode)
        seconds = clock(plan.device) - t0
        report[name] = {"nfe": float(result.nfe), "seconds": seconds, "samples_per_s": n / seconds}
        if name == "dopri5":
            st.images.save_grid(np.clip(result.x, 0.0, 1.0), grid, scale=2)
    report["grid"] = grid.name
    return report


def bpd_report(flow: Any, held: ImageData, plan: Plan) -> dict[str, Any]:
    """Step 4b: held-out bits/dim (Hutchinson, one probe, dopri5 at 1e-5) with its error."""
    ode = st.ODEOptions(method="dopri5", atol=1e-5, rtol=1e-5)
    reset_memory(plan.device)
    t0 = clock(plan.device)
    est = st.images.bpd(flow, held, probes=1, seed=plan.seed, progress=False, ode=ode)
    seconds = clock(plan.device) - t0
    return {
        "bpd": est.bpd,
        "bpd_stderr": est.stderr,
        "n": est.n,
        "nfe": est.nfe,
        "seconds": seconds,
        "peak_memory_gib": peak_memory_gib(plan.device),
    }


def run_config(name: str, plan: Plan, data: ImageData, held: ImageData) -> dict[str, Any]:
    """Steps 1, 2 and 4 of one config in this process; an out-of-memory error is recorded
    beside the numbers measured before it."""
    cfg = load_config(name, plan)
    print(f"[bench_gpu] {name}: training {plan.steps} steps", file=sys.stderr, flush=True)
    report: dict[str, Any] = {"preset": cfg["network"]}
    try:
        flow, trained = train_report(cfg, plan, data)
        report.update(trained)
        grid = Path(plan.out) / f"bench_gpu_samples_{name}{'_tiny' if plan.tiny else ''}.png"
        report["sampling"] = sample_report(flow, plan, grid)
        report["bits_per_dim"] = bpd_report(flow, held, plan)
        del flow
        reset_memory(plan.device)
        print(f"[bench_gpu] {name}: torch.compile timing", file=sys.stderr, flush=True)
        report["compile"] = compile_report(cfg, plan, data.pixels)
    except torch.cuda.OutOfMemoryError as err:
        report["error"] = f"out of memory: {err}"[:800]
    reset_memory(plan.device)
    return report


# --------------------------------------------------------------------------------- DDP
def weights_agree(model: torch.nn.Module) -> dict[str, Any]:
    """Whether every rank holds the same parameters: their SHA-256 gathered from all ranks,
    and the largest elementwise spread (all-reduced max minus min)."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    digest = hashlib.sha256(flat.cpu().numpy().tobytes()).digest()
    mine = torch.tensor(list(digest), dtype=torch.uint8, device=flat.device)[None]
    digests = st.distributed.all_gather_batch(mine)
    high, low = flat.clone(), flat.clone()
    if st.distributed.rank_and_world()[1] > 1:
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return {
        "ranks_equal": bool((digests == digests[0]).all()),
        "max_abs_diff": float((high - low).max()),
        "sha256_rank0": digests[0].cpu().numpy().tobytes().hex(),
    }


def ddp_worker(plan: Plan, out_file: str) -> None:
    """Step 3 on one rank (under torchrun): ``plan.ddp_steps`` steps of each config."""
    device = st.distributed.setup(backend="nccl" if plan.device == "cuda" else "gloo")
    rank, world = st.distributed.rank_and_world()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        data = ImageData(synthetic_images(plan.n_train, plan.image_size, plan.seed), None, 256)
        reports = {}
        for name in plan.configs:
            cfg = load_config(name, plan)
            reset_memory(plan.device)
            flow = fit_flow(cfg, plan, data, plan.ddp_steps, device)
            per_step = step_times(flow.history)
            batch = cfg["batch_size"] - cfg["batch_size"] % world
            reports[name] = {
                "world_size": world,
                "backend": torch.distributed.get_backend(),
                "steps": plan.ddp_steps,
                "batch_size": batch,
                "step_ms": 1e3 * steady(per_step),
                "images_per_s_steady": batch / steady(per_step),
                "peak_memory_gib_rank0": peak_memory_gib(plan.device),
                **weights_agree(flow.network),
                **loss_summary(flow.history),
            }
            del flow
        if rank == 0:
            Path(out_file).write_text(json.dumps(reports))
    finally:
        st.distributed.cleanup()  # dist.destroy_process_group()


def ddp_report(plan: Plan, argv: list[str]) -> dict[str, Any]:
    """Step 3: this script re-launched under torchrun; its rank 0's numbers, or the error."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "ddp.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={plan.nproc}", str(Path(__file__).resolve()),
            *argv, "--ddp-worker", str(out_file),
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1")
        print(f"[bench_gpu] DDP: {plan.nproc} process(es)", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=300 if plan.tiny else 1800
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not out_file.is_file():
            tail = (proc.stderr or proc.stdout)[-3000:]
            return {"error": f"torchrun exited with {proc.returncode}: {tail}", "seconds": seconds}
        return {"configs": json.loads(out_file.read_text()), "seconds": seconds}


def scaling(single: dict[str, Any], ddp: dict[str, Any]) -> None:
    """Scaling efficiency: throughput on N ranks / (N x throughput of one process)."""
    for name, part in ddp.get("configs", {}).items():
        one = single.get(name, {}).get("images_per_s_steady")
        if one:
            part["scaling_efficiency"] = part["images_per_s_steady"] / (part["world_size"] * one)


# ------------------------------------------------------------------------------ output
def device_facts(device: str) -> dict[str, Any]:
    """Device name, memory and the CUDA, cuDNN and NCCL versions (CPU: what is known)."""
    facts: dict[str, Any] = {"device": device, "torch": torch.__version__,
                             "cuda_runtime": torch.version.cuda}  # fmt: skip
    if device != "cuda":
        return {**facts, "device_name": "cpu", "peak_memory": "not measured on a CPU"}
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        **facts,
        "device_name": props.name,
        "device_count": torch.cuda.device_count(),
        "device_memory_gib": props.total_memory / 2**30,
        "compute_capability": f"{props.major}.{props.minor}",
        "bf16_native": props.major >= 8,  # Ampere and later
        "cudnn": torch.backends.cudnn.version(),
        "nccl": _nccl_version(),
    }


def _nccl_version() -> str:
    try:
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):  # a build without NCCL
        return "unavailable"
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


TRAIN_COLUMNS = ["config", "preset", "params", "batch_size", "steps", "autocast", "images_per_s",
                 "images_per_s_steady", "step_ms", "peak_memory_gib", "loss_first_fifth",
                 "loss_last_fifth", "loss_decreased"]  # fmt: skip
COMPILE_COLUMNS = ["config", "backend", "eager_step_ms", "compiled_step_ms", "speedup",
                   "compile_s", "compile_error"]  # fmt: skip
DDP_COLUMNS = ["config", "world_size", "backend", "batch_size", "step_ms", "images_per_s_steady",
               "scaling_efficiency", "ranks_equal", "max_abs_diff", "loss_decreased"]  # fmt: skip
EVAL_COLUMNS = ["config", "n_samples", "dopri5_nfe", "dopri5_samples_per_s", "rk4", "rk4_nfe",
                "rk4_samples_per_s", "bpd", "bpd_stderr", "bpd_n", "bpd_nfe",
                "bpd_peak_memory_gib"]  # fmt: skip


def eval_row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    sampling, bits = report["sampling"], report["bits_per_dim"]
    rk4 = next(k for k in sampling if k.startswith("rk4"))
    return {
        "config": name,
        "n_samples": sampling["n_samples"],
        "dopri5_nfe": sampling["dopri5"]["nfe"],
        "dopri5_samples_per_s": sampling["dopri5"]["samples_per_s"],
        "rk4": rk4,
        "rk4_nfe": sampling[rk4]["nfe"],
        "rk4_samples_per_s": sampling[rk4]["samples_per_s"],
        "bpd": bits["bpd"],
        "bpd_stderr": bits["bpd_stderr"],
        "bpd_n": bits["n"],
        "bpd_nfe": bits["nfe"],
        "bpd_peak_memory_gib": bits["peak_memory_gib"],
    }


def tables(single: dict[str, Any], ddp: dict[str, Any]) -> tuple[list[dict], str]:
    """The training rows and the Markdown of the other tables."""
    train_rows = [{"config": k, **v} for k, v in single.items() if "steps" in v]
    compile_rows = [{"config": k, **v["compile"]} for k, v in single.items() if "compile" in v]
    evaluated = {k: v for k, v in single.items() if "bits_per_dim" in v}
    ddp_rows = [{"config": k, **v} for k, v in ddp.get("configs", {}).items()]
    parts = [
        "Compile (time per step of sitransport.train without EMA, median after warm-up):",
        markdown_table(compile_rows, COMPILE_COLUMNS),
        "DDP (torchrun; efficiency = images/s on N ranks / (N x one process)):",
        markdown_table(ddp_rows, DDP_COLUMNS) if ddp_rows else f"DDP failed: {ddp.get('error')}",
        "Sampling (ODE from N(0, I)) and held-out bits/dim (Hutchinson, 1 probe, dopri5 1e-5):",
        markdown_table([eval_row(k, v) for k, v in evaluated.items()], EVAL_COLUMNS),
    ]
    errors = [f"{k}: {v['error']}" for k, v in single.items() if "error" in v]
    if errors:
        parts.append("Errors: " + "; ".join(errors))
    return train_rows, "\n\n".join(parts)


# what a run exercises (the freshness record of its results): fit and the trainer on the U-Net,
# the DDP path (setup, sharding, gathers), images (data, grids, bits/dim) and its metrics, and
# the entropic-plan section (its couplings are among FIT_MODULES)
MODULES = (*FIT_MODULES, "sitransport.images", "sitransport.metrics", "benchmarks._gpu_entropic")


def entropic_section(plan: Plan) -> dict[str, Any]:
    """Step 5: the entropic global plan on the device (an error is recorded, not raised)."""
    print(f"[bench_gpu] entropic plan: {plan.entropic.n} points", file=sys.stderr, flush=True)
    try:
        return entropic_report(plan.entropic, plan.device, plan.seed)
    except (RuntimeError, ImportError, ValueError) as err:  # e.g. out of memory, no geomloss
        return {"error": f"{type(err).__name__}: {err}".strip()[:800]}


def write(plan: Plan, single: dict, ddp: dict, entropic: dict, facts: dict, seconds: float) -> Path:
    rows, notes = tables(single, ddp)
    notes += "\n\n" + entropic_markdown(entropic, plan.entropic)
    grids = ", ".join(f"`{v['sampling']['grid']}`" for v in single.values() if "sampling" in v)
    memory = facts.get("device_memory_gib")
    head = (
        f"Device {facts['device_name']}"
        + (f" ({memory:.1f} GiB)" if memory else " (peak memory: not measured on a CPU)")
        + f", torch {facts['torch']}, CUDA {facts['cuda_runtime']}; synthetic smooth "
        f"3x{plan.image_size}x{plan.image_size} images (seed {plan.seed}), {plan.steps} steps; "
        f"total {seconds:.0f} s. Samples grids: {grids}."
    )
    params = {k: v for k, v in dataclasses.asdict(plan).items() if k != "out"}
    extra = {"device": facts, "configs": single, "ddp": ddp, "entropic": entropic}
    extra["total_s"] = seconds
    return write_results(
        plan.name, rows, TRAIN_COLUMNS, params, head + "\n\n" + notes,
        modules=MODULES, directory=Path(plan.out), extra=extra,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = make_plan(args)
    if plan.device == "cpu":
        torch.set_num_threads(1)
    if args.ddp_worker is not None:
        return ddp_worker(plan, args.ddp_worker)
    t0 = time.perf_counter()
    facts = device_facts(plan.device)
    size = plan.image_size
    data = ImageData(synthetic_images(plan.n_train, size, plan.seed), None, 256)
    held = ImageData(synthetic_images(plan.n_held, size, plan.seed + 1), None, 256)
    single = {name: run_config(name, plan, data, held) for name in plan.configs}
    ddp = ddp_report(plan, sys.argv[1:] if argv is None else argv)
    scaling(single, ddp)
    entropic = entropic_section(plan)
    path = write(plan, single, ddp, entropic, facts, time.perf_counter() - t0)
    print(path.read_text())


if __name__ == "__main__":
    main()
