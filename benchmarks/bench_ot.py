"""Optimal transport side by side: couplings, interpolants, max-min paths, reflow and peers.

For N->moons, N->8gaussians, moons->8gaussians and N->2spirals, in one run with the same
MLP, batch, steps and ODE solver (dopri5, atol = rtol = 1e-5): W2 of generated vs held-out
target samples over the noise floor (exact POT, 5,000 vs 5,000), the normalised path energy
NPE = |KE - W2^2| / W2^2 (KE along the flow's own paths, W2^2 exact between 2,000 source and
2,000 target samples), sampling NFE and train time. Each is measured on ``--repeats`` fresh
evaluation draws (3; ``--quick``: 2) and reported as their mean with its standard error
(``ratio_se``, ``npe_se``, ``nfe_se``; the draws themselves in the JSON rows as ``*_draws``):
a target counts as met only beyond two standard errors. A companion table
(``bench_ot_nfe``) gives the same W2 ratio for few-step sampling, fixed budgets of NFE = 1,
2, 4, 8, 16 velocity evaluations (``nfe=``, i.e. ``ODEOptions.budget``), next to dopri5 on
the same draws (the first 2,000 of each).
Peers (torchcfm I-CFM / OT-CFM, Meta flow_matching CondOT) run when installed
(``pip install --no-deps torchcfm flow_matching``), trained with the same network,
optimiser, schedule and EMA as ours.

Run: ``python benchmarks/bench_ot.py`` (full) or ``--quick``; ``--steps``, ``--tasks``,
``--n-eval``, ``--repeats`` and ``--no-peers`` make smaller runs; ``--tag`` names a run
split by task and ``--combine`` joins the parts. Cost (one torch thread): ``--quick`` about
2 minutes of CPU; each half of the published run (two tasks, ``--no-peers --n-eval 2000``)
about 30 minutes (training 21 minutes, evaluation about 25 s per row).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import (
    FIT_MODULES,
    RESULTS,
    OurFit,
    Spread,
    beyond_noise,
    fit_peer,
    peer_matchers,
    spread,
    write_results,
)
from _common import OT_TASKS as TASKS

import sitransport as st
from sitransport.datasets import draw
from sitransport.flow import TransportFlow


def fourier_ascent(steps: int) -> st.PathSettings:
    """The default ascent (``optimize_path=True``): frozen for the last half."""
    return st.PathSettings(stop=steps // 2)


def neural_ascent(steps: int) -> st.PathSettings:
    """The nonlinear path's ascent: gentle (the velocity must stay near its minimiser, or the
    ascent exploits its errors: a path lr of 3e-3 every step diverged to KE 7x W2^2 on
    moons->8gaussians), frozen for the last quarter."""
    return st.PathSettings(lr=1e-3, every=2, stop=int(0.75 * steps))


NEURAL = {"name": "neural", "dim": 2}
OURS = {
    "indep+linear": OurFit("linear"),
    "indep+trig": OurFit("trig"),
    "exact_ot+linear": OurFit("linear", "exact_ot"),
    "global_ot+linear": OurFit("linear", "global_ot"),
    "maxmin-fourier": OurFit("fourier", ascent=fourier_ascent),
    "maxmin-fourier-dim": OurFit({"name": "fourier", "dim": 2}, ascent=fourier_ascent),
    "maxmin-neural": OurFit(NEURAL, ascent=neural_ascent),
    "global_ot+maxmin-neural": OurFit(NEURAL, "global_ot", ascent=neural_ascent),
    # geomloss's entropic plans, sized for a CPU (opt-in with --methods; not in the default
    # run): a 2,048-point global plan at the default blur (~17 s a plan on one core; 65,536
    # is the default, meant for a GPU), and minibatch plans on a cheap schedule (~0.05 s a
    # 256 x 256 batch instead of ~0.3 s with EntropicOT's defaults 0.9 and 50)
    "global_entropic+linear": OurFit("linear", {"name": "global_entropic", "n": 2048}),
    # the same plan on the slower schedule of EntropicOT's defaults (column marginal closer)
    "global_entropic(0.9,50)+linear": OurFit(
        "linear", {"name": "global_entropic", "n": 2048, "scaling": 0.9, "iterations": 50}
    ),
    "entropic+linear": OurFit(
        "linear", {"name": "entropic", "blur": 0.1, "scaling": 0.5, "iterations": 10}
    ),
}
ENTROPIC = ("global_entropic+linear", "global_entropic(0.9,50)+linear", "entropic+linear")
COLUMNS = [
    "task",
    "method",
    "ratio",
    "ratio_se",
    "w2",
    "noise_floor",
    "npe",
    "npe_se",
    "ke",
    "w2sq",
    "nfe",
    "train_s",
    "steps_per_s",
]
MAXMIN = ("maxmin-fourier", "maxmin-fourier-dim", "maxmin-neural")  # independent pairing
NPE_TARGETS = {"global_ot+linear": 0.02, "maxmin": 0.05}
OT_METHODS = ("exact_ot+linear", "global_ot+linear")
SPEED = ("indep+linear", *OT_METHODS)  # rows the steps/s comparison needs
VERDICT = ("indep+trig", *OT_METHODS, "maxmin-neural")  # rows the targets' verdicts need
REFLOW = "reflow(indep+linear)"
DEFAULT_METHODS = [*(m for m in OURS if m not in ENTROPIC), REFLOW]
# what a run exercises (freshness.py): fit and reflow, our fits' and the peers' loop in
# _common, the metrics and the task samplers; ``distributed`` shards the training pairs
MODULES = (
    *FIT_MODULES,
    "sitransport.metrics",
    "sitransport.datasets",
    "benchmarks._common",
)
NPE_N = 2000  # source and target samples of one transport_report (its W2^2 reference)

# few-step sampling: fixed budgets of velocity evaluations (ODEOptions.budget), compared with
# dopri5 on the first NFE_SWEEP_N of the same draws (exact W2 at 5,000 takes ~14 s, at 2,000
# ~1.6 s on one thread)
NFES = (1, 2, 4, 8, 16)
NFE_SWEEP_N = 2000
STRAIGHT = ("exact_ot", "global_ot", "reflow", "OT-CFM")  # methods meant to give straight paths
NFE_TARGET = 1.2  # their W2 ratio at NFE <= 4 within this factor of their own dopri5 ratio


def nfe_sweep(flow: TransportFlow, x0: np.ndarray, x_dopri5: np.ndarray, held, q) -> dict:
    """W2 (exact POT) of fixed-budget solves from ``x0`` and of the dopri5 solve ``x_dopri5``
    against held-out samples, with the noise floor, on the first ``NFE_SWEEP_N`` samples
    (reusing ``q``, the full-size quality, when that is all of them)."""
    n, m = min(len(x0), NFE_SWEEP_N), len(held) // 2
    if n == m:
        out = {"floor": q.noise_floor, "dopri5": q.w2}
    else:
        out = {
            "floor": st.metrics.w2(held[:n], held[m : m + n]),
            "dopri5": st.metrics.w2(x_dopri5[:n], held[:n]),
        }
    for k in NFES:
        res = flow.transport(x0[:n], nfe=k)
        if res.nfe != k:
            raise RuntimeError(f"a budget of nfe={k} made {res.nfe} velocity evaluations")
        out[k] = st.metrics.w2(res.x, held[:n])
    return out


def evaluate_draw(flow: TransportFlow, src: str, tgt: str, n_eval: int, seed: int) -> dict:
    """One evaluation draw (``seed``: the run's seed plus the draw's index): the W2 ratio and
    NFE of ``n_eval`` fresh source points against ``2 n_eval`` held-out target points, the
    few-step sweep on them, and the transport report (NPE) on ``NPE_N`` fresh points per side."""
    x0, held = draw(src, n_eval, seed + 2000), draw(tgt, 2 * n_eval, seed + 1000)
    res = flow.transport(x0)
    q = st.metrics.sample_quality(res.x, held)
    rep = st.metrics.transport_report(
        flow, draw(src, NPE_N, seed + 3000), draw(tgt, NPE_N, seed + 4000)
    )
    sweep = nfe_sweep(flow, x0, res.x, held, q)
    return {"w2": q.w2, "floor": q.noise_floor, "nfe": res.nfe, "sweep": sweep, "report": rep}


def evaluate(flow: TransportFlow, src: str, tgt: str, n_eval: int, repeats: int, seed: int) -> dict:
    """Means over ``repeats`` evaluation draws and, for the judged quantities, the standard
    error and the draws themselves (``*_draws``: the verdicts rebuild their spread from them)."""
    draws = [evaluate_draw(flow, src, tgt, n_eval, seed + r) for r in range(repeats)]
    sweeps, reports = [d["sweep"] for d in draws], [d["report"] for d in draws]
    floor = np.mean([s["floor"] for s in sweeps])
    few = {f"ratio_nfe{k}": float(np.mean([s[k] for s in sweeps]) / floor) for k in NFES}
    judged = {
        "ratio": [d["w2"] / d["floor"] for d in draws],
        "w2": [d["w2"] for d in draws],
        "npe": [rep.npe for rep in reports],
        "nfe": [float(d["nfe"]) for d in draws],
        "nfe4/dopri5": [s[4] / s["dopri5"] for s in sweeps],
    }
    spreads = {k: spread(v) for k, v in judged.items()}
    return {
        **few,
        "ratio_dopri5_sweep": float(np.mean([s["dopri5"] for s in sweeps]) / floor),
        "n_sweep": min(n_eval, NFE_SWEEP_N),
        "ratio": float(np.mean([d["w2"] for d in draws]) / np.mean([d["floor"] for d in draws])),
        "w2": spreads["w2"].mean,
        "noise_floor": float(np.mean([d["floor"] for d in draws])),
        "npe": spreads["npe"].mean,
        "ke": float(np.mean([rep.kinetic_energy for rep in reports])),
        "w2sq": float(np.mean([rep.w2_squared for rep in reports])),
        "straightness": float(np.mean([rep.straightness for rep in reports])),
        "nfe": spreads["nfe"].mean,
        "nfe4/dopri5": spreads["nfe4/dopri5"].mean,
        **{f"{k}_se": v.se for k, v in spreads.items()},
        **{f"{k}_draws": list(v.values) for k, v in spreads.items()},
    }


def drawn(row: dict, key: str) -> Spread:
    """The spread of ``row``'s quantity ``key`` over its evaluation draws."""
    return spread(row[f"{key}_draws"])


