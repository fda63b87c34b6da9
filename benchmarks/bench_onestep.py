"""One-step sampling: ``sample(n, nfe=1)`` of OT-coupled flows, and ``st.distill`` of the
default flows, against each flow's own dopri5 samples.

Two parts, side by side in one run (issue 26, item 5):

- ``ot``: flows fitted with ``coupling="global_ot", interpolant="linear"`` (a potential
  network, velocity = gradient of a scalar, from d >= 8). The OT plan makes the paths
  straight, so one Euler step (``nfe=1``) should sample as well as dopri5. Target: the W2 of
  the ``nfe=1`` samples within 1.05x of the dopri5 samples' W2 (paired ratio per evaluation
  draw, beyond 2 SE). Tasks: the four Gaussian-source 2-D tasks of ``bench_2d.py`` and the
  mixture pair at d = 16 of ``bench_ot_map.py`` (``sitransport.datasets.known_ot_pair``;
  4,000 steps of batch 256 there).
- ``default``: flows fitted with ``st.fit``'s defaults (independent coupling, trig
  interpolant; their ``nfe=1`` is poor), then ``st.distill(flow)`` (pairs ``(x0, T(x0))``
  from the flow's dopri5 map, a linear-interpolant student trained with 80% of its times at
  ``t = 0``, a quarter of the flow's steps; the student's ``nfe=1`` is its one-step map).
  Targets: the student's ``nfe=1`` W2 within 1.2x of the teacher's dopri5 W2 (paired, beyond
  2 SE), and the student's cost (generating the pairs + training) under 50% of the teacher's
  training time (wall clock, measured in the same process). Tasks: the four 2-D tasks and
  digits (8x8 sklearn digits as 64-D vectors with the default MLP, 8,000 steps of batch 64
  as the MLP row of ``bench_images.py``; W2 of 297 samples against the 297 held-out
  dequantised images).

W2: exact (POT) between ``n_eval`` generated points and ``n_eval`` fresh target draws; each
evaluation draw uses the same source points and the same target draw for every sampler, so
the ratios between samplers are paired per draw (mean and standard error over the draws).
``*_ratio`` columns: W2 over the target's noise floor (W2 between two independent target draws
of the same size, measured once per target over 20 pairs); ``onestep_vs_dopri5``: the paired
ratio of the one-step W2 (``nfe=1`` of the flow in ``ot``, of the student in ``default``) to the
teacher's dopri5 W2.

Run: ``python benchmarks/bench_onestep.py`` (full: 20,000 teacher steps per 2-D task, 5,000
steps of the student, 5 evaluation draws of 2,000 points; about 25 single-core minutes;
results are written after every task, so a run cut short keeps what it measured),
``--parts default`` or ``--tasks N->moons`` for a subset, or ``--quick`` (CI-sized: 2 tasks,
1,000 steps, 3 draws of 1,000 points; about 2 minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _common import (
    FIT_MODULES,
    Spread,
    noise_floor,
    ratio_of_means,
    spread,
    verdict_line,
    write_results,
)

import sitransport as st
from sitransport.datasets import draw
from sitransport.images import ImageData

TASKS_2D = {
    "N->checkerboard": "checkerboard",
    "N->8gaussians": "8gaussians",
    "N->2spirals": "2spirals",
    "N->moons": "moons",
}
MIXTURE = "mixture d=16"
DIGITS = "digits"
PARTS = ("ot", "default")
COLUMNS = [
    "part",
    "task",
    "dopri5_ratio",
    "nfe1_ratio",
    "onestep_ratio",
    "onestep_vs_dopri5",
    "onestep_vs_dopri5_se",
    "teacher_s",
    "onestep_s",
    "time_fraction",
    "dopri5_nfe",
]
N_TRAIN = 20_000
FLOOR_DRAWS = 20
OT_BOUND, DISTILL_BOUND, TIME_BOUND = 1.05, 1.2, 0.5
MODULES = (*FIT_MODULES, "sitransport.datasets", "sitransport.images", "sitransport.metrics")


@dataclass(frozen=True)
class Task:
    """One task: how to draw source points and target points (``draw(n, seed)``), and how to
    fit the teacher (``fit(**keywords)``, the part's keywords added)."""

    name: str
    source: Callable[[int, int], np.ndarray]
    target: Callable[[int, int], np.ndarray]
    fit: Callable[..., st.TransportFlow]


def toy_task(name: str, target: str, n_train: int, seed: int) -> Task:
    x1 = draw(target, n_train, seed)
    return Task(
        name,
        lambda n, s: draw("gaussian", n, s),
        lambda n, s: draw(target, n, s),
        lambda **kw: st.fit("gaussian", x1, seed=seed, progress=False, **kw),
    )


def mixture_task(n_train: int, seed: int) -> Task:
    pair = st.datasets.known_ot_pair("mixture", 16, seed=seed)
    x0, x1 = pair.sample(n_train, seed=seed + 1)
    return Task(
        MIXTURE,
        lambda n, s: pair.source.sample(n, seed=s),
        lambda n, s: pair.sample(n, seed=s)[1],
        lambda **kw: st.fit(x0, x1, seed=seed, progress=False, **kw),
    )


def digits_task(seed: int) -> tuple[Task, ImageData]:
    n_test = 297
    digits = st.images.load_digits()
    flat = digits.pixels.reshape(len(digits.pixels), -1)
    train = ImageData(flat[:-n_test], None, digits.levels)
    test = ImageData(flat[-n_test:], None, digits.levels)

    def target(n: int, s: int) -> np.ndarray:  # the held-out images, dequantised afresh
        return test.dequantized(seed=s)[:n]

    def source(n: int, s: int) -> np.ndarray:
        return draw("gaussian", n, s, dim=64)

    settings = st.TrainSettings(steps=8000, batch_size=64, lr=2e-3, progress=False)
    return Task(
        DIGITS, source, target, lambda **kw: st.fit("gaussian", train, training=settings,
                                                    seed=seed, progress=False, **kw)
    ), train  # fmt: skip


def digits_floor(
    train: ImageData, target: Callable[[int, int], np.ndarray], n: int, seed: int
) -> Spread:
    """W2 between ``n`` dequantised training images (a random subset) and the held-out ones
    (``target``): what a model that draws real digits scores."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(FLOOR_DRAWS):
        real = train.dequantized(seed=seed + 100 + k)[rng.choice(len(train), n, replace=False)]
        out.append(float(st.metrics.w2(real, target(n, seed + 1000 + k))))
    return spread(out)


def evaluate(
    task: Task, samplers: dict[str, Callable[[np.ndarray], np.ndarray]], n: int, repeats: int,
    seed: int,
) -> dict[str, list[float]]:  # fmt: skip
    """W2 of each sampler's points against a target draw, per evaluation draw (the same
    source points and target draw for every sampler)."""
    out: dict[str, list[float]] = {k: [] for k in samplers}
    for r in range(repeats):
        x0 = task.source(n, seed + 2000 + r)
        y = task.target(n, seed + 1000 + r)
        for key, push in samplers.items():
            out[key].append(float(st.metrics.w2(push(x0), y)))
    return out


def paired(num: list[float], den: list[float]) -> Spread:
    return spread([a / b for a, b in zip(num, den, strict=True)])


def ot_row(task: Task, floor: Spread, args: argparse.Namespace) -> dict:
    """A global-OT flow: dopri5 against nfe=1."""
    potential = task.name == MIXTURE
    kw: dict = {"coupling": "global_ot", "interpolant": "linear"}
    if potential:
        kw.update(network="potential", steps=args.mixture_steps, batch_size=256)
    elif args.steps:
        kw["steps"] = args.steps
    t0 = time.perf_counter()
    flow = task.fit(**kw)
    teacher_s = time.perf_counter() - t0
    nfes: list[float] = []

    def dopri(x: np.ndarray) -> np.ndarray:
        res = flow.transport(x)
        nfes.append(res.nfe)
        return res.x

    w = evaluate(task, {"dopri5": dopri, "nfe1": lambda x: flow.push_forward(x, nfe=1)},
                 args.n_eval, args.repeats, args.seed)  # fmt: skip
    vs = paired(w["nfe1"], w["dopri5"])
    return {
        "part": "ot",
        "task": task.name,
        "network": "potential" if potential else "mlp",
        "steps": flow.config.training.steps,
        **ratios(w, floor),
        "onestep_ratio": float("nan"),
        "onestep_vs_dopri5": vs.mean,
        "onestep_vs_dopri5_se": vs.se,
        "n": vs.n,
        "teacher_s": teacher_s,
        "dopri5_nfe": float(np.mean(nfes)),
        "w2_draws": w,
    }


def ratios(w: dict[str, list[float]], floor: Spread) -> dict:
    """Each sampler's W2 over the noise floor (``<key>_ratio`` and ``<key>_ratio_se``)."""
    out = {}
    for key, values in w.items():
        est = ratio_of_means(spread(values), floor)
        out[f"{key}_ratio"], out[f"{key}_ratio_se"] = est.mean, est.se
    return out


