"""Low-rank sources: the seed experiments, deterministic flow vs stochastic interpolant + SDE.

(a) moons -> 8gaussians and line -> 8gaussians with the same network and steps: the
    deterministic flow (trig ODE), the stochastic interpolant sampled with its ODE, and with
    its SDE. Exact W2 (POT) of generated vs held-out target samples over the noise floor
    (measured once, over 40 pairs of independent target draws),
    over 5 evaluation draws of each fit (a fresh held-out target draw each, and a fresh
    source draw for the ODE or fresh SDE noise). The row the target judges (line, SDE) is
    measured over 3 training seeds (fresh training data and fit seed each) x 5 evaluation
    draws; each distinct fit is trained once per training seed and shared by its rows.
(b) N(0, 0.5 I_64) padded with 64 zeros -> N(0, I_128): the norms |T(x)| of pushed samples
    against the chi distribution with 128 degrees of freedom (Kolmogorov-Smirnov statistic,
    over 5 evaluation draws), deterministic flow vs stochastic interpolant + SDE; a
    histogram figure for each (the first draw).

(c) scikit-learn's 8x8 digits (64-D, covariance rank 61) pulled back to N(0, I): a flow in
    the full space vs a latent (PCA) flow: exact W2 (POT) of the pulled-back test digits to
    standard normal samples of the same dimension (over the noise floor between two such
    samples, over 5 fresh normal draws) and the KS statistic of their norms against the chi
    law; held-out NLL where a density exists (Hutchinson, 64-D; latent: the density of the
    projected digits).

Verdicts (a: line->8gaussians W2 ratio <= 1.3; b: KS < 0.05) hold only beyond two standard
errors (``_common.verdict_line``).

Run: ``python benchmarks/bench_lowrank.py`` (full: 10,000 steps, 10 fits; about 55
single-core minutes: some 40 of training, 80 exact W2 at 5,000 samples in (a) at about 7 s
each), ``--quick`` (CI-sized: 500 steps, 1,000 evaluation samples, still 3 training seeds x
5 draws for the (a) target; about 3.5 single-core minutes), or ``--parts c``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from _common import (
    FIT_MODULES,
    RESULTS,
    Estimate,
    Spread,
    noise_floor,
    ratio_of_means,
    spread,
    verdict_line,
    write_results,
)
from matplotlib.figure import Figure
from scipy import stats

import sitransport as st

COLUMNS = [
    "experiment",
    "method",
    "metric",
    "value",
    "value_se",
    "noise_floor",
    "ratio",
    "ratio_se",
    "n",
    "train_seeds",
    "train_s",
]
# what a run exercises (fits, SDE sampling, latent flows, metrics, data), for the freshness
# record of its results
MODULES = (
    *FIT_MODULES,
    "sitransport.datasets",
    "sitransport.metrics",
    "sitransport.score",
    "sitransport.latent",
    "sitransport.errors",
    "sitransport.protocols",
)
N_TRAIN = 20_000  # training samples of parts (a) and (b)
N_DRAWS = 5  # evaluation draws of every fit
TRAIN_SEEDS = 3  # training seeds of the row the (a) target judges
FLOOR_DRAWS = 40  # independent held-out pairs that fix part (a)'s noise floor
# part (a): (row label, fit, sampler); the fit "stochastic" is the remedy on `line`
METHODS_A = (
    ("deterministic flow, ODE", "deterministic", "ode"),
    ("stochastic interpolant, ODE", "stochastic", "ode"),
    ("stochastic interpolant, SDE", "stochastic", "sde"),
)
TARGET_A = ("line", "stochastic interpolant, SDE")  # (source, method) of the (a) target


@dataclass(frozen=True)
class EvalDraw:
    """The seeds of evaluation draw ``j`` of the fit of training seed ``seed + i``: far from
    the training data's seeds (``seed`` to ``seed + 4``), distinct for every ``(i, j)``.

    Example:
        >>> d = EvalDraw(0, 1, 2)
        >>> d.held, d.source, d.sde
        (1102, 2102, 3102)
    """

    seed: int
    i: int
    j: int

    @property
    def held(self) -> int:
        """Seed of the held-out target draw (or the reference normal draw)."""
        return self.seed + 1000 + 100 * self.i + self.j

    @property
    def source(self) -> int:
        """Seed of the source draw pushed by the ODE."""
        return self.seed + 2000 + 100 * self.i + self.j

    @property
    def sde(self) -> int:
        """Seed of the SDE's base draws and noise."""
        return self.seed + 3000 + 100 * self.i + self.j