def pm(row: dict, key: str) -> str:
    """``row``'s ``key`` as ``mean +- se``."""
    return f"{row[key]:.3g} +- {row[key + '_se']:.2g}"


def paired_difference(row: dict, other: dict, key: str, scale: float = 1.0) -> Spread:
    """``row``'s quantity ``key`` minus ``other``'s, draw by draw, over ``scale``: every
    method of a task is evaluated on the same draws, so their common noise (for the W2
    ratio, mostly the noise floor's) cancels in the difference."""
    return spread((np.asarray(row[f"{key}_draws"]) - np.asarray(other[f"{key}_draws"])) / scale)


def not_shown_worse(diff: Spread) -> bool:
    """A "no worse than" target: met unless the difference (method minus reference, larger
    is worse) is above 0 beyond two standard errors, i.e. met when mean - 2 SE <= 0."""
    return not beyond_noise(diff, ">", 0.0)


def nfe_table_row(r: dict) -> dict:
    """A row of the few-step table from a row of the main one."""
    base = r["ratio_dopri5_sweep"]
    return {
        "task": r["task"],
        "method": r["method"],
        "dopri5": base,
        "dopri5_nfe": r["nfe"],
        **{f"nfe{k}": r[f"ratio_nfe{k}"] for k in NFES},
        "nfe4/dopri5": r["nfe4/dopri5"],
        "nfe4/dopri5_se": r["nfe4/dopri5_se"],
        "best<=4/dopri5": min(r[f"ratio_nfe{k}"] for k in NFES if k <= 4) / base,
    }


