"""Optimal transport side by side: couplings, interpolants, max-min paths, reflow and peers.

For N->moons, N->8gaussians, moons->8gaussians and N->2spirals, in one run with the same
MLP, batch, steps and ODE solver (dopri5, atol = rtol = 1e-5): W2 of generated vs held-out
target samples over the noise floor (exact POT, 5,000 vs 5,000, averaged over 3
evaluations), the normalised path energy NPE = |KE - W2^2| / W2^2 (KE along the flow's own
paths, W2^2 exact between 2,000 source and 2,000 target samples), sampling NFE and train
time. Peers (torchcfm I-CFM / OT-CFM, Meta flow_matching CondOT) run when installed
(``pip install --no-deps torchcfm flow_matching``), trained with the same network,
optimiser, schedule and EMA as ours.

Run: ``python benchmarks/bench_ot.py`` (full) or ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import OT_TASKS as TASKS
from _common import draw, fit_peer, peer_matchers, write_results

import sitransport as st
from sitransport.flow import TransportFlow

OURS = {
    "indep+linear": {"interpolant": "linear"},
    "indep+trig": {"interpolant": "trig"},
    "exact_ot+linear": {"interpolant": "linear", "coupling": "exact_ot"},
    "global_ot+linear": {"interpolant": "linear", "coupling": "global_ot"},
    "maxmin-fourier": {"interpolant": "fourier", "optimize_path": True},
}
COLUMNS = ["task", "method", "ratio", "w2", "noise_floor", "npe", "ke", "w2sq", "nfe", "train_s"]


def evaluate(flow: TransportFlow, src: str, tgt: str, n_eval: int, repeats: int, seed: int) -> dict:
    w2s, floors, nfes = [], [], []
    for r in range(repeats):
        res = flow.transport(draw(src, n_eval, seed + 2000 + r))
        q = st.metrics.sample_quality(res.x, draw(tgt, 2 * n_eval, seed + 1000 + r))
        w2s.append(q.w2)
        floors.append(q.noise_floor)
        nfes.append(res.nfe)
    rep = flow.transport_report(draw(src, 2000, seed + 3000), draw(tgt, 2000, seed + 4000))
    return {
        "ratio": float(np.mean(w2s) / np.mean(floors)),
        "w2": float(np.mean(w2s)),
        "noise_floor": float(np.mean(floors)),
        "npe": rep.npe,
        "ke": rep.kinetic_energy,
        "w2sq": rep.w2_squared,
        "straightness": rep.straightness,
        "nfe": float(np.mean(nfes)),
    }


def ot_speed(flows: dict[str, dict[str, TransportFlow]], tasks: list[str], steps: int) -> str:
    """Training steps/s of independent, minibatch exact-OT and global-OT pairing, measured in
    the same run (training loop wall time, including global OT's plan solves), and the
    one-off solve time of the first global-OT plan."""
    out = []
    for t in tasks:
        rate = {
            m: steps / float(flows[t][m].history["wall_time"][-1])
            for m in ("indep+linear", "exact_ot+linear", "global_ot+linear")
        }
        solves = flows[t]["global_ot+linear"].history.attrs["ot_plan_solve_s"]
        ind = rate["indep+linear"]
        out.append(
            f"{t}: {ind:.0f} / {rate['exact_ot+linear']:.0f} "
            f"({rate['exact_ot+linear'] / ind:.2f}x) / {rate['global_ot+linear']:.0f} "
            f"({rate['global_ot+linear'] / ind:.2f}x), one-off solve {solves[0]:.2f} s, "
            f"{len(solves)} plans"
        )
    return (
        "Training steps/s, independent / exact_ot / global_ot (ratio to independent): "
        + "; ".join(out)
        + "."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 300 steps, 1 task")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks, n_eval, repeats = args.tasks, 5000, 3
    if args.quick:
        args.steps, tasks, n_eval, repeats = 300, args.tasks[:1], 1000, 1
    kw = {"steps": args.steps, "width": args.width, "batch_size": args.batch_size}
    peers = {} if args.no_peers else peer_matchers()
    rows, all_flows = [], {}
    for task in tasks:
        src, tgt = TASKS[task]
        x1 = draw(tgt, 20_000, args.seed)
        rho0 = "gaussian" if src == "gaussian" else draw(src, 20_000, args.seed + 1)
        flows = all_flows[task] = {}
        for method, extra in OURS.items():
            t0 = time.perf_counter()
            flows[method] = st.fit(rho0, x1, seed=args.seed, progress=False, **kw, **extra)
            rows.append({"task": task, "method": method, "train_s": time.perf_counter() - t0})
            rows[-1].update(evaluate(flows[method], src, tgt, n_eval, repeats, args.seed))
            print(json.dumps(rows[-1]), flush=True)
        t0 = time.perf_counter()
        rf = flows["indep+linear"].reflow(20_000, steps=args.steps, seed=args.seed, progress=False)
        rows.append(
            {"task": task, "method": "reflow(indep+linear)", "train_s": time.perf_counter() - t0}
        )
        rows[-1].update(evaluate(rf, src, tgt, n_eval, repeats, args.seed))
        print(json.dumps(rows[-1]), flush=True)
        for name, matcher in peers.items():
            t0 = time.perf_counter()
            flow = fit_peer(matcher, rho0, x1, kw, args.seed)
            rows.append({"task": task, "method": name, "train_s": time.perf_counter() - t0})
            rows[-1].update(evaluate(flow, src, tgt, n_eval, repeats, args.seed))
            print(json.dumps(rows[-1]), flush=True)
    by = {(r["task"], r["method"]): r for r in rows}
    overhead = [
        by[(t, "exact_ot+linear")]["train_s"] / by[(t, "indep+linear")]["train_s"] - 1
        for t in tasks
    ]
    speed = ot_speed(all_flows, tasks, args.steps)
    notes = (
        f"{args.steps} steps, batch {args.batch_size}, MLP 4x{args.width} SiLU for every method. "
        f"ratio: exact W2 (POT) of generated vs held-out over the noise floor, {n_eval} vs "
        f"{n_eval}, mean of {repeats} evaluations. npe = |KE - W2^2| / W2^2 with KE integrated "
        "along the flow's paths (dopri5 1e-5) from 2,000 source samples and W2^2 exact (POT) "
        "between 2,000 source and 2,000 target samples. reflow retrains on 20,000 pairs "
        "(x0, T(x0)) of indep+linear (its train_s excludes the first fit). Exact-OT training "
        f"overhead vs independent pairing (wall time, same run): "
        f"{', '.join(f'{o:+.0%}' for o in overhead)}. {speed}"
    )
    path = write_results(
        "bench_ot" + ("_quick" if args.quick else ""),
        rows,
        COLUMNS,
        {**kw, "n_eval": n_eval, "repeats": repeats, "seed": args.seed, "peers": list(peers)},
        notes,
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