def honest_spread(groups: list[list[float]]) -> Spread:
    """Spread of the mean of ``groups`` (one list of evaluation draws per training seed, all
    of one length). Draws of one training seed share its fit, so they are not independent:
    with several training seeds, the spread of the per-seed means when its standard error
    is the larger (same mean), else the pooled draws'."""
    pooled = spread([v for g in groups for v in g])
    if len(groups) < 2:
        return pooled
    means = spread([float(np.mean(g)) for g in groups])
    return means if means.se > pooled.se else pooled


def summary_row(base: dict, draws: list[list[tuple[float, float]]]) -> dict:
    """``base`` with the mean and standard error (:func:`honest_spread`) of the value, its
    noise floor and their ratio over ``draws``: per training seed, its (value, floor) pairs.
    The per-draw values and ratios are kept (``values``, ``ratios``) for the verdicts."""
    values = [[v for v, _ in g] for g in draws]
    ratios = [[v / f for v, f in g] for g in draws]
    value, ratio = honest_spread(values), honest_spread(ratios)
    train = float("nan")
    if len(draws) > 1:
        train = spread([float(np.mean(g)) for g in ratios]).se
    return {
        **base,
        "value": value.mean,
        "value_se": value.se,
        "noise_floor": float(np.mean([f for g in draws for _, f in g])),
        "ratio": ratio.mean,
        "ratio_se": ratio.se,
        "ratio_se_draws": spread([r for g in ratios for r in g]).se,
        "ratio_se_train": train,
        "n": sum(len(g) for g in draws),
        "train_seeds": len(draws),
        "values": values,
        "ratios": ratios,
    }


# ------------------------------------------------------------------------------- part (a)


def _fit_a(src: str, kind: str, train_seed: int, steps: int) -> tuple[Any, float]:
    """The ``kind`` fit from ``src`` to 8gaussians of one training seed (its data drawn from
    it) and its training time."""
    x0 = st.datasets.sample(src, N_TRAIN, seed=train_seed)
    x1 = st.datasets.sample("8gaussians", N_TRAIN, seed=train_seed + 1)
    kw: dict[str, Any] = {}
    if kind == "stochastic":  # `line`: the remedy; moons (full rank): forced
        kw = {"interpolant": "linear", "remedy": "auto"}
        if src == "moons":
            kw = {"interpolant": {"name": "stochastic", "base": "linear"}}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rank warning is the point for `line`
        flow = st.fit(x0, x1, steps=steps, seed=train_seed, progress=False, **kw)
    return flow, time.perf_counter() - t0


def _w2_a(flow: Any, src: str, sampler: str, n_eval: int, d: EvalDraw) -> float:
    """Exact W2 of one evaluation draw of ``flow`` (sampled with ``sampler``) to a fresh
    held-out draw of the target of the same size."""
    held = st.datasets.sample("8gaussians", n_eval, seed=d.held)
    if sampler == "sde":
        y = flow.sample(n_eval, seed=d.sde, method="sde")
    else:
        y = flow.push_forward(st.datasets.sample(src, n_eval, seed=d.source))
    return float(st.metrics.w2(y, held))