def write_nfe_results(name: str, rows: list[dict], params: dict) -> str:
    """The few-step table (``<name>.json`` / ``.md``): W2 ratio per NFE next to dopri5's on the
    same draws, and the verdict of the straight-path methods against ``NFE_TARGET``."""
    table = [nfe_table_row(r) for r in rows]
    straight = [r for r in rows if any(s in r["method"] for s in STRAIGHT)]
    missed = [
        f"{r['task']} {r['method']} ({pm(r, 'nfe4/dopri5')}x)"
        for r in straight
        if not beyond_noise(drawn(r, "nfe4/dopri5"), "<=", NFE_TARGET)
    ]
    verdict = (
        f"Target: straight-path methods ({', '.join(STRAIGHT)}) at NFE = 4 within "
        f"{NFE_TARGET}x of their own dopri5 ratio, beyond 2 SE over the evaluation draws: "
        + (f"missed by {'; '.join(missed)}." if missed else f"met by all {len(straight)} rows.")
    )
    notes = (
        f"W2 ratio (exact W2 of generated vs held-out over the noise floor, {params['n_sweep']} "
        f"vs {params['n_sweep']}, mean of {params['repeats']} evaluation draws) of fixed-budget "
        "sampling: nfe=k solves with ODEOptions.budget(k) (1: one Euler step, 2: one midpoint "
        "step, 4k: k rk4 steps), from the same source draws as the dopri5 column (atol = rtol "
        "= 1e-5; dopri5_nfe its mean NFE). nfe4/dopri5: W2 at NFE = 4 over W2 with dopri5, "
        "per draw (the same points and held-out set), mean over the draws and its standard "
        "error nfe4/dopri5_se; met when the mean plus 2 SE is within the target. "
        "best<=4/dopri5: the best ratio of NFE 1, 2, 4 over the dopri5 ratio (means over the "
        "draws). " + verdict
    )
    columns = list(table[0]) if table else []
    write_results(name, table, columns, params, notes, modules=MODULES)
    return verdict


