"""The ``sitransport`` command (also ``python -m sitransport``).

``sitransport demo`` fits N(0, I) -> checkerboard on built-in data, prints the exact W2
(POT) of its samples against held-out target samples next to the noise floor and the Sinkhorn
diagnostic logged during training (:mod:`sitransport.train.diagnostics`) next to its own
floor, and writes a summary figure (samples, trajectories, density, and the loss and the
Sinkhorn divergence against the training steps). ``sitransport fit SOURCE TARGET -o DIR``
does the same for any pair of built-in datasets, ``gaussian``, or ``.npy`` / ``.csv`` files
of shape ``(n, d)``.

A ``.csv`` file is UTF-8 text (a leading byte-order mark is ignored) holding one sample a
line. Its numbers are separated by ``;``, by ``,`` or by spaces and tabs: the first line of
numbers decides which (a ``;`` in it means ``;``, else a ``,`` means ``,``, else spaces and
tabs), and every line uses the same separator and holds as many numbers. A number may be
enclosed in double quotes (``"1.5"``); blank lines and everything from a ``#`` to the end of
a line are ignored; a decimal comma is not read. A first line without any number (a header
such as ``x,y``) is skipped, with a note on stderr. A line that breaks these rules is
named by its line number in the file.

``sitransport fit SOURCE TARGET --condition FILE`` fits a conditional flow: ``FILE`` (``.npy``
or ``.csv``) holds one condition per sample of ``TARGET`` (which must then be a file), in the
same order: labels (a 1-D ``.npy`` array of integers or strings; a ``.csv`` file of one
column of integers, or of any other words, which are labels as written, a double-quoted
label unquoted) or float features (a float ``.npy`` array ``(n,)`` or ``(n, k)``; a ``.csv``
file of numbers, read as above, that are not all integers in one column). The held-out
rows keep their conditions: samples are generated with the conditions of held-out rows,
and the held-out NLL is conditional. A conditional run writes ``flow.sit`` and
``report.json`` (its ``"condition"`` names the kind and the labels or the number of
features); the optimal-transport diagnostics and the figure, which need one map, are
skipped.

``sitransport sample FLOW -n N -o OUT`` draws ``N`` samples of a saved flow into ``OUT``
(``.npy``, or ``.csv`` with ``,``); for a conditional flow ``--condition VALUE`` gives one
condition for all samples (an integer or a word is a label, comma-separated numbers a
feature vector) or ``--condition FILE`` (``.npy`` or ``.csv``, as above) one per sample.

Existing outputs (``flow.sit``, ``report.json``, ``summary.png``) in the output directory
are kept: the command refuses to start unless ``--overwrite`` is passed. Every rejected
input (a flag out of range, a missing or unreadable file, an output directory that cannot
be written, an output that exists) ends the command with status 2 and a one-line message
naming the flag or file, before anything is written; the output directory is created only
once the outputs exist. Ctrl-C ends it with status 130 and the one line ``interrupted``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from sitransport import datasets
from sitransport._cli_files import CONDITION_FLAG, condition_value, read_condition, read_file
from sitransport._validation import numpy_generator
from sitransport.couplings import coupling_names
from sitransport.errors import SitransportError
from sitransport.fitting import fit
from sitransport.interpolants import interpolant_names
from sitransport.metrics import sample_quality, transport_report

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = ["main"]

_OUT = "argument -o/--out"


def _load_array(spec: str, n: int, seed: int, role: str) -> np.ndarray | str:
    """A dataset name, ``gaussian`` or a ``.npy``/``.csv`` file -> samples (or 'gaussian')."""
    if spec == "gaussian":
        return spec
    if Path(spec).suffix in (".npy", ".csv"):
        return read_file(Path(spec), role)
    if spec in datasets.names():
        return datasets.sample(spec, n, seed=seed)
    raise ValueError(
        f"{role} {spec!r} is neither a dataset ({', '.join(datasets.names())}), "
        "'gaussian', nor a .npy/.csv file"
    )


def _split_target(x1: np.ndarray, spec: str, n_eval: int, seed: int):
    """Training samples and 2 * m held-out samples of the target (m <= n_eval), and the
    permutation of a file's rows (``None`` for a dataset)."""
    if spec in datasets.names():
        return x1, datasets.sample(spec, 2 * n_eval, seed=seed + 1000), None
    perm = numpy_generator(seed).permutation(x1.shape[0])
    m = min(n_eval, x1.shape[0] // 10)
    if m < 10:
        raise ValueError(
            f"TARGET {spec!r} has too few samples ({x1.shape[0]}) to evaluate: a tenth of them "
            "(at least 10) is held out twice; --n-eval caps that tenth"
        )
    return x1[perm[2 * m :]], x1[perm[: 2 * m]], perm


def _source_draws(rho0, spec: str, d: int, n: int, seed: int) -> np.ndarray:
    if isinstance(rho0, str) or spec in datasets.names():  # "gaussian" or a toy data set
        return datasets.draw(spec, n, seed + 2000, dim=d)
    return rho0[numpy_generator(seed + 2000).integers(0, rho0.shape[0], n)]


def _check_out(out: Path) -> None:
    """Raise ``ValueError`` naming ``-o`` unless ``out`` is, or can be made, a writable
    directory. Nothing is left behind: the probe directory is removed."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{_OUT}: {str(out)!r} exists and is not a directory")
    parent = out if out.exists() else next(p for p in out.absolute().parents if p.exists())
    if not parent.is_dir():
        raise ValueError(f"{_OUT}: cannot create {str(out)!r}: {str(parent)!r} is not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=".sitransport-probe-", dir=parent)
    except OSError as err:
        raise ValueError(f"{_OUT}: cannot write to {str(out)!r}: {err.strerror or err}") from None
    shutil.rmtree(probe, ignore_errors=True)


def _conditions(path: str | None, target: str, rows: int) -> np.ndarray | None:
    """The conditions of ``--condition`` (one row per TARGET sample), or ``None``."""
    if path is None:
        return None
    if Path(target).suffix not in (".npy", ".csv"):
        raise ValueError(
            f"{CONDITION_FLAG} needs TARGET as a .npy/.csv file (one condition per sample, in "
            f"order), got {target!r}"
        )
    c = read_condition(Path(path))
    if c.shape[0] != rows:
        raise ValueError(
            f"{CONDITION_FLAG} {path!r} has {c.shape[0]} rows, TARGET {target!r} has {rows}: one "
            "condition per sample"
        )
    return c


def _condition_report(flow) -> dict:
    enc = flow.condition
    if enc.kind == "labels":
        return {"kind": "labels", "labels": list(enc.labels)}
    return {"kind": "features", "features": enc.dim}


def _output_names(figure: bool) -> list[str]:
    """The files a run writes (the figure is drawn for 2-D data only)."""
    return ["flow.sit", "report.json"] + (["summary.png"] if figure else [])


def _check_free(out: Path, names: list[str], overwrite: bool) -> None:
    """Raise ``ValueError`` naming ``-o``, the file and ``--overwrite`` if an output exists."""
    for name in names:
        path = out / name
        if not overwrite and (path.exists() or path.is_symlink()):
            raise ValueError(f"{_OUT}: {str(path)!r} exists; pass --overwrite to replace it")


def _write_outputs(out: Path, flow, report: dict, figure: Callable | None) -> list[str]:
    """Create ``out`` and write the flow, the report and the figure; OS errors name ``-o``."""
    written = _output_names(figure is not None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        flow.save(out / "flow.sit")
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        if figure is not None:
            figure().savefig(out / "summary.png", dpi=110)
    except OSError as err:
        raise ValueError(f"{_OUT}: cannot write to {str(out)!r}: {err}") from None
    return written


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
    overwrite: bool = False,
    condition: str | None = None,
) -> dict:
    """Fit SOURCE -> TARGET, evaluate against held-out target samples, write outputs.

    Raises:
        ValueError: a rejected input (the message names the flag or file), or an output in
            ``out`` that exists and ``overwrite`` is false; nothing is written.
    """
    _check_out(out)
    rho0 = _load_array(source, n, seed + 1, "SOURCE")
    rho1 = _load_array(target, n, seed, "TARGET")
    if isinstance(rho1, str):
        raise ValueError("TARGET must be samples (a dataset or a .npy/.csv file), got 'gaussian'")
    c = _conditions(condition, target, rho1.shape[0])
    draw_figure = rho1.shape[1] == 2 and c is None
    _check_free(out, _output_names(draw_figure), overwrite)
    x1, held, perm = _split_target(rho1, target, n_eval, seed)
    if threads is not None:
        torch.set_num_threads(threads)
    m = held.shape[0] // 2
    kwargs = dict(fit_kwargs)
    if steps is not None:
        kwargs["steps"] = steps
    c_held = None
    if c is not None:
        kwargs["condition"], c_held = c[perm[2 * m :]], c[perm[: 2 * m]]
    t0 = time.perf_counter()
    # the command's options include no latent=: fit returns a TransportFlow
    flow = cast("TransportFlow", fit(rho0, x1, seed=seed, progress=progress, **kwargs))
    train_s = time.perf_counter() - t0
    x0 = _source_draws(rho0, source, x1.shape[1], m, seed)
    # conditional: generated with the other half's conditions, as the noise floor's halves
    res = flow.transport(x0, condition=None if c_held is None else c_held[m:])
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
        "steps": flow.config.training.steps if flow.config is not None else None,
    }
    k = min(m, 1000)
    if flow.base is not None and flow.base.has_density:
        where = None if c_held is None else c_held[:k]
        report["heldout_nll"] = float(-np.mean(flow.log_prob(held[:k], condition=where)))
    n_ot = min(m, 2000)
    ot_report = None
    if c is None:
        ot_report = transport_report(flow, x0[:n_ot], held[:n_ot], seed=seed)
        report["transport"] = dataclasses.asdict(ot_report)
    else:
        report["condition"] = _condition_report(flow)
    diagnostic = _sinkhorn_report(flow.history)
    if diagnostic is not None:
        report["sinkhorn"] = diagnostic
    figure = None
    if draw_figure:
        from sitransport.plot import summary_figure  # lazy: matplotlib only for a figure

        def figure():
            return summary_figure(flow, held[:m], res.x, source=x0)

    written = _write_outputs(out, flow, report, figure)
    print(
        f"exact W2 (POT, {m} vs {m}): generated vs held-out = {quality.w2:.4f}; "
        f"noise floor (held-out vs held-out) = {quality.noise_floor:.4f}; "
        f"ratio = {quality.ratio:.3f}"
    )
    print(f"train {train_s:.1f} s, sampling NFE {res.nfe:.0f} (dopri5)")
    if "heldout_nll" in report:
        print(f"held-out NLL = {report['heldout_nll']:.4f} nats")
    if diagnostic is not None:
        print(_sinkhorn_line(diagnostic))
    if ot_report is not None:
        print(f"optimal-transport diagnostics ({n_ot} samples):")
        print("  " + str(ot_report).replace("\n", "\n  "))
    else:
        print("conditional flow: generated with held-out conditions; no OT diagnostics")
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return report


def _sinkhorn_report(history) -> dict | None:
    """The training's Sinkhorn diagnostic for ``report.json``, or ``None`` without one."""
    if history is None or "sinkhorn" not in history:
        return None
    keys = "n blur blur_relative floor floor_sd floor_draws seconds cost solver".split()
    out = {k: history.attrs[f"sinkhorn_{k}"] for k in keys}
    out["steps"] = history["sinkhorn_step"].values.tolist()
    out["values"] = history["sinkhorn"].values.tolist()
    return out


def _sinkhorn_line(d: dict) -> str:
    """One printed line: the diagnostic's first and last values, floor and cost."""
    return (
        f"Sinkhorn divergence during training (geomloss S_eps, {d['n']} flow samples vs "
        f"{d['n']} held out, blur {d['blur_relative']:g} of the data scale): step "
        f"{d['steps'][0]}: {d['values'][0]:.4f} -> step {d['steps'][-1]}: "
        f"{d['values'][-1]:.4f}; noise floor {d['floor']:.4f} +- {d['floor_sd']:.4f} (spread "
        f"of {d['floor_draws']} held-out draws); cost {d['seconds']:.1f} s = "
        f"{100 * d['cost']:.1f} % of training"
    )


def sample(
    flow_file: str, n: int, out: Path, *, seed: int, condition: str | None, overwrite: bool
) -> np.ndarray:
    """``sitransport sample``: ``n`` samples of the saved flow ``flow_file`` into ``out``.

    Raises:
        ValueError: a rejected input (the message names the flag or file): ``out`` not a
            ``.npy``/``.csv`` path or existing without ``overwrite``; an unreadable flow; a
            condition the flow refuses (or one for an unconditional flow).
    """
    from sitransport.io import load  # the flow files' reader, only for this command

    if out.suffix not in (".npy", ".csv"):
        raise ValueError(f"{_OUT}: must end in .npy or .csv, got {str(out)!r}")
    if not overwrite and (out.exists() or out.is_symlink()):
        raise ValueError(f"{_OUT}: {str(out)!r} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"{_OUT}: the folder of {str(out)!r} does not exist")
    if not Path(flow_file).is_file():
        raise ValueError(f"FLOW: no such file: {flow_file!r}")
    flow = load(flow_file)
    c = None if condition is None else condition_value(condition)
    y = flow.sample(n, seed=seed, condition=c) if c is not None else flow.sample(n, seed=seed)
    try:
        if out.suffix == ".npy":
            np.save(out, y)
        else:
            np.savetxt(out, y.reshape(n, -1), delimiter=",")
    except OSError as err:
        raise ValueError(f"{_OUT}: cannot write {str(out)!r}: {err}") from None
    print(f"wrote {n} samples of shape {tuple(y.shape[1:])} to {out}")
    return y


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= minimum`` within int64 (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum}, got {text!r}"
            ) from None
        if not minimum <= value < 2**63:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum} (and < 2**63), got {value}"
            )
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _out_folder(text: str) -> str:
    """An argparse ``type``: a non-empty path (``""`` would be the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a directory, got an empty path")
    return text


def _positive_float(text: str) -> float:
    """An argparse ``type``: a finite number ``> 0``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitransport", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser, default_out: str) -> None:
        q.add_argument(
            "-o", "--out", type=_out_folder, default=default_out, help="output directory"
        )
        q.add_argument(
            "--overwrite",
            action="store_true",
            help="replace flow.sit, report.json and summary.png if they exist in the output "
            "directory (without it the command refuses to start)",
        )
        q.add_argument("--steps", type=_int_at_least(1), default=None, help="training steps")
        q.add_argument("--seed", type=_int_at_least(0), default=0)
        q.add_argument(
            "--n", type=_int_at_least(2), default=20_000, help="training samples per dataset"
        )
        q.add_argument(
            "--n-eval", type=_int_at_least(1), default=5_000, help="held-out samples for W2"
        )
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    demo = sub.add_parser("demo", help="fit N(0, I) -> checkerboard and report")
    common(demo, "sitransport-demo")
    files = (
        "a .npy/.csv file of shape (n, d) (.csv: one sample a line, numbers separated by ';', "
        "',' or spaces, maybe in double quotes; a first line of names is skipped)"
    )
    f = sub.add_parser("fit", help="fit SOURCE -> TARGET and report")
    f.add_argument("source", help=f"dataset name, 'gaussian', or {files}")
    f.add_argument("target", help=f"dataset name or {files}")
    common(f, "sitransport-fit")
    f.add_argument(
        "--interpolant",
        default=None,
        help=", ".join(interpolant_names()) + " (default: trig, or the pick of --coupling ot)",
    )
    f.add_argument("--batch-size", type=_int_at_least(1), default=None)
    f.add_argument("--lr", type=_positive_float, default=None)
    f.add_argument("--coupling", default="independent", help=", ".join(coupling_names()))
    f.add_argument(
        "--condition",
        default=None,
        help="a .npy/.csv file of one condition per TARGET sample (labels or float "
        "features): fit a conditional flow",
    )
    s = sub.add_parser("sample", help="draw samples of a saved flow into a .npy/.csv file")
    s.add_argument("flow", help="a flow file written by fit (flow.sit)")
    s.add_argument("-n", type=_int_at_least(1), default=1000, help="number of samples")
    s.add_argument("-o", "--out", type=_out_folder, default="samples.npy", help=".npy or .csv")
    s.add_argument("--seed", type=_int_at_least(0), default=0)
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    s.add_argument(
        "--condition",
        default=None,
        help="a conditional flow's condition: a label, comma-separated features, or a "
        ".npy/.csv file of one row per sample",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sitransport`` command with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the command-line arguments without the program name, e.g. ``["demo", "-o", "out"]``;
            ``None``: ``sys.argv[1:]``. Default ``None``.

    Returns:
        The exit status: 0 on success, 2 when the input is rejected (a one-line message on
        stderr names the flag or file; nothing is written), also when an output exists and
        ``--overwrite`` is not given, 1 when the run fails with one of the library's errors
        (:mod:`sitransport.errors`, e.g. training diverged; one line too), 130 on Ctrl-C
        (the one line ``interrupted``).

    Raises:
        SystemExit: status 2, from argparse, for an unknown flag or a flag value out of
            range (e.g. ``--n-eval 0``, an empty ``-o``); status 0 for ``--help``.

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
    if args.command == "sample":
        return _run_sample(args)
    threads = None
    condition = None
    if args.command == "demo":  # ~1 minute on 2 cores: 12k steps on one thread (small MLP)
        source, target, kwargs, threads = "gaussian", "checkerboard", {}, 1
        if args.steps is None:
            args.steps = 12_000
    else:
        source, target = args.source, args.target
        kwargs = {"coupling": args.coupling}
        if args.interpolant is not None:
            kwargs["interpolant"] = args.interpolant
        if args.batch_size is not None:
            kwargs["batch_size"] = args.batch_size
        if args.lr is not None:
            kwargs["lr"] = args.lr
        condition = args.condition
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
            overwrite=args.overwrite,
            condition=condition,
        )
    except (ValueError, TypeError, SitransportError) as err:
        message = " ".join(str(err).split())  # one line
        print(f"sitransport {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, TypeError)) else 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; 128 + SIGINT
        print(f"sitransport {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    """``main`` for ``sitransport sample``: the same exit statuses."""
    try:
        sample(args.flow, args.n, Path(args.out), seed=args.seed, condition=args.condition,
               overwrite=args.overwrite)  # fmt: skip
    except (ValueError, TypeError, SitransportError) as err:
        message = " ".join(str(err).split())
        print(f"sitransport sample: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, TypeError)) else 1
    except KeyboardInterrupt:
        print("sitransport sample: interrupted", file=sys.stderr)
        return 130
    return 0