def noise_floor_a(n_eval: int, seed: int) -> Spread:
    """Part (a)'s noise floor: 8gaussians at ``n_eval`` points (:func:`_common.noise_floor`)."""
    return noise_floor(
        lambda n, s: st.datasets.sample("8gaussians", n, seed=s), n_eval, FLOOR_DRAWS, seed + 5000
    )


def ratio_row(base: dict, draws: list[list[float]], floor: Spread) -> dict:
    """``base`` with the mean W2 over ``draws`` (per training seed, its draws) and its
    standard error (:func:`honest_spread`), the noise floor, and their ratio with its
    delta-method standard error (:func:`_common.ratio_of_means`)."""
    value = honest_spread(draws)
    ratio = ratio_of_means(value, floor)
    return {
        **base,
        "value": value.mean,
        "value_se": value.se,
        "noise_floor": floor.mean,
        "noise_floor_se": floor.se,
        "ratio": ratio.mean,
        "ratio_se": ratio.se,
        "n": value.n,
        "train_seeds": len(draws),
        "values": draws,
    }


def part_a(steps: int, n_eval: int, seed: int) -> list[dict]:
    rows = []
    floor = noise_floor_a(n_eval, seed)
    for src in ("moons", "line"):
        fits: dict[tuple[str, int], tuple[Any, float]] = {}
        for method, kind, sampler in METHODS_A:
            seeds = TRAIN_SEEDS if (src, method) == TARGET_A else 1
            draws, times = [], []
            for i in range(seeds):
                if (kind, i) not in fits:
                    fits[kind, i] = _fit_a(src, kind, seed + i, steps)
                flow, train_s = fits[kind, i]
                draws.append(
                    [
                        _w2_a(flow, src, sampler, n_eval, EvalDraw(seed, i, j))
                        for j in range(N_DRAWS)
                    ]
                )
                times.append(train_s)
            base = {"experiment": f"(a) {src}->8gaussians", "method": method, "metric": "W2"}
            rows.append(ratio_row({**base, "train_s": float(np.mean(times))}, draws, floor))
            print(json.dumps(rows[-1]), flush=True)
    return rows


# ------------------------------------------------------------------------------- part (b)


