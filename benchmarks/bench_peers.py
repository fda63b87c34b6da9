"""Peers side by side on four 2D tasks: ours vs torchcfm (I-CFM, OT-CFM) vs Meta flow_matching.

N->moons, N->8gaussians, moons->8gaussians, N->2spirals; every method trains the same MLP
(4 x width, SiLU) with the same batch, steps, AdamW schedule and EMA (peers through
``_common.fit_peer``) and samples with the same ODE solver (dopri5, atol = rtol = 1e-5).
Reported, in one run:

- w2: exact W2 (POT) of generated vs held-out target samples (5,000 vs 5,000), mean of 3
  evaluations, with its standard error and the noise floor;
- nll: held-out NLL (2,000 points, exact divergence) where defined (Gaussian source);
- steps_per_s: training steps per second of wall time (ours: the whole ``st.fit``), after
  a 20-step warm-up run of every code path;
- nfe: function evaluations of the sampling ODE.

Targets: W2 and NLL of ours no worse than the best peer on every task (ours = the better of
our two configurations; "no worse" = within two standard errors of the difference);
steps/s of ours (default fit) >= 1.0x torchcfm I-CFM (the same independent-coupling method).

Peers are optional (``pip install --no-deps torchcfm flow_matching``, the ``bench`` extra).
Run: ``python benchmarks/bench_peers.py`` (full) or ``--quick``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import numpy as np
import torch
from _common import OT_TASKS as TASKS
from _common import fit_peer, peer_matchers, write_results

import sitransport as st
from sitransport.datasets import draw

OURS = {
    "ours indep+trig (default)": {"interpolant": "trig"},
    "ours exact_ot+linear": {"interpolant": "linear", "coupling": "exact_ot"},
}
COLUMNS = [
    "task",
    "method",
    "w2",
    "w2_se",
    "noise_floor",
    "nll",
    "nll_se",
    "steps_per_s",
    "nfe",
    "train_s",
]


def evaluate(flow, src: str, tgt: str, n_eval: int, repeats: int, seed: int) -> dict:
    w2s, floors, nfes = [], [], []
    for r in range(repeats):
        res = flow.transport(draw(src, n_eval, seed + 2000 + r))
        q = st.metrics.sample_quality(res.x, draw(tgt, 2 * n_eval, seed + 1000 + r))
        w2s.append(q.w2)
        floors.append(q.noise_floor)
        nfes.append(res.nfe)
    out = {
        "w2": float(np.mean(w2s)),
        "w2_se": float(np.std(w2s, ddof=1) / math.sqrt(repeats)) if repeats > 1 else math.nan,
        "noise_floor": float(np.mean(floors)),
        "nfe": float(np.mean(nfes)),
        "nll": math.nan,
        "nll_se": math.nan,
    }
    if src == "gaussian":
        xt = draw(tgt, 2000, seed + 5000)
        lp = np.asarray(flow.log_prob(xt, method="exact", progress=False), dtype=np.float64)
        out["nll"] = float(-lp.mean())
        out["nll_se"] = float(lp.std(ddof=1) / math.sqrt(len(lp)))
    return out


# the criterion of the verdicts, stated above them in the results
PEER_TARGETS = (
    "Targets (W2 and NLL: the better of our two configurations no worse than the best peer, "
    "i.e. at most 2 standard errors of the difference above it; training steps/s of our "
    "default fit at least 1.0x torchcfm I-CFM's):"
)


def no_worse(ours: dict, peer: dict, key: str) -> bool:
    """ours[key] <= peer[key] up to two standard errors of the difference."""
    se = math.hypot(ours[f"{key}_se"], peer[f"{key}_se"])
    return ours[key] <= peer[key] + 2 * (se if math.isfinite(se) else 0.0)


def verdict(task: str, key: str, ours_rows: list, peer_rows: list) -> str:
    """Our best ``key`` (W2 or NLL) against the best peer's, by :func:`no_worse`."""
    ours = min(ours_rows, key=lambda r: r[key])
    peer = min(peer_rows, key=lambda r: r[key])
    return (
        f"{task}: {key.upper()} best ours {ours[key]:.4f} ({ours['method']}) vs best peer "
        f"{peer[key]:.4f} ({peer['method']}): {'met' if no_worse(ours, peer, key) else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 300 steps, 1 task")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks, n_eval, repeats = args.tasks, 5000, 3
    if args.quick:
        args.steps, tasks, n_eval, repeats = 300, args.tasks[:1], 1000, 2
    network = st.MLPSpec(width=args.width)
    training = st.TrainSettings(steps=args.steps, batch_size=args.batch_size, progress=False)
    peers = peer_matchers()
    # warm-up: one short run of each code path, so no method pays one-time start-up costs
    warm = dataclasses.replace(training, steps=20)
    st.fit("gaussian", draw("moons", 2000, 0), seed=0, network=network, training=warm)
    for matcher in peers.values():
        fit_peer(matcher, "gaussian", draw("moons", 2000, 0), network, warm, 0)
    rows, verdicts = [], []
    for task in tasks:
        src, tgt = TASKS[task]
        x1 = draw(tgt, 20_000, args.seed)
        rho0 = "gaussian" if src == "gaussian" else draw(src, 20_000, args.seed + 1)
        fits = {
            method: lambda extra=extra, rho0=rho0, x1=x1: st.fit(
                rho0, x1, seed=args.seed, network=network, training=training, **extra
            )
            for method, extra in OURS.items()
        }
        fits.update(
            {
                name: lambda m=m, rho0=rho0, x1=x1: fit_peer(
                    m, rho0, x1, network, training, args.seed
                )
                for name, m in peers.items()
            }
        )
        by = {}
        for method, make in fits.items():
            t0 = time.perf_counter()
            flow = make()
            train_s = time.perf_counter() - t0
            by[method] = {"task": task, "method": method, "train_s": train_s}
            by[method]["steps_per_s"] = args.steps / train_s
            by[method].update(evaluate(flow, src, tgt, n_eval, repeats, args.seed))
            print(json.dumps(by[method]), flush=True)
        rows += list(by.values())
        peer_rows = [by[p] for p in peers]
        if not peer_rows:
            continue
        ours_rows = [by[m] for m in OURS]
        for key in ("w2", "nll") if src == "gaussian" else ("w2",):
            verdicts.append(verdict(task, key, ours_rows, peer_rows))
        if "torchcfm I-CFM" in by:
            speed = (
                by["ours indep+trig (default)"]["steps_per_s"] / by["torchcfm I-CFM"]["steps_per_s"]
            )
            verdicts.append(
                f"{task}: steps/s ours (default) / torchcfm I-CFM = {speed:.2f}x: "
                f"{'met' if speed >= 1.0 else 'NOT met'}"
            )
    notes = (
        f"{args.steps} steps, batch {args.batch_size}, MLP 4x{args.width} SiLU, AdamW with our "
        "warm-up/cosine schedule, EMA 0.999, for every method; sampling with dopri5 1e-5. "
        f"w2: exact W2 (POT) generated vs held-out, {n_eval} vs {n_eval}, mean of {repeats} "
        "evaluations (w2_se: standard error over them); nll: 2,000 held-out points, exact "
        "divergence (Gaussian source only). steps_per_s: steps / wall time of the whole "
        "training call (ours includes validation every 500 steps). Peers installed: "
        f"{', '.join(peers) or 'none'}.\n\n{PEER_TARGETS}\n\n"
        + "\n".join(f"- {v}" for v in verdicts)
    )
    path = write_results(
        "bench_peers" + ("_quick" if args.quick else ""),
        rows,
        COLUMNS,
        {
            "steps": args.steps,
            "width": args.width,
            "batch_size": args.batch_size,
            "n_eval": n_eval,
            "repeats": repeats,
            "seed": args.seed,
            "peers": list(peers),
        },
        notes,
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
