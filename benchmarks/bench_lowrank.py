"""Low-rank sources: the seed experiments, deterministic flow vs stochastic interpolant + SDE.

(a) moons -> 8gaussians and line -> 8gaussians with the same network and steps: the
    deterministic flow (trig ODE), the stochastic interpolant sampled with its ODE, and with
    its SDE. Exact W2 (POT) of generated vs held-out target samples over the noise floor.
(b) N(0, 0.5 I_64) padded with 64 zeros -> N(0, I_128): the norms |T(x)| of pushed samples
    against the chi distribution with 128 degrees of freedom (Kolmogorov-Smirnov statistic),
    deterministic flow vs stochastic interpolant + SDE; a histogram figure for each.

(c) scikit-learn's 8x8 digits (64-D, covariance rank 61) pulled back to N(0, I): a flow in
    the full space vs a latent (PCA) flow: exact W2 (POT) of the pulled-back test digits to
    standard normal samples of the same dimension (over the noise floor between two such
    samples) and the KS statistic of their norms against the chi law; held-out NLL where a
    density exists (Hutchinson, 64-D; latent: the density of the projected digits).

Run: ``python benchmarks/bench_lowrank.py`` (full), ``--quick``, or ``--parts c``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from _common import RESULTS, write_results
from matplotlib.figure import Figure
from scipy import stats

import sitransport as st

COLUMNS = ["experiment", "method", "metric", "value", "noise_floor", "ratio", "train_s"]


def part_a(steps: int, n_eval: int, seed: int) -> list[dict]:
    rows = []
    for src in ("moons", "line"):
        x0 = st.datasets.sample(src, 20_000, seed=seed)
        x1 = st.datasets.sample("8gaussians", 20_000, seed=seed + 1)
        held = st.datasets.sample("8gaussians", 2 * n_eval, seed=seed + 2)
        fits = {}
        for name, kw in (("deterministic (trig)", {}), ("stochastic", {"remedy": "auto"})):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the rank warning is the point for `line`
                interp = {"interpolant": "linear"} if kw else {}
                if kw and src == "moons":  # full rank: force the stochastic interpolant
                    kw, interp = {}, {"interpolant": {"name": "stochastic", "base": "linear"}}
                fits[name] = (
                    st.fit(x0, x1, steps=steps, seed=seed, progress=False, **kw, **interp),
                    time.perf_counter() - t0,
                )
        xs = st.datasets.sample(src, n_eval, seed=seed + 3)
        det, t_det = fits["deterministic (trig)"]
        sto, t_sto = fits["stochastic"]
        samples = {
            "deterministic flow, ODE": (det.push_forward(xs), t_det),
            "stochastic interpolant, ODE": (sto.push_forward(xs), t_sto),
            "stochastic interpolant, SDE": (
                sto.sample(n_eval, seed=seed, method="sde"),
                t_sto,
            ),
        }
        for method, (y, train_s) in samples.items():
            q = st.metrics.sample_quality(y, held)
            rows.append(
                {
                    "experiment": f"(a) {src}->8gaussians",
                    "method": method,
                    "metric": "W2",
                    "value": q.w2,
                    "noise_floor": q.noise_floor,
                    "ratio": q.ratio,
                    "train_s": train_s,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def part_b(steps: int, n_eval: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    n = 20_000
    x0 = np.concatenate([np.sqrt(0.5) * rng.standard_normal((n, 64)), np.zeros((n, 64))], 1)
    x1 = rng.standard_normal((n, 128))
    xs = np.concatenate(
        [np.sqrt(0.5) * rng.standard_normal((n_eval, 64)), np.zeros((n_eval, 64))], 1
    )
    chi = stats.chi(128)
    rows, norms = [], {}
    for name, kw in (
        ("deterministic flow, ODE", {}),
        ("stochastic interpolant, SDE", {"remedy": "auto"}),
    ):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flow = st.fit(
                x0, x1, steps=steps, seed=seed, progress=False, interpolant="linear", **kw
            )
        train_s = time.perf_counter() - t0
        y = flow.push_forward(xs) if not kw else flow.sample(n_eval, seed=seed)
        norms[name] = np.linalg.norm(y, axis=1)
        ks = stats.kstest(norms[name], chi.cdf).statistic
        floor = stats.kstest(
            np.linalg.norm(rng.standard_normal((n_eval, 128)), axis=1), chi.cdf
        ).statistic
        rows.append(
            {
                "experiment": "(b) N(0,.5 I_64)+0 -> N(0, I_128)",
                "method": name,
                "metric": "KS(|T(x)|, chi_128)",
                "value": ks,
                "noise_floor": floor,
                "ratio": ks / floor,
                "train_s": train_s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
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
    return rows


def part_c(steps: int, seed: int) -> list[dict]:
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    x = (x - x.mean(0)) / x.std()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
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
        ref = rng.standard_normal((2 * len(test), k))
        w2 = st.metrics.w2(z, ref[: len(test)])
        floor = st.metrics.w2(ref[: len(test)], ref[len(test) :])
        ks = stats.kstest(np.linalg.norm(z, axis=1), stats.chi(k).cdf).statistic
        if kw:
            nll = -float(np.mean(flow.latent_log_prob(test)))
        else:
            nll = st.metrics.nll(flow, test, method="hutchinson", probes=8)
        base = {"experiment": f"(c) digits -> N(0, I_{k})", "method": name, "train_s": train_s}
        rows.append(
            {
                **base,
                "metric": "W2(pulled back, N(0,I))",
                "value": w2,
                "noise_floor": floor,
                "ratio": w2 / floor,
            }
        )
        rows.append(
            {
                **base,
                "metric": f"KS(norms, chi_{k})",
                "value": ks,
                "noise_floor": float("nan"),
                "ratio": float("nan"),
            }
        )
        rows.append(
            {
                **base,
                "metric": f"held-out NLL (nats, {k}-D)",
                "value": nll,
                "noise_floor": float("nan"),
                "ratio": float("nan"),
            }
        )
        for r in rows[-3:]:
            print(json.dumps(r), flush=True)
    return rows


# the targets of the verdicts, stated above them in the results
TARGETS = (
    "Targets (a: line->8gaussians within 1.3x of the noise floor with a remedy; b: 128-D norm "
    "KS below 0.05 with a remedy):"
)


def _verdict(rows: list[dict], label: str, key: str, target: tuple[str, float]) -> list[str]:
    """The verdict line of part ``label`` (its experiments start with the label's first
    word), met by its best row (lowest ``key``) when that satisfies ``target``, an operator
    ``"<"`` or ``"<="`` and a bound; nothing when the part was not run."""
    runs = [r for r in rows if r["experiment"].startswith(label.split()[0])]
    if not runs:
        return []
    best = min(runs, key=lambda r: r[key])
    op, bound = target
    met = best[key] < bound if op == "<" else best[key] <= bound
    measure = "W2 ratio" if key == "ratio" else "KS"
    return [
        f"{label}, {best['method']}: {measure} {best[key]:.3g} (target {op} {bound:g}): "
        f"{'met' if met else 'NOT met'}"
    ]


def verdicts(rows: list[dict]) -> list[str]:
    """The targets of parts (a) and (b), met by the best remedy (a method other than the
    deterministic flow) of each; nothing for parts not run."""
    remedies = [r for r in rows if r["method"] != "deterministic flow, ODE"]
    line = _verdict(remedies, "(a) line->8gaussians", "ratio", ("<=", 1.3))
    return line + _verdict(remedies, "(b) 128-D norms", "value", ("<", 0.05))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 500 steps")
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
    notes = (
        f"{steps} steps, default fit settings otherwise, same network for every method. "
        f"(a) ratio = exact W2 (POT, {n_eval} vs {n_eval}) over the noise floor; SDE with the "
        "default eps0 = 4 (eps(t) = eps0 gamma(t)^2), 200 Heun steps. (b) value = KS "
        "statistic of the pushed norms against chi(128); noise_floor = KS of exact "
        "N(0, I_128) norms of the same size. "
        "Figure: results/bench_lowrank_norms.png. Target: line->8gaussians within 1.3x of the "
        "noise floor with a remedy, 128-D norm KS below 0.05. (c): digits standardised by one "
        "scale, 1,500 train / 297 test; the latent NLL is in the latent dimension, not "
        "comparable with the 64-D one (whose density is degenerate: rank 61); both fits keep "
        "the weights with the lowest validation loss (restore_best=True). (a) is a single "
        "evaluation: the floor itself (held-out vs held-out) fluctuates by about 20% between "
        "draws, so ratios below 1 mean 'at the noise floor'."
    )
    if verdicts(rows):
        notes += f"\n\n{TARGETS}\n\n" + "\n".join(f"- {v}" for v in verdicts(rows))
    suffix = ("" if args.parts == "abc" else "_" + args.parts) + ("_quick" if args.quick else "")
    path = write_results(
        "bench_lowrank" + suffix,
        rows,
        COLUMNS,
        {"steps": steps, "n_eval": n_eval, "seed": args.seed},
        notes,
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