def default_row(task: Task, floor: Spread, args: argparse.Namespace) -> dict:
    """A default flow, its nfe=1, and its distilled one-step student."""
    kw = {"steps": args.steps} if args.steps and task.name != DIGITS else {}
    t0 = time.perf_counter()
    flow = task.fit(**kw)
    teacher_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    student = st.distill(flow, args.pairs, seed=args.seed, progress=False)
    onestep_s = time.perf_counter() - t0
    nfes: list[float] = []

    def dopri(x: np.ndarray) -> np.ndarray:
        res = flow.transport(x)
        nfes.append(res.nfe)
        return res.x

    samplers = {
        "dopri5": dopri,
        "nfe1": lambda x: flow.push_forward(x, nfe=1),
        "onestep": lambda x: student.push_forward(x, nfe=1),
    }
    w = evaluate(task, samplers, args.n_eval_digits if task.name == DIGITS else args.n_eval,
                 args.repeats, args.seed)  # fmt: skip
    vs = paired(w["onestep"], w["dopri5"])
    return {
        "part": "default",
        "task": task.name,
        "network": "mlp",
        "steps": flow.config.training.steps,
        "student_steps": student.config.training.steps,
        **ratios(w, floor),
        "onestep_vs_dopri5": vs.mean,
        "onestep_vs_dopri5_se": vs.se,
        "n": vs.n,
        "teacher_s": teacher_s,
        "onestep_s": onestep_s,
        "time_fraction": onestep_s / teacher_s,
        "dopri5_nfe": float(np.mean(nfes)),
        "w2_draws": w,
    }


