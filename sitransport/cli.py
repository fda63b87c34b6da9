"""The ``sitransport`` command (also ``python -m sitransport``).

``sitransport demo`` fits N(0, I) -> checkerboard on built-in data, prints the exact W2
(POT) of its samples against held-out target samples next to the noise floor, and writes a
summary figure. ``sitransport fit SOURCE TARGET -o DIR`` does the same for any pair of
built-in datasets, ``gaussian``, or ``.npy`` / ``.csv`` files of shape ``(n, d)``.

A ``.csv`` file is UTF-8 text (a leading byte-order mark is ignored) holding one sample a
line. Its numbers are separated by ``;``, by ``,`` or by spaces and tabs: the first line of
numbers decides which (a ``;`` in it means ``;``, else a ``,`` means ``,``, else spaces and
tabs), and every line uses the same separator and holds as many numbers. A number may be
enclosed in double quotes (``"1.5"``); blank lines and everything from a ``#`` to the end of
a line are ignored; a decimal comma is not read. A first line without any number (a header
such as ``x,y``) is skipped, with a note on stderr. A line that breaks these rules is
named by its line number in the file.

Existing outputs (``flow.sit``, ``report.json``, ``summary.png``) in the output directory
are kept: the command refuses to start unless ``--overwrite`` is passed. Every rejected
input (a flag out of range, a missing or unreadable file, an output directory that cannot
be written, an output that exists) ends the command with status 2 and a one-line message
naming the flag or file, before anything is written; the output directory is created only
once the outputs exist. Ctrl-C ends it with status 130 and the one line ``interrupted``.
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import json
import math
import re
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
from sitransport._validation import as_tensor, numpy_generator
from sitransport.couplings import coupling_names
from sitransport.errors import SitransportError
from sitransport.fitting import fit
from sitransport.interpolants import interpolant_names
from sitransport.metrics import sample_quality, transport_report

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = ["main"]

_OUT = "argument -o/--out"


def _read_csv(path: Path, role: str) -> np.ndarray:
    """The numbers of a ``.csv`` file in the forms of the module docstring; errors name
    ``role``, the file and the line."""
    name = f"{role} {str(path)!r}"
    try:
        with path.open(encoding="utf-8-sig") as f:
            values, width = _csv_values(f, path, name)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{name} cannot be read as UTF-8 text: {err}") from None
    if not values:
        raise ValueError(f"{name} holds no numbers")
    return np.frombuffer(values, dtype=np.float64).reshape(-1, width)


def _csv_values(lines, path: Path, name: str) -> tuple[array.array, int]:
    """All numbers of ``lines`` in one flat array, and the number of columns."""
    values = array.array("d")
    sep, width, first = None, 0, 0  # set by the first line of numbers (first: its number)
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not first and _is_header(text):
            print(
                f"sitransport: skipped the header row of {str(path)!r}: {line.strip()!r}",
                file=sys.stderr,
            )
            first = -1  # only the first line may be a header
            continue
        if first <= 0:
            first, sep = number, ";" if ";" in text else "," if "," in text else None
        fields = text.split(sep)
        if width and len(fields) != width:
            raise ValueError(
                f"{name} line {number} has {_numbers(len(fields))}, line {first} has {width} "
                f"({_separated(sep, first)})"
            )
        width = len(fields)
        try:  # the common case, fast: plain numbers
            if '"' in text or "_" in text:
                raise ValueError
            row = [float(field) for field in fields]
        except ValueError:
            row = _csv_row(fields, f"{name} line {number}", sep, first)
        values.extend(row)
    return values, width


def _csv_row(fields: list[str], where: str, sep: str | None, first: int) -> list[float]:
    """The numbers of one line, quotes dropped; an error names the column."""
    row = []
    for column, field in enumerate(fields, 1):
        text = _unquote(field.strip())
        if not _is_number(text):
            raise ValueError(f"{where}, column {column}: {_not_a_number(text, sep, first)}")
        row.append(float(text))
    return row


def _is_header(text: str) -> bool:
    """A line of names: no word of it, split at ``;``, ``,`` and spaces, is a number."""
    return not any(_is_number(_unquote(word)) for word in re.split(r"[,;\s]+", text))


def _unquote(text: str) -> str:
    """``"1.5"`` -> ``1.5``: one pair of double quotes around a whole field is dropped."""
    return text[1:-1].strip() if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _numbers(k: int) -> str:
    return f"{k} number" + "s" * (k != 1)


def _not_a_number(field: str, sep: str | None, first: int) -> str:
    """Why ``field`` was not read: the separator in use, and a decimal comma if it is one."""
    why = f"could not convert string {field!r} to a number ({_separated(sep, first)})"
    if re.fullmatch(r"[+-]?\d*,\d+", field):
        why += "; write numbers with a decimal point, not a comma"
    return why


def _separated(sep: str | None, first: int) -> str:
    seps = {";": "';'", ",": "','", None: "spaces or tabs"}
    return f"numbers are separated by {seps[sep]}, as on line {first}"


def _is_number(text: str) -> bool:
    """Whether ``float`` reads ``text``, without the underscores it allows (``1_000``)."""
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


def _read_file(path: Path, role: str) -> np.ndarray:
    """The array in a ``.npy`` or ``.csv`` file; errors name ``role`` and the file."""
    if not path.is_file():
        raise ValueError(f"{role}: no such file: {str(path)!r}")
    if path.suffix == ".csv":
        x = _read_csv(path, role)
    else:
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(
                f"{role} {str(path)!r} is not a readable .npy array: {type(err).__name__}: {err}"
            ) from None
    name = f"{role} {str(path)!r}"
    if x.ndim != 2:
        raise ValueError(f"{name} must hold an array of shape (n, d), got {x.shape}")
    if x.dtype not in (np.float32, np.float64):  # the hint names no file: no code from a name
        raise TypeError(
            f"{name} must have a floating dtype (float32 or float64), got dtype {x.dtype}; "
            "save the array as floats, e.g. np.save(path, x.astype(np.float64))"
        )
    as_tensor(x, name, min_samples=2)  # a clear error for NaN, too few rows
    return x


def _load_array(spec: str, n: int, seed: int, role: str) -> np.ndarray | str:
    """A dataset name, ``gaussian`` or a ``.npy``/``.csv`` file -> samples (or 'gaussian')."""
    if spec == "gaussian":
        return spec
    if Path(spec).suffix in (".npy", ".csv"):
        return _read_file(Path(spec), role)
    if spec in datasets.names():
        return datasets.sample(spec, n, seed=seed)
    raise ValueError(
        f"{role} {spec!r} is neither a dataset ({', '.join(datasets.names())}), "
        "'gaussian', nor a .npy/.csv file"
    )


def _split_target(x1: np.ndarray, spec: str, n_eval: int, seed: int):
    """Training samples and 2 * m held-out samples of the target (m <= n_eval)."""
    if spec in datasets.names():
        return x1, datasets.sample(spec, 2 * n_eval, seed=seed + 1000)
    perm = numpy_generator(seed).permutation(x1.shape[0])
    m = min(n_eval, x1.shape[0] // 10)
    if m < 10:
        raise ValueError(
            f"TARGET {spec!r} has too few samples ({x1.shape[0]}) to evaluate: a tenth of them "
            "(at least 10) is held out twice; --n-eval caps that tenth"
        )
    return x1[perm[2 * m :]], x1[perm[: 2 * m]]


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
    _check_free(out, _output_names(rho1.shape[1] == 2), overwrite)
    x1, held = _split_target(rho1, target, n_eval, seed)
    if threads is not None:
        torch.set_num_threads(threads)
    m = held.shape[0] // 2
    kwargs = dict(fit_kwargs)
    if steps is not None:
        kwargs["steps"] = steps
    t0 = time.perf_counter()
    # the command's options include no latent=: fit returns a TransportFlow
    flow = cast("TransportFlow", fit(rho0, x1, seed=seed, progress=progress, **kwargs))
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
        "steps": flow.config.training.steps if flow.config is not None else None,
    }
    if flow.base is not None and flow.base.has_density:
        report["heldout_nll"] = float(-np.mean(flow.log_prob(held[: min(m, 1000)])))
    n_ot = min(m, 2000)
    ot_report = transport_report(flow, x0[:n_ot], held[:n_ot], seed=seed)
    report["transport"] = dataclasses.asdict(ot_report)
    figure = None
    if x1.shape[1] == 2:
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
    print(f"optimal-transport diagnostics ({n_ot} samples):")
    print("  " + str(ot_report).replace("\n", "\n  "))
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return report


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
    f.add_argument("--interpolant", default="trig", help=", ".join(interpolant_names()))
    f.add_argument("--batch-size", type=_int_at_least(1), default=None)
    f.add_argument("--lr", type=_positive_float, default=None)
    f.add_argument("--coupling", default="independent", help=", ".join(coupling_names()))
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
            overwrite=args.overwrite,
        )
    except (ValueError, TypeError, SitransportError) as err:
        message = " ".join(str(err).split())  # one line
        print(f"sitransport {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, TypeError)) else 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; 128 + SIGINT
        print(f"sitransport {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
