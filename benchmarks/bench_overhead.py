"""Framework overhead: ``st.fit``'s training steps/s and ``flow.sample``'s time against a bare
PyTorch loop and a bare ``torchdiffeq.odeint`` call doing the same math (issue 27, item 6).

Two comparisons on a 2-D task (a standard normal to ``moons``, 5,000 target points):

- ``train``: ``st.fit("gaussian", x1, steps=N, progress=False)`` at every other default
  (the MLP ``fit`` builds for 2-D data, batch 512, the trig interpolant in the normalised
  coordinates, antithetic times ``u, 1 - u`` from the uniform sampler, AdamW at lr 2e-3 with
  200 warm-up steps and cosine decay to 1%, gradient clipping at norm 1, EMA 0.999 with its
  warm-up ramp, and fit's own validation every 500 steps and Sinkhorn diagnostic every 1,000)
  against a bare loop written as a user of stock PyTorch would: the same network (built as
  ``fit`` builds it), the same normalised data held as one float32 tensor, the same path
  written through the caller's coordinates as ``fit``'s normalised path computes it, the same
  antithetic times, ``torch.optim.AdamW`` (torch's default implementation, weight decay 0 as
  fit's), ``LambdaLR`` with the same warm-up and cosine, ``clip_grad_norm_`` and the stock
  ``AveragedModel`` with the same decay ramp; no validation, no diagnostics, no record.
  Steps/s are timed over the steps only: both runs stamp the process's CPU time and the
  wall time after every step (``fit`` where it records the step, beside its
  ``history.wall_time``, which starts when its step loop does: data checks, normalisation,
  network and optimiser construction are excluded), and the rate is taken from the first
  ``warmup`` steps' end to the last step's, so the first steps' allocations are excluded
  from both. What ``fit`` does per step beyond the bare loop (the record, the divergence
  guard, the per-step dropout seed, the periodic validation and Sinkhorn diagnostic,
  batches drawn one step ahead in float64 and cast) is counted: it is the overhead.
- ``sample``: ``flow.sample(n)`` of one fitted flow (saved once, loaded by each process)
  against ``odeint`` of its network in the normalised coordinates at the same method and
  tolerances (dopri5, rtol = atol = 1e-5), the base draw encoded before and the samples
  decoded after, as a user would write it; each process warms up once, then the median of
  ``calls`` timed calls.

Method: one torch thread; rates in CPU seconds of the process (``time.process_time``: on a
machine shared with other jobs the wall clock measures their load as much as ours; the ratio
of wall-clock rates is reported beside it); every measurement in its own process, the two
sides alternated (A B B A ...) so drift of a loaded machine falls on both; the ratio of each
adjacent pair (ours over bare for steps/s, bare over ours for sampling time: above 1 means
ours is faster), then the median ratio with its quartiles and the mean with its standard error over
the pairs. Target: both ratios >= 0.9 beyond 2 SE. A cProfile of ``fit``'s steps (one more
process) shows where the time goes.

Run: ``python benchmarks/bench_overhead.py`` (full: 10 pairs of 2,000 training steps, 10 pairs
of sampling 5,000 points; about 15 single-core minutes), or ``--quick`` (CI-sized: 3 pairs of
300 steps, 3 pairs of sampling 2,000 points from a flow of 300 steps; about 2 minutes).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import FIT_MODULES, spread, verdict_line, write_results

MODULES = (*FIT_MODULES, "sitransport.io", "sitransport.datasets")
COLUMNS = [
    "part",
    "ours",
    "bare",
    "unit",
    "ratio_median",
    "ratio_q25",
    "ratio_q75",
    "ratio_mean",
    "ratio_se",
    "wall_ratio_median",
    "pairs",
    "nfe_ours",
    "nfe_bare",
]
BOUND, COMPILED_BOUND = 0.9, 1.2
TARGET, N_DATA, SEED = "moons", 5000, 0


def data() -> np.ndarray:
    from sitransport.datasets import draw

    return draw(TARGET, N_DATA, SEED)


# ----------------------------------------------------------------------------------- workers


def rate(stamps: list[float], warmup: int) -> float:
    """Steps/s from per-step wall-time stamps, over the steps after the first ``warmup``."""
    return (len(stamps) - warmup) / (stamps[-1] - stamps[warmup - 1])


def train_ours(steps: int, warmup: int, training: Any = None) -> dict:
    import sitransport as st
    from sitransport.train.trainer import Trainer

    cpu: list[float] = []
    log = Trainer._log

    def stamped(self: Trainer, *args: float) -> None:  # the CPU time at each step's record
        log(self, *args)
        cpu.append(time.process_time())

    Trainer._log = stamped  # type: ignore[method-assign]
    flow = st.fit("gaussian", data(), steps=steps, seed=SEED, progress=False, training=training)
    wall = list(flow.history["wall_time"].values)
    first = float(wall[0])  # the first step: with compile=True, the compilation
    return {"value": rate(cpu, warmup), "wall": rate(wall, warmup), "first_step_s": first}


def train_compiled(steps: int, warmup: int) -> dict:
    """``train_ours`` with ``TrainSettings(compile=True)`` (its first steps compile: the
    ``warmup`` steps excluded from the rate hold the compilation, reported apart)."""
    import sitransport as st

    out = train_ours(steps, warmup, st.TrainSettings(compile=True))
    return out


def bare_loop(
    steps: int, stamps: list[float] | None = None, cpu: list[float] | None = None
) -> torch.nn.Module:
    """The bare PyTorch loop (see the module docstring); appends the wall time since its start
    and the process's CPU time after every step."""
    from torch.optim.swa_utils import AveragedModel

    from sitransport.config import MLPSpec
    from sitransport.nn.builder import network_spec, seeded_network

    x1 = torch.from_numpy(data()).float()
    shift, scale = x1.mean(0), float(x1.std())  # the normalised coordinates u = (x - m) / s
    u1 = (x1 - shift) / scale
    spec = network_spec("auto", (2,))
    assert isinstance(spec, MLPSpec)
    net = seeded_network(spec, (2,), False, SEED)
    decay, warm, floor, lr, bs = 0.999, 200, 0.01, 2e-3, 512

    def ramp(params_ema, params, n_averaged):  # EMA with fit's warm-up ramp
        d = min(decay, (1.0 + int(n_averaged)) / (10.0 + int(n_averaged)))
        torch._foreach_lerp_(params_ema, params, 1.0 - d)

    def schedule(k: int) -> float:  # linear warm-up, cosine decay to `floor`
        if k < warm:
            return (k + 1) / warm
        p = min((k - warm) / max(1, steps - warm), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))

    ema = AveragedModel(net, multi_avg_fn=torch.no_grad()(ramp), use_buffers=True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    g = torch.Generator().manual_seed(SEED)
    half = math.pi / 2
    start = time.perf_counter()
    for _ in range(steps):
        u0 = (torch.randn(bs, 2, generator=g) - shift) / scale
        b1 = u1[torch.randint(0, len(u1), (bs,), generator=g)]
        s = torch.rand(bs // 2, generator=g)
        t = torch.cat([s, 1 - s])[:, None]
        x0, x1b = u0 * scale + shift, b1 * scale + shift  # in the caller's coordinates
        xt = (torch.cos(half * t) * x0 + torch.sin(half * t) * x1b - shift) / scale
        target = (-half * torch.sin(half * t) * x0 + half * torch.cos(half * t) * x1b) / scale
        v = net(xt, t[:, 0])
        loss = (v.pow(2) - 2.0 * target * v).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(net)
        if stamps is not None and cpu is not None:
            stamps.append(time.perf_counter() - start)
            cpu.append(time.process_time())
    return ema.module.eval()


def train_bare(steps: int, warmup: int) -> dict:
    stamps: list[float] = []
    cpu: list[float] = []
    bare_loop(steps, stamps, cpu)
    return {"value": rate(cpu, warmup), "wall": rate(stamps, warmup)}


def timed(call, calls: int) -> dict:
    """Median CPU seconds (``value``) and wall seconds of ``call(k)``, ``k < calls``."""
    cpu, wall = [], []
    for k in range(calls):
        c0, w0 = time.process_time(), time.perf_counter()
        call(k)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"value": float(np.median(cpu)), "wall": float(np.median(wall))}


def sample_ours(flow_path: str, n: int, calls: int) -> dict:
    import sitransport as st

    flow = st.load(flow_path)
    flow.sample(64, seed=99)  # warm-up
    times = timed(lambda k: flow.sample(n, seed=k), calls)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0)).double().numpy()
    nfe = flow.transport(x0).nfe  # the solve of sample (a Gaussian base), with its NFE
    return {**times, "nfe": float(nfe)}