def ot_speed(by: dict, tasks: list[str]) -> str:
    """Training steps/s of independent, minibatch exact-OT and global-OT pairing, measured in
    the same run (training loop wall time, including global OT's plan solves), and the
    one-off solve time of the first global-OT plan; the verdict against 0.8x."""
    out, slow = [], []
    for t in tasks:
        rate = {m: by[(t, m)]["steps_per_s"] for m in ("indep+linear", *OT_METHODS)}
        ind, g = rate["indep+linear"], by[(t, "global_ot+linear")]
        out.append(
            f"{t}: {ind:.0f} / {rate['exact_ot+linear']:.0f} "
            f"({rate['exact_ot+linear'] / ind:.2f}x) / {rate['global_ot+linear']:.0f} "
            f"({rate['global_ot+linear'] / ind:.2f}x), one-off solve {g['ot_solve_s']:.2f} s, "
            f"{g['ot_plans']} plans"
        )
        if rate["global_ot+linear"] / ind < 0.8:
            slow.append(t)
    verdict = f"below 0.8x on {', '.join(slow)}" if slow else "at least 0.8x on every task"
    return (
        "Training steps/s, independent / exact_ot / global_ot (ratio to independent): "
        + "; ".join(out)
        + f". global_ot: {verdict}."
    )