def _padded(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of N(0, 0.5 I_64) padded with 64 zeros."""
    return np.concatenate([np.sqrt(0.5) * rng.standard_normal((n, 64)), np.zeros((n, 64))], 1)


def _ks_b(flow: Any, sampler: str, n_eval: int, d: EvalDraw) -> tuple[float, float, np.ndarray]:
    """KS of the norms of one evaluation draw against chi(128), the KS of exact N(0, I_128)
    norms of the same size (the floor), and the norms."""
    if sampler == "sde":
        y = flow.sample(n_eval, seed=d.sde, method="sde")
    else:
        y = flow.push_forward(_padded(np.random.default_rng(d.source), n_eval))
    chi = stats.chi(128)
    norms = np.linalg.norm(y, axis=1)
    ref = np.random.default_rng(d.held).standard_normal((n_eval, 128))
    floor = stats.kstest(np.linalg.norm(ref, axis=1), chi.cdf).statistic
    return float(stats.kstest(norms, chi.cdf).statistic), float(floor), norms


def _norms_figure(norms: dict[str, np.ndarray]) -> None:
    chi = stats.chi(128)
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    grid = np.linspace(8, 15, 200)
    for ax, (name, r) in zip(axes, norms.items(), strict=True):
        ax.hist(r, bins=60, density=True, alpha=0.6, label="|T(x)|")
        ax.plot(grid, chi.pdf(grid), "k", label="chi, 128 dof")
        ax.set_title(name)
        ax.set_xlabel("norm")
        ax.legend()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "bench_lowrank_norms.png", dpi=100)


def part_b(steps: int, n_eval: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    x0 = _padded(rng, N_TRAIN)
    x1 = rng.standard_normal((N_TRAIN, 128))
    rows, norms = [], {}
    for name, kw, sampler in (
        ("deterministic flow, ODE", {}, "ode"),
        ("stochastic interpolant, SDE", {"remedy": "auto"}, "sde"),
    ):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flow = st.fit(
                x0, x1, steps=steps, seed=seed, progress=False, interpolant="linear", **kw
            )
        train_s = time.perf_counter() - t0
        draws = [_ks_b(flow, sampler, n_eval, EvalDraw(seed, 0, j)) for j in range(N_DRAWS)]
        norms[name] = draws[0][2]
        base = {
            "experiment": "(b) N(0,.5 I_64)+0 -> N(0, I_128)",
            "method": name,
            "metric": "KS(|T(x)|, chi_128)",
            "train_s": train_s,
        }
        rows.append(summary_row(base, [[(ks, floor) for ks, floor, _ in draws]]))
        print(json.dumps(rows[-1]), flush=True)
    _norms_figure(norms)
    return rows


# ------------------------------------------------------------------------------- part (c)


def _single_row(base: dict, metric: str, value: float) -> dict:
    """A row of one evaluation (no spread)."""
    nan = float("nan")
    return {
        **base,
        "metric": metric,
        "value": value,
        "value_se": nan,
        "noise_floor": nan,
        "ratio": nan,
        "ratio_se": nan,
        "ratio_se_train": nan,
        "n": 1,
        "train_seeds": 1,
    }


def _w2_draws(z: np.ndarray, seed: int) -> list[tuple[float, float]]:
    """(W2 of ``z`` to a fresh N(0, I) draw of its size, W2 between two such draws) over
    :data:`N_DRAWS` draws."""
    out = []
    for j in range(N_DRAWS):
        ref = np.random.default_rng(EvalDraw(seed, 0, j).held).standard_normal(
            (2 * len(z), z.shape[1])
        )
        out.append((st.metrics.w2(z, ref[: len(z)]), st.metrics.w2(ref[: len(z)], ref[len(z) :])))
    return out


def part_c(steps: int, seed: int) -> list[dict]:
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    x = (x - x.mean(0)) / x.std()
    perm = np.random.default_rng(seed).permutation(len(x))
    train, test = x[perm[:1500]], x[perm[1500:]]
    rows = []
    for name, kw in (
        ("full-space flow (64-D)", {}),
        ("latent flow (PCA, 99.9%)", {"latent": "pca"}),
    ):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flow = st.fit(
                "gaussian",
                train,
                steps=steps,
                seed=seed,
                progress=False,
                training=st.TrainSettings(restore_best=True),
                **kw,
            )
        train_s = time.perf_counter() - t0
        z = np.asarray(flow.pull_back(test))
        k = z.shape[1]
        ks = stats.kstest(np.linalg.norm(z, axis=1), stats.chi(k).cdf).statistic
        if kw:
            nll = -float(np.mean(flow.latent_log_prob(test)))
        else:
            nll = st.metrics.nll(flow, test, method="hutchinson", probes=8)
        base = {"experiment": f"(c) digits -> N(0, I_{k})", "method": name, "train_s": train_s}
        w2_base = {**base, "metric": "W2(pulled back, N(0,I))"}
        rows.append(summary_row(w2_base, [_w2_draws(z, seed)]))
        rows.append(_single_row(base, f"KS(norms, chi_{k})", float(ks)))
        rows.append(_single_row(base, f"held-out NLL (nats, {k}-D)", nll))
        for r in rows[-3:]:
            print(json.dumps(r), flush=True)
    return rows


# ------------------------------------------------------------------------------- verdicts

# the targets of the verdicts, stated above them in the results
TARGETS = (
    "Targets (a: line->8gaussians within 1.3x of the noise floor with a remedy; b: 128-D norm "
    "KS below 0.05 with a remedy; both beyond 2 SE):"
)


def verdicts(rows: list[dict]) -> list[str]:
    """The targets of parts (a) and (b), judged on the remedy (the stochastic interpolant
    sampled with its SDE) beyond two standard errors; nothing for parts not run."""
    out = []
    for row in rows:
        if row["method"] != "stochastic interpolant, SDE":
            continue
        if row["experiment"] == "(a) line->8gaussians":
            label = "(a) line->8gaussians, stochastic interpolant, SDE"
            ratio = Estimate(row["ratio"], row["ratio_se"], row["n"])
            out.append(verdict_line(label, "W2 ratio", ratio, "<=", 1.3))
        elif row["experiment"].startswith("(b)"):
            label = "(b) 128-D norms, stochastic interpolant, SDE"
            out.append(verdict_line(label, "KS", honest_spread(row["values"]), "<", 0.05))
    return out


def notes(steps: int, n_eval: int) -> str:
    return (
        f"{steps} steps, default fit settings otherwise, same network for every method. Every "
        f"fit is evaluated on {N_DRAWS} independent draws (fresh held-out target samples; fresh "
        "source samples for an ODE, fresh noise for the SDE); value is the mean over the "
        "draws, value_se its standard error, n the number of values that standard error "
        f"rests on. (a) value = exact W2 (POT, {n_eval} vs {n_eval}) of generated to held-out "
        "samples; noise_floor = W2 between two independent target draws of that size, "
        f"measured once over {FLOOR_DRAWS} pairs (it depends on the target and the size, not "
        "on the model; a floor per draw fluctuates by some 20% and would swamp the ratio); "
        "ratio = value / noise_floor, ratio_se its delta-method standard error (both "
        "standard errors). SDE with the default eps0 = 4 (eps(t) = eps0 gamma(t)^2), 200 "
        f"Heun steps. The (a) target row (line, SDE) repeats its training {TRAIN_SEEDS} times "
        "(training seeds seed, seed+1, seed+2: fresh training data and fit seed each) x "
        f"{N_DRAWS} draws; the other rows use one training seed. Draws of one training seed "
        "share its fit and are not independent, so value_se is the larger of the standard "
        f"error over all draws and that over the {TRAIN_SEEDS} per-training-seed means (then "
        "n = 3: its SE rests on 2 degrees of freedom, and mean + 2 SE is short of a 95% "
        "bound). (b) value = KS statistic of the pushed norms against chi(128), mean over "
        "the draws; noise_floor = KS of exact N(0, I_128) norms of the same size (fresh each "
        "draw), ratio the mean per-draw ratio. Figure: results/bench_lowrank_norms.png (first "
        "draw). (c): digits standardised by one scale, 1,500 train / 297 test; W2 of the "
        f"pulled-back test digits to {N_DRAWS} fresh N(0, I) draws of their size (noise "
        "floor: two such draws; ratio: mean of the per-draw ratios); KS and NLL are single "
        "evaluations; the latent NLL is in the latent dimension, not comparable with the "
        "64-D one (whose density is degenerate: rank 61); both fits keep the weights with "
        "the lowest validation loss (restore_best=True)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized: 500 steps, 1,000 evaluation samples"
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="abc", help="which experiments, e.g. 'c'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, n_eval = (500, 1000) if args.quick else (args.steps, 5000)
    rows = []
    if "a" in args.parts:
        rows += part_a(steps, n_eval, args.seed)
    if "b" in args.parts:
        rows += part_b(steps, n_eval, args.seed)
    if "c" in args.parts:
        rows += part_c(steps, args.seed)
    text = notes(steps, n_eval)
    if verdicts(rows):
        text += f"\n\n{TARGETS}\n\n" + "\n".join(f"- {v}" for v in verdicts(rows))
    suffix = ("" if args.parts == "abc" else "_" + args.parts) + ("_quick" if args.quick else "")
    path = write_results(
        "bench_lowrank" + suffix,
        rows,
        COLUMNS,
        {
            "steps": steps,
            "n_eval": n_eval,
            "seed": args.seed,
            "draws": N_DRAWS,
            "train_seeds_target": TRAIN_SEEDS,
        },
        text,
        modules=MODULES,
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
