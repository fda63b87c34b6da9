"""Entropic plans through geomloss at scale: plan time vs size and backend, the pairs' bias
vs plan size and blur, and training speed with ``coupling="global_entropic"`` vs independent.

Three tables, one run (``taskset -c 0`` for the one-core targets of issue 26):

- ``time``: seconds of one soft C-transform (the unit of a Sinkhorn update: two per update)
  and of a whole plan (potentials + one partner per row) vs ``N`` and backend.
- ``bias``: on the Gaussian pair ``N(0, I_2) -> N(0, diag(4, 1/4))`` (exact map
  ``T(x) = diag(2, 1/2) x``, population ``W2^2 = 1.25``): the mean ``|x1 - T(x0)|^2`` of a
  plan's pairs and its cost relative to ``W2^2``, vs ``N`` and ``blur``, with the columns'
  marginal error (total variation of the partners' law vs uniform).
- ``speed``: steps/s of ``sitransport.fit`` (moons -> 8gaussians, default MLP, batch 256)
  with ``global_entropic`` (the whole training set as one plan) vs ``independent``, the plan
  solve included.

Run: ``python benchmarks/bench_entropic_plan.py`` or ``--quick`` (N up to 4,096).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from _common import FIT_MODULES, write_results

import sitransport as st
from sitransport.couplings import GlobalEntropicOT
from sitransport.couplings.entropic import (
    _keops_available,
    _softmin_chunked,
    draw_partners,
    draw_rows,
    solve_potentials,
)
from sitransport.couplings.entropic_plan import solve_pairs

MODULES = (
    *FIT_MODULES,
    "sitransport.couplings.entropic",
    "sitransport.couplings.entropic_plan",
)
SCALE = torch.tensor([2.0, 0.5])
W2SQ = 1.25  # (1 - 2)^2 + (1 - 1/2)^2


def softmin_seconds(n: int, backend: str) -> float:
    """Seconds of one soft C-transform between two ``n``-point clouds in 2-D (float32)."""
    g = torch.Generator().manual_seed(0)
    x, y, h = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g), torch.zeros(n)
    if backend == "online":
        from geomloss._legacy import sinkhorn_samples as s

        lse = s.lse_genred("(SqDist(X,Y) / IntCst(2))", 2)
        s.softmin_online(0.01, (x[:64], y[:64]), h[:64], log_conv=lse)  # compile
        start = time.perf_counter()
        s.softmin_online(0.01, (x, y), h, log_conv=lse)
    else:
        start = time.perf_counter()
        _softmin_chunked(0.01, (x, y), h)
    return time.perf_counter() - start


def gaussian_ends(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) * SCALE


def column_tv(pot, rows: torch.Tensor) -> float:
    """Total variation between the partners' law (rows as drawn) and uniform columns."""
    n1 = pot.x1.shape[0]
    mass = torch.zeros(n1, dtype=torch.float64)
    size = max(2**22 // n1, 1)
    for i in range(0, rows.shape[0], size):
        mass += torch.softmax(pot.scores(rows[i : i + size]), 1).double().sum(0)
    mass /= mass.sum()
    return 0.5 * float((mass - 1.0 / n1).abs().sum())


def time_rows(sizes: list[int], plan_max: int) -> list[dict]:
    rows = []
    backends = ["chunked"] + (["online"] if _keops_available() else [])
    for n in sizes:
        for backend in backends:
            row = {"table": "time", "n": n, "backend": backend}
            row["softmin_s"] = softmin_seconds(n, backend)
            if n <= plan_max:
                x0, x1 = gaussian_ends(n, 0)
                coupling = GlobalEntropicOT(n=n, backend=backend)
                row["plan_s"] = solve_pairs(coupling, x0, x1, 0)[2]
            rows.append(row)
            print(row, flush=True)
    return rows


def bias_rows(
    sizes: list[int], blurs: list[float], seeds: int, schedules: list[tuple[float, int]]
) -> list[dict]:
    rows = []
    default = (GlobalEntropicOT.scaling, GlobalEntropicOT.iterations)
    grid = [(n, blur, default) for n in sizes for blur in blurs]
    grid += [(sizes[-1], 0.1, s) for s in schedules if s != default]
    for n, blur, (scaling, iterations) in grid:
        err, cost, tv, secs = [], [], [], []
        for seed in range(seeds):
            x0, x1 = gaussian_ends(n, 10 + seed)
            start = time.perf_counter()
            pot = solve_potentials(x0, x1, blur=blur, scaling=scaling, iterations=iterations)
            gen = torch.Generator().manual_seed(seed)
            r = draw_rows(pot, n, gen)
            c = draw_partners(pot, r, gen)
            secs.append(time.perf_counter() - start)
            a, b = x0[r], x1[c]
            err.append(float((b - a * SCALE).pow(2).sum(1).mean()))
            cost.append(float((b - a).pow(2).sum(1).mean()) / W2SQ)
            tv.append(column_tv(pot, r))
        se = lambda v: float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0  # noqa: E731
        row = {
            "table": "bias",
            "n": n,
            "blur": blur,
            "scaling": scaling,
            "iterations": iterations,
            "map_mse": float(np.mean(err)),
            "map_mse_se": se(err),
            "cost_over_w2": float(np.mean(cost)),
            "cost_se": se(cost),
            "column_tv": float(np.mean(tv)),
            "plan_s": float(np.mean(secs)),
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def speed_rows(n_train: int, steps: int) -> list[dict]:
    x0 = st.datasets.sample("moons", n_train, seed=0)
    x1 = st.datasets.sample("8gaussians", n_train, seed=1)
    rows = []
    rates = {}
    for coupling in ("independent", {"name": "global_entropic", "n": n_train}, "independent"):
        name = coupling if isinstance(coupling, str) else coupling["name"]
        start = time.perf_counter()
        flow = st.fit(
            x0, x1, steps=steps, batch_size=256, coupling=coupling, progress=False, validation=0.0
        )
        seconds = time.perf_counter() - start
        solve = flow.history.attrs.get("ot_plan_solve_s", [0.0])
        rates.setdefault(name, []).append(steps / seconds)
        print(name, steps / seconds, solve, flush=True)
    for name, r in rates.items():
        rows.append(
            {
                "table": "speed",
                "coupling": name,
                "n": n_train,
                "steps": steps,
                "steps_per_s": float(np.mean(r)),
                "ratio": float(np.mean(r) / np.mean(rates["independent"])),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        sizes, plan_max, bias_n, blurs, seeds, n_train = [1024, 4096], 1024, [1024], [0.1], 2, 1024
    else:
        # 65,536 is out of reach on the 2-core benchmark machine (extrapolate: x16 per 4x N)
        sizes, plan_max = [1024, 4096, 16384], 1024
        bias_n, blurs, seeds, n_train = [1024, 2048], [0.05, 0.1, 0.2], 2, 2048
    steps = args.steps or (500 if args.quick else 2000)
    rows = time_rows(sizes, plan_max)
    rows += bias_rows(bias_n, blurs, seeds, [(0.9, 50), (0.5, 10)])
    rows += speed_rows(n_train, steps)
    columns = [
        "table",
        "n",
        "backend",
        "softmin_s",
        "plan_s",
        "blur",
        "scaling",
        "iterations",
        "map_mse",
        "map_mse_se",
        "cost_over_w2",
        "cost_se",
        "column_tv",
        "coupling",
        "steps_per_s",
        "ratio",
    ]
    params = {
        "quick": args.quick,
        "sizes": sizes,
        "bias_n": bias_n,
        "blurs": blurs,
        "seeds": seeds,
        "n_train": n_train,
        "steps": steps,
    }
    notes = (
        "A plan: geomloss's Sinkhorn loop (annealing at `scaling` from the diameter down to "
        "blur, then `iterations` updates at blur; GlobalEntropicOT's defaults 0.7 and 20 unless "
        "shown), two soft C-transforms per update, then one partner per row; softmin_s: one soft "
        "C-transform, 2-D float32, one thread (65,536 points: about 16x the 16,384 time). "
        "map_mse: mean |x1 - T(x0)|^2 of the pairs (T the exact map); cost_over_w2: the pairs' "
        "mean squared distance over the population W2^2 = 1.25; column_tv: total "
        "variation of the partners' law vs uniform columns."
    )
    name = "bench_entropic_plan" + ("_quick" if args.quick else "")
    print(write_results(name, rows, columns, params, notes, modules=MODULES))


if __name__ == "__main__":
    main()