def entropic_line(by: dict, task: str, method: str) -> str:
    """One entropic row of a task against independent pairing (speed) and, when present,
    global exact OT (npe, W2 ratio and nfe, differences draw by draw)."""
    r, ind = by[(task, method)], by[(task, "indep+linear")]
    cost = (
        f"first plan {r['ot_solve_s']:.1f} s, {r['ot_plans']} plans"
        if "ot_solve_s" in r
        else f"{r['ot_batch_ms']:.0f} ms a batch"
        if "ot_batch_ms" in r
        else "no solve recorded"
    )
    line = (
        f"{method} {r['steps_per_s']:.0f} steps/s ({r['steps_per_s'] / ind['steps_per_s']:.2f}x "
        f"independent; {cost}), npe {pm(r, 'npe')}, ratio {pm(r, 'ratio')}, nfe {pm(r, 'nfe')}"
    )
    ref = by.get((task, "global_ot+linear"))
    if ref is None:
        return line
    diffs = {k: paired_difference(r, ref, k) for k in ("npe", "nfe")}
    return (
        line
        + "; minus global_ot: "
        + ", ".join(f"{k} {d.mean:+.3g} +- {d.se:.2g}" for k, d in diffs.items())
    )


def entropic_summary(by: dict, tasks: list[str]) -> str:
    """The entropic rows (geomloss plans) next to independent pairing and global exact OT,
    for the tasks where they ran with an ``indep+linear`` row."""
    lines = [
        f"{t}: {entropic_line(by, t, m)}"
        for t in tasks
        for m in ENTROPIC
        if (t, m) in by and (t, "indep+linear") in by
    ]
    if not lines:
        return ""
    return (
        "Entropic couplings (geomloss; training steps/s with the plan solves, ratio to "
        "indep+linear of the same run; differences to global_ot+linear per evaluation draw, "
        "mean +- SE): " + "; ".join(lines) + "."
    )


def global_ot_verdict(by: dict, tasks: list[str]) -> str:
    """Global OT's target: NPE below its bound beyond 2 SE, NFE not shown above exact OT's."""
    bad = []
    for t in tasks:
        g, e = by[(t, "global_ot+linear")], by[(t, "exact_ot+linear")]
        low = beyond_noise(drawn(g, "npe"), "<=", NPE_TARGETS["global_ot+linear"])
        if not (low and not_shown_worse(paired_difference(g, e, "nfe"))):
            bad.append(f"{t} (npe {pm(g, 'npe')}, nfe {pm(g, 'nfe')} vs {pm(e, 'nfe')})")
    return (
        f"global_ot target (npe <= {NPE_TARGETS['global_ot+linear']} beyond 2 SE, nfe no more "
        "than exact_ot's): " + ("met on every task." if not bad else f"missed on {'; '.join(bad)}.")
    )


def maxmin_verdict(by: dict, tasks: list[str]) -> str:
    """Max-min's target, on each task's lowest-NPE max-min row (independent pairing): NPE
    below its bound beyond 2 SE, W2 ratio not shown worse than plain trig's."""
    listed, bad = [], []
    for t in tasks:
        best = min((by[(t, m)] for m in MAXMIN if (t, m) in by), key=lambda r: r["npe"])
        trig = by[(t, "indep+trig")]
        # the ratio's difference: of the mean W2s over the (shared) mean floor
        diff = paired_difference(best, trig, "w2", trig["noise_floor"])
        line = (
            f"{best['method']} npe {pm(best, 'npe')}, ratio {pm(best, 'ratio')} vs trig "
            f"{pm(trig, 'ratio')}, difference {diff.mean:+.3g} +- {diff.se:.2g}"
        )
        listed.append(f"{t}: {line}")
        low = beyond_noise(drawn(best, "npe"), "<=", NPE_TARGETS["maxmin"])
        if not (low and not_shown_worse(diff)):
            bad.append(f"{t} ({line})")
    return (
        f"Max-min with independent pairing, lowest npe per task (target <= "
        f"{NPE_TARGETS['maxmin']} beyond 2 SE, with ratio no worse than trig): "
        + ("met on every task" if not bad else f"missed on {'; '.join(bad)}")
        + f". Per task: {'; '.join(listed)}."
    )


