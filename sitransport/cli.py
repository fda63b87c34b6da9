"""The ``sitransport`` command (also ``python -m sitransport``).

``sitransport demo`` fits N(0, I) -> checkerboard on built-in data, prints the exact W2
(POT) of its samples against held-out target samples next to the noise floor, and writes a
summary figure. ``sitransport fit SOURCE TARGET -o DIR`` does the same for any pair of
built-in datasets, ``gaussian``, or ``.npy`` / ``.csv`` files of shape ``(n, d)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sitransport import datasets
from sitransport._validation import as_tensor
from sitransport.metrics import sample_quality
from sitransport.train import fit

__all__ = ["main"]


def _load_array(spec: str, n: int, seed: int) -> np.ndarray | str:
    """A dataset name, ``gaussian`` or a ``.npy``/``.csv`` file -> samples (or 'gaussian')."""
    if spec == "gaussian":
        return spec
    path = Path(spec)
    if path.suffix in (".npy", ".csv"):
        if not path.is_file():
            raise SystemExit(f"sitransport: no such file: {spec}")
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            x = np.loadtxt(path, delimiter=",", ndmin=2)
        if x.ndim != 2:
            raise SystemExit(
                f"sitransport: {spec} must hold an array of shape (n, d), got {x.shape}"
            )
        as_tensor(x, spec, min_samples=2)  # a clear error for non-float, NaN, wrong rank
        return x
    if spec in datasets.names():
        return datasets.sample(spec, n, seed=seed)
    raise SystemExit(
        f"sitransport: {spec!r} is neither a dataset ({', '.join(datasets.names())}), "
        "'gaussian', nor a .npy/.csv file"
    )


def _split_target(x1: np.ndarray, spec: str, n_eval: int, seed: int):
    """Training samples and 2 * m held-out samples of the target (m <= n_eval)."""
    if spec in datasets.names():
        return x1, datasets.sample(spec, 2 * n_eval, seed=seed + 1000)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x1.shape[0])
    m = min(n_eval, x1.shape[0] // 10)
    if m < 10:
        raise SystemExit(f"sitransport: {spec} has too few samples ({x1.shape[0]}) to evaluate")
    return x1[perm[2 * m :]], x1[perm[: 2 * m]]


def _source_draws(rho0, spec: str, d: int, n: int, seed: int) -> np.ndarray:
    if isinstance(rho0, str):
        return np.random.default_rng(seed + 2000).standard_normal((n, d))
    if spec in datasets.names():
        return datasets.sample(spec, n, seed=seed + 2000)
    return rho0[np.random.default_rng(seed + 2000).integers(0, rho0.shape[0], n)]


def run(
    source: str,
    target: str,
    out: Path,
    *,
    steps: int | None,
    n: int,
    n_eval: int,
    seed: int,
    progress: bool,
    fit_kwargs: dict,
    threads: int | None = None,
) -> dict:
    """Fit SOURCE -> TARGET, evaluate against held-out target samples, write outputs."""
    if threads is not None:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    rho0 = _load_array(source, n, seed + 1)
    rho1 = _load_array(target, n, seed)
    if isinstance(rho1, str):
        raise SystemExit("sitransport: TARGET must be samples (a dataset or a file)")
    x1, held = _split_target(rho1, target, n_eval, seed)
    m = held.shape[0] // 2
    kwargs = dict(fit_kwargs)
    if steps is not None:
        kwargs["steps"] = steps
    t0 = time.perf_counter()
    flow = fit(rho0, x1, seed=seed, progress=progress, **kwargs)
    train_s = time.perf_counter() - t0
    x0 = _source_draws(rho0, source, x1.shape[1], m, seed)
    res = flow.transport(x0)
    quality = sample_quality(res.x, held)
    report = {
        "source": source,
        "target": target,
        "w2": quality.w2,
        "noise_floor": quality.noise_floor,
        "ratio": quality.ratio,
        "n_eval": m,
        "train_seconds": train_s,
        "nfe": res.nfe,
        "steps": flow.config["steps"],
    }
    if flow.base is not None and flow.base.has_density:
        report["heldout_nll"] = float(-np.mean(flow.log_prob(held[: min(m, 1000)])))
    n_ot = min(m, 2000)
    ot_report = flow.transport_report(x0[:n_ot], held[:n_ot], seed=seed)
    report["transport"] = dataclasses.asdict(ot_report)
    flow.save(out / "flow.sit")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if x1.shape[1] == 2:
        from sitransport.plot import summary_figure

        fig = summary_figure(flow, held[:m], res.x, source=x0)
        fig.savefig(out / "summary.png", dpi=110)
    print(
        f"exact W2 (POT, {m} vs {m}): generated vs held-out = {quality.w2:.4f}; "
        f"noise floor (held-out vs held-out) = {quality.noise_floor:.4f}; "
        f"ratio = {quality.ratio:.3f}"
    )
    print(f"train {train_s:.1f} s, sampling NFE {res.nfe:.0f} (dopri5)")
    if "heldout_nll" in report:
        print(f"held-out NLL = {report['heldout_nll']:.4f} nats")
    print(f"optimal-transport certificates ({n_ot} samples):")
    print("  " + str(ot_report).replace("\n", "\n  "))
    written = ["flow.sit", "report.json"] + (["summary.png"] if x1.shape[1] == 2 else [])
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitransport", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser, default_out: str) -> None:
        q.add_argument("-o", "--out", default=default_out, help="output directory")
        q.add_argument("--steps", type=int, default=None, help="training steps")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--n", type=int, default=20_000, help="training samples per dataset")
        q.add_argument("--n-eval", type=int, default=5_000, help="held-out samples for W2")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    demo = sub.add_parser("demo", help="fit N(0, I) -> checkerboard and report")
    common(demo, "sitransport-demo")
    f = sub.add_parser("fit", help="fit SOURCE -> TARGET and report")
    f.add_argument("source", help="dataset name, 'gaussian', or a .npy/.csv file")
    f.add_argument("target", help="dataset name or a .npy/.csv file")
    common(f, "sitransport-fit")
    f.add_argument("--interpolant", default="trig")
    f.add_argument("--batch-size", type=int, default=None)
    f.add_argument("--lr", type=float, default=None)
    f.add_argument(
        "--coupling", default="independent", help="independent, exact_ot, global_ot, sinkhorn"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sitransport`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 when the input is rejected.

    Example:
        A tiny fit of N(0, I) -> moons (the printed report is silenced here):

        >>> import contextlib, io, json, os, tempfile
        >>> argv = ["fit", "gaussian", "moons", "--steps", "20", "--n", "500", "--n-eval", "100"]
        >>> with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        ...     status = main([*argv, "--no-progress", "-o", out])
        ...     files = sorted(os.listdir(out))
        ...     report = json.loads(open(os.path.join(out, "report.json")).read())
        >>> status, files
        (0, ['flow.sit', 'report.json', 'summary.png'])
        >>> report["steps"], report["n_eval"], report["w2"] > report["noise_floor"] > 0
        (20, 100, True)
    """
    args = _parser().parse_args(argv)
    threads = None
    if args.command == "demo":  # ~1 minute on 2 cores: 12k steps on one thread (small MLP)
        source, target, kwargs, threads = "gaussian", "checkerboard", {}, 1
        if args.steps is None:
            args.steps = 12_000
    else:
        source, target = args.source, args.target
        kwargs = {"interpolant": args.interpolant, "coupling": args.coupling}
        if args.batch_size is not None:
            kwargs["batch_size"] = args.batch_size
        if args.lr is not None:
            kwargs["lr"] = args.lr
    try:
        run(
            source,
            target,
            Path(args.out),
            steps=args.steps,
            n=args.n,
            n_eval=args.n_eval,
            seed=args.seed,
            progress=not args.no_progress,
            fit_kwargs=kwargs,
            threads=threads,
        )
    except (ValueError, TypeError) as err:
        print(f"sitransport: error: {err}", file=sys.stderr)
        return 2
    return 0