def verdicts(row: dict) -> list[str]:
    """A row's verdict lines: the paired one-step / dopri5 ratio beyond 2 SE and, for a
    distilled student, its cost as a fraction of the teacher's training."""
    vs = spread(row["onestep_vs_dopri5_draws"])
    if row["part"] == "ot":
        what = "nfe=1 W2 / dopri5 W2 (global_ot + linear)"
        return [verdict_line(row["task"], what, vs, "<=", OT_BOUND)]
    frac = row["time_fraction"]
    return [
        verdict_line(
            row["task"], "distilled nfe=1 W2 / teacher dopri5 W2", vs, "<=", DISTILL_BOUND
        ),  # fmt: skip
        f"{row['task']}, distillation time (pairs + training) / teacher training time: "
        f"{frac:.2f} (target < {TIME_BOUND:g}): {'met' if frac < TIME_BOUND else 'NOT met'}",
    ]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 2 tasks, 1,000 steps")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    tasks = [DIGITS, MIXTURE, *TASKS_2D]  # the cheapest first
    parser.add_argument("--tasks", nargs="*", default=tasks, choices=tasks)
    parser.add_argument("--steps", type=int, default=None, help="teacher steps (2-D tasks)")
    parser.add_argument("--mixture-steps", type=int, default=4000)
    parser.add_argument("--pairs", type=int, default=20_000, help="distillation pairs")
    parser.add_argument("--n-eval", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5, help="evaluation draws (>= 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="bench_onestep")
    args = parser.parse_args()
    args.n_eval_digits = 297
    if args.quick:
        args.tasks = [t for t in args.tasks if t in TASKS_2D][:2]
        args.steps, args.mixture_steps, args.pairs = 1000, 300, 5000
        args.n_eval, args.repeats = 1000, 3
    if args.repeats < 2:
        parser.error(f"--repeats must be at least 2, got {args.repeats}")
    return args


def build(name: str, args: argparse.Namespace) -> tuple[Task, Spread]:
    """The task ``name`` and its target's noise floor."""
    if name == DIGITS:
        task, train = digits_task(args.seed)
        return task, digits_floor(train, task.target, args.n_eval_digits, args.seed + 5000)
    task = mixture_task(N_TRAIN, args.seed) if name == MIXTURE else toy_task(
        name, TASKS_2D[name], N_TRAIN, args.seed)  # fmt: skip

    def pair(n: int, s: int) -> np.ndarray:
        return task.target(n, s)

    return task, noise_floor(pair, args.n_eval, FLOOR_DRAWS, args.seed + 5000)


def save(rows: list[dict], args: argparse.Namespace) -> str:
    """Write the rows measured so far (after every task: a run cut short keeps its rows, and
    says which tasks it did not reach)."""
    done = list(dict.fromkeys(r["task"] for r in rows))
    missing = [t for t in args.tasks if t not in done]
    notes = (
        f"Evaluation: {args.repeats} draws of {args.n_eval} points (digits: {args.n_eval_digits}"
        "), exact W2 (POT); dopri5 at atol = rtol = 1e-5 (the flows' default). ratio columns: "
        "W2 / noise floor (20 pairs of target draws); onestep_vs_dopri5: paired per draw, the "
        "one-step W2 (ot: the flow's nfe=1; default: the distilled student's nfe=1) over the "
        "teacher's dopri5 W2, mean and standard error over the draws. teacher_s: wall time of "
        "fit; onestep_s: of st.distill (pairs by the teacher's dopri5 + training); "
        f"time_fraction = onestep_s / teacher_s. Student: {args.pairs} pairs, a quarter of the "
        "teacher's steps, 80% of the times at t = 0. 2 CPUs shared with other jobs, 1 torch "
        "thread."
    )
    if missing:
        notes += f" Not reached in this run (cut short): {', '.join(missing)}."
    notes += "\n\nTargets:\n\n" + "\n".join(f"- {line}" for row in rows for line in verdicts(row))
    params = {k: v for k, v in vars(args).items() if k != "name"}
    path = write_results(args.name + ("_quick" if args.quick else ""), rows, COLUMNS, params,
                         notes, modules=MODULES)  # fmt: skip
    return path.read_text()


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    rows: list[dict] = []
    text = ""
    for name in args.tasks:
        parts = [p for p in args.parts if not (p == "ot" and name == DIGITS)]
        parts = [p for p in parts if not (p == "default" and name == MIXTURE)]
        if not parts:
            continue
        task, floor = build(name, args)
        for part in parts:
            row = (ot_row if part == "ot" else default_row)(task, floor, args)
            row["onestep_vs_dopri5_draws"] = [
                a / b for a, b in zip(row["w2_draws"]["nfe1" if part == "ot" else "onestep"],
                                      row["w2_draws"]["dopri5"], strict=True)
            ]  # fmt: skip
            row.update(noise_floor=floor.mean, noise_floor_se=floor.se)
            print(json.dumps(row), flush=True)
            rows.append(row)
            text = save(rows, args)
    print(text)


if __name__ == "__main__":
    main()