def ot_verdicts(by: dict, tasks: list[str]) -> str:
    """Issue targets: global OT's NPE and NFE; max-min's NPE (independent pairing) and its
    W2 ratio against plain trig. Judged beyond two standard errors over the evaluation
    draws (see :func:`not_shown_worse` for the "no worse than" parts)."""
    return (
        "Verdicts beyond noise: an upper bound (npe <= target) is met when the mean plus 2 SE "
        "is within it; a no-worse-than claim (nfe no more than exact_ot's, ratio no worse "
        "than trig's) is met when the data do not show it worse beyond 2 SE, i.e. when the "
        "difference (method minus reference, taken draw by draw: both are evaluated on the "
        "same draws, so the noise they share cancels) minus 2 SE of the difference is at most "
        "0: a weaker claim than being shown no worse. "
        f"{global_ot_verdict(by, tasks)} {maxmin_verdict(by, tasks)}"
    )


def _covers(by: dict, tasks: list[str], methods: tuple[str, ...]) -> bool:
    return all((t, m) in by for t in tasks for m in methods)


def write_all(rows: list[dict], params: dict, suffix: str, provenance: str = "") -> None:
    """The main table with its notes and verdicts, and the few-step table."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    by = {(r["task"], r["method"]): r for r in rows}
    notes = (
        f"{params['steps']} steps, batch {params['batch_size']}, MLP 4x{params['width']} SiLU "
        f"for every method. Every quantity is measured on {params['repeats']} fresh evaluation "
        "draws (the same draws for every method of a task); a _se column is the standard "
        "error of its mean over them. ratio: exact W2 (POT) of generated vs held-out over the "
        f"noise floor, {params['n_eval']} vs {params['n_eval']}: mean W2 over mean floor, "
        "ratio_se the standard error of the per-draw ratios. npe = |KE - W2^2| / W2^2 (mean "
        "over the draws) with KE integrated along the flow's paths (dopri5 1e-5) from "
        "2,000 source samples and W2^2 exact (POT) between 2,000 source and 2,000 target "
        "samples (itself within about +-4% between draws, which npe_se includes). reflow "
        "retrains on 20,000 pairs (x0, T(x0)) of indep+linear (its train_s excludes the first "
        "fit). Max-min paths are frozen for the last half (Fourier) or quarter (neural) of the "
        "steps. "
        f"{ot_speed(by, tasks) if _covers(by, tasks, SPEED) else ''} "
        f"{ot_verdicts(by, tasks) if _covers(by, tasks, VERDICT) else ''} "
        f"{entropic_summary(by, tasks)} {provenance}"
    ).strip()
    path = write_results("bench_ot" + suffix, rows, COLUMNS, params, notes, modules=MODULES)
    print(path.read_text())
    n_sweep = min(params["n_eval"], NFE_SWEEP_N)
    print(write_nfe_results(f"bench_ot_nfe{suffix}", rows, {**params, "n_sweep": n_sweep}))


def combine(tags: list[str]) -> None:
    """Join the rows of runs split by task (``--tag``) into the main result files."""
    payloads = [json.loads((RESULTS / f"bench_ot_{tag}.json").read_text()) for tag in tags]
    rows = [r for p in payloads for r in p["rows"]]
    params = {**payloads[0]["parameters"], "combined": tags}
    commands = "; ".join(f"`{p['environment']['command']}`" for p in payloads)
    write_all(rows, params, "", f"Run as {len(tags)} processes side by side ({commands}).")


def training_record(flow: TransportFlow, steps: int) -> dict:
    """Steps/s of the training loop and, for a global plan, its plan solves (the first's
    seconds and their number), for minibatch plans the mean solve time of a batch."""
    if flow.history is None:  # peers: timed by train_s only
        return {}
    out = {"steps_per_s": steps / float(flow.history["wall_time"][-1])}
    attrs = flow.history.attrs
    solves = attrs.get("ot_plan_solve_s")
    if solves is not None:
        solves = np.atleast_1d(solves)
        out.update({"ot_solve_s": float(solves[0]), "ot_plans": len(solves)})
    if attrs.get("ot_batch_solve_ms") is not None:
        out["ot_batch_ms"] = float(attrs["ot_batch_solve_ms"])
    return out


def run_task(
    task: str,
    methods: list[str],
    setup: tuple[st.MLPSpec, st.TrainSettings],
    peers: dict,
    n_eval: int,
    repeats: int,
    seed: int,
) -> list:
    """The chosen methods on one task, side by side; ``setup``: the network and training
    settings every method shares."""
    network, training = setup
    src, tgt = TASKS[task]
    x1 = draw(tgt, 20_000, seed)
    rho0 = "gaussian" if src == "gaussian" else draw(src, 20_000, seed + 1)
    rows, flows = [], {}

    def record(method: str, flow: TransportFlow, t0: float) -> None:
        rows.append({"task": task, "method": method, "train_s": time.perf_counter() - t0})
        rows[-1].update(training_record(flow, training.steps))
        rows[-1].update(evaluate(flow, src, tgt, n_eval, repeats, seed))
        print(json.dumps(rows[-1]), flush=True)

    for method in (m for m in OURS if m in methods):
        t0 = time.perf_counter()
        keywords = OURS[method].keywords(training.steps)
        flows[method] = st.fit(rho0, x1, seed=seed, network=network, training=training, **keywords)
        record(method, flows[method], t0)
    if REFLOW in methods:
        t0 = time.perf_counter()
        rf = st.reflow(
            flows["indep+linear"], 20_000, steps=training.steps, seed=seed, progress=False
        )
        record(REFLOW, rf, t0)
    for name, matcher in peers.items():
        t0 = time.perf_counter()
        record(name, fit_peer(matcher, rho0, x1, network, training, seed), t0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 300 steps, 1 task, 2 draws")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=DEFAULT_METHODS,
        choices=[*OURS, REFLOW],
        help="a subset of ours (reflow needs indep+linear; the entropic rows run only when named)",
    )
    parser.add_argument("--n-eval", type=int, default=5000, help="samples per W2 evaluation")
    parser.add_argument("--repeats", type=int, default=3, help="evaluation draws (>= 2)")
    parser.add_argument("--tag", default="", help="suffix of the result files of a custom run")
    parser.add_argument("--note", default="", help="a sentence appended to the results' notes")
    parser.add_argument(
        "--combine", nargs="+", metavar="TAG", help="join runs split by task with --tag"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # recorded with the results (a combined file: as its parts ran)
    if args.combine:
        return combine(args.combine)
    tasks, n_eval, repeats = args.tasks, args.n_eval, args.repeats
    if args.quick:
        args.steps, tasks, n_eval, repeats = 300, args.tasks[:1], 1000, 2
    if repeats < 2:
        parser.error(
            f"--repeats must be at least 2 (a standard error needs 2 draws), got {repeats}"
        )
    network = st.MLPSpec(width=args.width)
    training = st.TrainSettings(steps=args.steps, batch_size=args.batch_size, progress=False)
    peers = {} if args.no_peers else peer_matchers()
    if REFLOW in args.methods and "indep+linear" not in args.methods:
        parser.error(f"{REFLOW} needs indep+linear in --methods")
    run = [args.methods, (network, training), peers, n_eval, repeats, args.seed]
    rows = [r for t in tasks for r in run_task(t, *run)]
    suffix = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    kw = {"steps": args.steps, "width": args.width, "batch_size": args.batch_size}
    params = {**kw, "n_eval": n_eval, "repeats": repeats, "seed": args.seed, "peers": list(peers)}
    write_all(rows, params, suffix, args.note)


if __name__ == "__main__":
    main()
