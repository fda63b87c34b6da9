"""2-D transport quality of ``sitransport.fit`` with its default settings.

For each task, fit on 20,000 training samples, then compare 5,000 generated samples with
5,000 held-out target samples by exact W2 (POT), next to the noise floor (W2 between two
independent held-out sets of 5,000) and their ratio; record train time, NFE of sampling
(dopri5, atol = rtol = 1e-5) and the mean held-out NLL where rho0 has a density.

Run: ``python benchmarks/bench_2d.py`` (full, defaults) or ``--quick`` (CI-sized).
``--fit`` passes extra ``fit`` keywords as JSON; the typed groups as their plain-data specs,
e.g. ``--fit '{"network": {"width": 64}, "training": {"ema": null}}'``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import write_results

import sitransport as st
from sitransport.datasets import draw

TASKS = {
    "N->checkerboard": ("gaussian", "checkerboard"),
    "N->8gaussians": ("gaussian", "8gaussians"),
    "N->2spirals": ("gaussian", "2spirals"),
    "N->moons": ("gaussian", "moons"),
    "moons->8gaussians": ("moons", "8gaussians"),
}
# fit's typed keywords, built from their plain-data specs (``--fit`` JSON)
SPECS = {
    "network": st.MLPSpec,
    "training": st.TrainSettings,
    "optimize_path": st.PathSettings,
    "checkpoint": st.Checkpointing,
    "latent": st.LatentSpec,
    "ode": st.ODEOptions,
}
COLUMNS = ["task", "w2", "noise_floor", "ratio", "ratio_spread", "train_s", "nfe", "nll", "steps"]


def fit_keywords(plain: dict) -> dict:
    """``fit`` keywords from plain JSON data: a dict under a typed keyword (``SPECS``) becomes
    its settings object (``from_spec``), everything else is passed as it is."""
    return {
        key: SPECS[key].from_spec(value) if key in SPECS and isinstance(value, dict) else value
        for key, value in plain.items()
    }


def run_task(
    task: str, fit_kwargs: dict, n_train: int, n_eval: int, repeats: int, seed: int
) -> dict:
    src, tgt = TASKS[task]
    x1 = draw(tgt, n_train, seed)
    rho0 = "gaussian" if src == "gaussian" else draw(src, n_train, seed + 1)
    t0 = time.perf_counter()
    flow = st.fit(rho0, x1, seed=seed, **fit_kwargs)
    train_s = time.perf_counter() - t0
    # `repeats` independent evaluations: fresh source draws and two fresh held-out sets each
    w2s, floors, nfes = [], [], []
    for r in range(repeats):
        held = draw(tgt, 2 * n_eval, seed + 1000 + r)
        res = flow.transport(draw(src, n_eval, seed + 2000 + r))
        quality = st.metrics.sample_quality(res.x, held)
        w2s.append(quality.w2)
        floors.append(quality.noise_floor)
        nfes.append(res.nfe)
    ratios = np.array(w2s) / np.array(floors)
    nll = float("nan")
    if src == "gaussian":
        nll = st.metrics.nll(flow, draw(tgt, 2000, seed + 3000))
    return {
        "task": task,
        "w2": float(np.mean(w2s)),
        "noise_floor": float(np.mean(floors)),
        "ratio": float(np.mean(w2s) / np.mean(floors)),
        "ratio_spread": float(ratios.std(ddof=1)) if repeats > 1 else float("nan"),
        "train_s": train_s,
        "nfe": float(np.mean(nfes)),
        "nll": nll,
        "steps": flow.config.training.steps,
        "final_val_loss": float(flow.history["val_loss"][-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 1,000 steps, 2 tasks")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10, help="independent evaluations")
    parser.add_argument("--fit", type=json.loads, default={}, help="extra fit kwargs as JSON")
    parser.add_argument("--name", default="bench_2d")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fit_kwargs = {"progress": False, **args.fit}
    tasks, n_train, n_eval = args.tasks, 20_000, 5_000
    if args.quick:
        fit_kwargs.setdefault("steps", 1_000)
        tasks, n_eval, args.repeats = args.tasks[:2], 1_000, 1
    rows = []
    for task in tasks:
        row = run_task(task, fit_keywords(fit_kwargs), n_train, n_eval, args.repeats, args.seed)
        print(json.dumps(row), flush=True)
        rows.append(row)
    notes = (
        "w2: exact W2 (POT) of generated vs held-out target samples, "
        f"{n_eval} vs {n_eval}; noise_floor: W2 between two independent held-out sets of the "
        f"same size; both averaged over {args.repeats} independent evaluations, ratio = "
        "w2 / noise_floor, ratio_spread = std of the per-evaluation ratios. Target: ratio <= "
        "1.2 in under 120 s of training per task (2 CPUs, 1 torch thread). nll: mean held-out "
        "negative log-likelihood (nats, 2,000 samples), exact divergence, dopri5 1e-5."
    )
    path = write_results(
        args.name + ("_quick" if args.quick else ""),
        rows,
        COLUMNS,
        {
            "fit": fit_kwargs,
            "n_train": n_train,
            "n_eval": n_eval,
            "repeats": args.repeats,
            "seed": args.seed,
        },
        notes,
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