def sample_bare(flow_path: str, n: int, calls: int) -> dict:
    from torchdiffeq import odeint

    import sitransport as st

    flow = st.load(flow_path)
    net, norm = flow.network, flow.normalization
    shift, scale = norm.shift.float(), float(norm.scale)
    count = [0]

    def f(t, u):
        count[0] += 1
        return net(u, t)

    def draw(seed: int) -> np.ndarray:
        x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            u = odeint(f, (x0 - shift) / scale, torch.tensor([0.0, 1.0]), rtol=1e-5, atol=1e-5,
                       method="dopri5")[-1]  # fmt: skip
        return (u * scale + shift).double().numpy()

    draw(99)  # warm-up
    times = timed(draw, calls)
    count[0] = 0
    draw(0)
    return {**times, "nfe": float(count[0])}


def profile_fit(steps: int, top: int = 14) -> dict:
    """cProfile of ``fit``'s optimisation steps (``Trainer._step``, the last one left out: its
    end-of-run diagnostic is outside the timed steps too), after a short fit has done the
    imports: the functions with the most own time, with their share of the profiled total,
    and the share of the library's own Python (files under ``sitransport/``)."""
    import sitransport as st
    from sitransport.train.trainer import Trainer

    x1 = data()
    st.fit("gaussian", x1, steps=2, seed=SEED, progress=False)  # imports, first calls
    prof = cProfile.Profile()
    step = Trainer._step

    def profiled(self: Trainer, k: int) -> None:
        if k == self.settings.steps - 1:
            return step(self, k)
        prof.enable()
        try:
            return step(self, k)
        finally:
            prof.disable()

    Trainer._step = profiled  # type: ignore[method-assign]
    st.fit("gaussian", x1, steps=steps, seed=SEED, progress=False)
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows, ours = [], 0.0
    for (file, line, name), (_, calls, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else "built-in"
        ours += tt if f"{os.sep}sitransport{os.sep}" in file else 0.0
        rows.append((tt, ct, calls, f"{name} ({where})"))
    rows.sort(reverse=True)
    return {"total_s": total, "sitransport_share": ours / total, "steps": steps - 1, "rows": [
        {"function": r[3], "calls": r[2], "own_s": r[0], "own_share": r[0] / total,
         "cumulative_s": r[1]} for r in rows[:top]]}  # fmt: skip


WORKERS = {
    "train_ours": train_ours,
    "train_bare": train_bare,
    "train_compiled": train_compiled,
    "sample_ours": sample_ours,
    "sample_bare": sample_bare,
    "profile": profile_fit,
}


# ------------------------------------------------------------------------------------ driver


def run_worker(name: str, **kwargs) -> dict:
    """One measurement in a fresh process (one torch thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", name, "--kwargs", json.dumps(kwargs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(f"worker {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def alternated(ours: str, bare: str, pairs: int, **kwargs) -> list[tuple[dict, dict]]:
    """``pairs`` pairs of measurements, in the order A B B A A B ..."""
    out = []
    for k in range(pairs):
        order = (ours, bare) if k % 2 == 0 else (bare, ours)
        got = {name: run_worker(name, **kwargs) for name in order}
        out.append((got[ours], got[bare]))
        print(f"  {ours} vs {bare} pair {k + 1}/{pairs}: {got[ours]['value']:.4g} "
              f"{got[bare]['value']:.4g}", flush=True)  # fmt: skip
    return out


def summary(part: str, pairs: list[tuple[dict, dict]], unit: str, faster_is_higher: bool) -> dict:
    ours = np.array([a["value"] for a, _ in pairs])
    bare = np.array([b["value"] for _, b in pairs])
    ratios = ours / bare if faster_is_higher else bare / ours
    w_ours = np.array([a["wall"] for a, _ in pairs])
    w_bare = np.array([b["wall"] for _, b in pairs])
    wall_ratios = w_ours / w_bare if faster_is_higher else w_bare / w_ours
    s = spread(ratios)
    return {
        "part": part,
        "ours": float(np.median(ours)),
        "bare": float(np.median(bare)),
        "unit": unit,
        "ratio_median": float(np.median(ratios)),
        "ratio_q25": float(np.quantile(ratios, 0.25)),
        "ratio_q75": float(np.quantile(ratios, 0.75)),
        "ratio_mean": s.mean,
        "ratio_se": s.se,
        "pairs": len(pairs),
        "nfe_ours": pairs[0][0].get("nfe", ""),
        "nfe_bare": pairs[0][1].get("nfe", ""),
        "ratios": [float(r) for r in ratios],
        "wall_ratio_median": float(np.median(wall_ratios)),
        "wall_ratios": [float(r) for r in wall_ratios],
    }


def profile_table(prof: dict) -> str:
    lines = [
        f"Where fit's time goes: cProfile of {prof['steps']} steps of fit ({prof['total_s']:.3g} s "
        "profiled; the profiler inflates Python-level calls), own time of the top functions; "
        f"the library's own Python (files under sitransport/) holds "
        f"{100 * prof['sitransport_share']:.1f}% of it.",
        "",
        "| function | calls | own s | own share | cumulative s |",
        "|---|---|---|---|---|",
    ]
    for r in prof["rows"]:
        lines.append(f"| `{r['function']}` | {r['calls']} | {r['own_s']:.3g} | "
                     f"{100 * r['own_share']:.1f}% | {r['cumulative_s']:.3g} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time TrainSettings(compile=True) against the bare eager loop (default: in "
        "the full run only; compiling takes minutes of CPU)",
    )
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", type=json.loads, default={}, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](**args.kwargs)))
        return
    quick = args.quick
    p = {
        "steps": 300 if quick else 2000,
        "warmup": 50,
        "pairs": 3 if quick else 10,
        "flow_steps": 300 if quick else 2000,
        "n_sample": 2000 if quick else 5000,
        "calls": 3 if quick else 5,
        "task": f"gaussian->{TARGET}, {N_DATA} points",
        "torch_threads": 1,
    }
    rows = []
    print("training", flush=True)
    train = alternated("train_ours", "train_bare", p["pairs"], steps=p["steps"],
                       warmup=p["warmup"])  # fmt: skip
    rows.append(summary("train", train, "steps per CPU s", True))
    if args.compiled if args.compiled is not None else not quick:
        print("compiled training", flush=True)
        comp = alternated("train_compiled", "train_bare", p["pairs"], steps=p["steps"],
                          warmup=p["warmup"])  # fmt: skip
        rows.append(summary("train compiled", comp, "steps per CPU s", True))
        rows[-1]["first_step_s"] = float(np.median([a["first_step_s"] for a, _ in comp]))
    with tempfile.TemporaryDirectory() as tmp:
        import sitransport as st

        flow_path = str(Path(tmp) / "flow.st")
        st.fit("gaussian", data(), steps=p["flow_steps"], seed=SEED, progress=False).save(flow_path)
        print("sampling", flush=True)
        samples = alternated("sample_ours", "sample_bare", p["pairs"], flow_path=flow_path,
                             n=p["n_sample"], calls=p["calls"])  # fmt: skip
    rows.append(summary("sample", samples, "CPU s per call", False))
    prof = run_worker("profile", steps=p["steps"])
    by = {r["part"]: r for r in rows}
    train_r, sample_r = spread(by["train"]["ratios"]), spread(by["sample"]["ratios"])
    verdicts = [
        verdict_line("training speed", "fit steps/s over the bare loop's", train_r, ">=", BOUND),
        verdict_line(
            "sampling speed", "bare odeint time over flow.sample's", sample_r, ">=", BOUND
        ),
    ]
    if "train compiled" in by:
        comp = by["train compiled"]
        verdicts.append(
            verdict_line(
                "compiled training speed",
                "fit(compile=True) steps/s over the bare eager loop's",
                spread(comp["ratios"]),
                ">=",
                COMPILED_BOUND,
            )
        )
    ms = [1e3 * by["sample"][k] / by["sample"][f"nfe_{k}"] for k in ("ours", "bare")]
    per_eval = f"ours {ms[0]:.3g} CPU ms, bare {ms[1]:.3g} (ratio {ms[1] / ms[0]:.3g})"
    notes = "\n".join([
        f"Targets: both ratios >= {BOUND} (above 1: ours faster; compiled training >= "
        f"{COMPILED_BOUND}), judged on the mean over alternated process pairs:",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        "`ours`/`bare`: the medians over the pairs (steps per CPU second of training; CPU "
        f"seconds per `sample({p['n_sample']})` call). `nfe_*`: velocity evaluations of one "
        "solve (ours lands its adaptive steps on t = 1 instead of stepping past it and "
        f"interpolating back, so the counts can differ); per evaluation: {per_eval}."
        + (
            f" Compiled training: its first step, which compiles, took "
            f"{by['train compiled']['first_step_s']:.3g} s of wall time."
            if "train compiled" in by
            else ""
        ),
        "",
        profile_table(prof),
    ])  # fmt: skip
    name = "bench_overhead_quick" if quick else "bench_overhead"
    path = write_results(name, rows, COLUMNS, p, notes, modules=MODULES,
                         extra={"profile": prof})  # fmt: skip
    print(path.read_text())


if __name__ == "__main__":
    main()
