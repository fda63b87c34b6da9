"""Shared plumbing of the benchmark scripts: environment record, JSON + Markdown output,
our fit configurations (:class:`OurFit`) and the peers' training loop."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from freshness import fingerprint
from torch.optim.swa_utils import AveragedModel

from sitransport.config import MLPSpec
from sitransport.flow import Normalization, TransportFlow
from sitransport.nn.builder import build_from_spec
from sitransport.paths import PathSettings
from sitransport.train import LRSchedule, TrainSettings, ema_decay

# the committed results; ``SITRANSPORT_BENCH_RESULTS`` sends a run elsewhere (CI's quick runs,
# compared with the committed ones by ``check_quick.py``)
_START = time.perf_counter()  # the run's wall time is recorded with its results
RESULTS = Path(
    os.environ.get("SITRANSPORT_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)
# what a run of ``fit`` exercises, for the freshness record of the results (freshness.py)
FIT_MODULES = (
    "sitransport.config",
    "sitransport.couplings",
    "sitransport.distributed",
    "sitransport.ends",
    "sitransport.fitting",
    "sitransport.flow",
    "sitransport.interpolants",
    "sitransport.nn",
    "sitransport.ode",
    "sitransport.train",
    "sitransport.losses",
    "sitransport.paths",
    "sitransport._validation",
)


def _script_path() -> str:
    """The running script relative to the repository root (results are reproduced from it)."""
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parents[1]
    return str(script.relative_to(root)) if script.is_relative_to(root) else sys.argv[0]


def environment() -> dict[str, Any]:
    """Versions, git SHA and machine facts recorded next to every result."""
    import ot
    import torchdiffeq

    import sitransport

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        sha = ""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_sha": sha or "unknown",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pot": ot.__version__,
        "torchdiffeq": getattr(torchdiffeq, "__version__", "unknown"),
        "sitransport": sitransport.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "command": shlex.join(["python", _script_path(), *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - _START, 1),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if not np.isfinite(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Spread:
    """Repeated measurements of one quantity (evaluation draws, training seeds): their mean
    and standard error, the numbers a verdict is judged on."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ValueError(f"a spread needs at least 2 values, got {len(self.values)}")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def se(self) -> float:
        """Standard error of the mean: sample std (ddof 1) over sqrt(n)."""
        return float(np.std(self.values, ddof=1) / np.sqrt(len(self.values)))

    def __str__(self) -> str:
        return f"{self.mean:.3g} +- {self.se:.2g} (n={self.n})"


def spread(values: Sequence[float]) -> Spread:
    return Spread(tuple(float(v) for v in values))


@dataclass(frozen=True)
class Estimate:
    """A mean and its standard error from ``n`` measurements, derived rather than measured
    directly (:func:`ratio_of_means`)."""

    mean: float
    se: float
    n: int


def ratio_of_means(num: Spread, den: Spread) -> Estimate:
    """``num.mean / den.mean`` with its first-order (delta-method) standard error, for
    independent measurements: ``r sqrt((se_n / m_n)^2 + (se_d / m_d)^2)``."""
    r = num.mean / den.mean
    rel = np.hypot(num.se / num.mean, den.se / den.mean)
    return Estimate(float(r), float(abs(r) * rel), num.n)


def noise_floor(sample: Callable[[int, int], np.ndarray], n: int, draws: int, seed: int) -> Spread:
    """Exact W2 between two independent draws of ``n`` target points (``sample(n, seed)``),
    over ``draws`` pairs (seeds ``seed``, ``seed + 1``, ...): what a perfect model scores at
    this size. It depends on the target and ``n`` only, so a benchmark measures it once per
    target, with more draws than a fit gets, and divides its mean W2 by it
    (:func:`ratio_of_means`): a floor per evaluation draw carries its own fluctuation (some
    20-30% on the 2-D mixtures at 5,000 points) into every ratio."""
    from sitransport.metrics import w2

    out = []
    for k in range(draws):
        pair = sample(2 * n, seed + k)
        out.append(float(w2(pair[:n], pair[n:])))
    return spread(out)


def beyond_noise(s: Spread | Estimate, op: str, bound: float) -> bool:
    """Whether ``mean op bound`` holds beyond two standard errors (``op``: ``<=``, ``<``,
    ``>=``, ``>``): the mean plus (for an upper bound) or minus two SE still satisfies it."""
    if op in ("<=", "<"):
        edge = s.mean + 2 * s.se
        return edge <= bound if op == "<=" else edge < bound
    if op in (">=", ">"):
        edge = s.mean - 2 * s.se
        return edge >= bound if op == ">=" else edge > bound
    raise ValueError(f"op must be one of '<=', '<', '>=', '>', got {op!r}")


def verdict_line(label: str, measure: str, s: Spread | Estimate, op: str, bound: float) -> str:
    """``label: measure mean +- se (n=k; target op bound beyond 2 SE): met`` (or
    ``NOT met``): the line the benchmarks page counts."""
    met = beyond_noise(s, op, bound)
    return (
        f"{label}: {measure} {s.mean:.3g} +- {s.se:.2g} (n={s.n}; target {op} "
        f"{bound:g} beyond 2 SE): {'met' if met else 'NOT met'}"
    )


def write_results(
    name: str,
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    params: dict[str, Any],
    notes: str = "",
    *,
    modules: Sequence[str],
    directory: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<directory>/<name>.json`` and ``<directory>/<name>.md`` (``directory``:
    ``results/``), the JSON with ``extra``'s keys beside the rows; return the Markdown path.

    ``modules``: the dotted names of the modules the run exercises (the script's
    ``MODULES``); the code hash of each of their files and of the script is recorded, so
    ``freshness.py`` can tell when the result no longer describes the code."""
    directory = RESULTS if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = environment()
    payload = {"benchmark": name, "parameters": params, "environment": env, "rows": rows}
    payload["code"] = fingerprint(modules, _script_path())
    payload.update(extra or {})
    (directory / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    md = [
        f"# {name}",
        "",
        f"Command: `{env['command']}`  ",
        f"git {env['git_sha'][:12]}, torch {env['torch']}, POT {env['pot']}, "
        f"{env['cpu_count']} CPUs, {env['torch_threads']} torch thread(s), {env['date']}",
        "",
        markdown_table(rows, columns),
        "",
    ]
    if notes:
        md += [notes, ""]
    path = directory / f"{name}.md"
    path.write_text("\n".join(md))
    return path


# ------------------------------------------------------ our configurations (bench_ot, bench_ot_map)


@dataclass(frozen=True)
class OurFit:
    """One of our configurations in a benchmark's table: the fit keywords that tell the
    methods apart (the shared ones, steps, batch, network, come from the run).

    Args:
        interpolant: ``fit``'s ``interpolant=``.
        coupling: ``fit``'s ``coupling=``.
        network: ``fit``'s ``network=`` (a name or an :class:`~sitransport.config.MLPSpec`);
            ``None``: the run's (not among the keywords).
        ascent: for a max-min fit, its path ascent as a function of the run's steps (the
            step the path freezes at depends on them); ``None``: a fixed path.

    Example:
        >>> fourier = OurFit("fourier", ascent=lambda steps: PathSettings(stop=steps // 2))
        >>> fourier.keywords(300)["optimize_path"].stop
        150
    """

    interpolant: str | dict = "trig"
    coupling: str | dict = "independent"
    network: str | MLPSpec | None = None
    ascent: Callable[[int], PathSettings] | None = None

    def keywords(self, steps: int) -> dict[str, Any]:
        """``fit`` keywords of this configuration for a run of ``steps`` steps."""
        out = {
            "interpolant": self.interpolant,
            "coupling": self.coupling,
            "optimize_path": False if self.ascent is None else self.ascent(steps),
        }
        return out if self.network is None else {**out, "network": self.network}


# ------------------------------------------------------------- peers (bench_ot, bench_peers)

# the 2-D tasks on which Ryzhakov et al., "Explicit Flow Matching: On the Theory of Flow
# Matching Algorithms with Applications" (arXiv:2402.03232), re-ran I-CFM and OT-CFM (Tong et
# al., "Improving and generalizing flow-based generative models with minibatch optimal
# transport", arXiv:2302.00482) and reported W2 and normalised path energy: name -> (source, target)
OT_TASKS = {
    "N->moons": ("gaussian", "moons"),
    "N->8gaussians": ("gaussian", "8gaussians"),
    "moons->8gaussians": ("moons", "8gaussians"),
    "N->2spirals": ("gaussian", "2spirals"),
}


def peer_matchers() -> dict:
    """Peer losses as functions (x0, x1, generator) -> (t, x_t, u_t), if installed."""
    out = {}
    try:
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )

        for name, cls in (
            ("torchcfm I-CFM", ConditionalFlowMatcher),
            ("torchcfm OT-CFM", ExactOptimalTransportConditionalFlowMatcher),
        ):
            matcher = cls(sigma=0.0)
            out[name] = lambda x0, x1, g, m=matcher: m.sample_location_and_conditional_flow(x0, x1)
    except ImportError:
        pass
    try:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler

        path = AffineProbPath(scheduler=CondOTScheduler())

        def fm(x0, x1, g):
            t = torch.rand(x0.shape[0], generator=g)
            sample = path.sample(x_0=x0, x_1=x1, t=t)
            return t, sample.x_t, sample.dx_t

        out["flow_matching CondOT"] = fm
    except ImportError:
        pass
    return out


def _ema_with_warmup(decay: float):
    """``multi_avg_fn`` of torch's stock ``AveragedModel`` with our EMA decay schedule (the
    peers' loop uses the stock EMA, as a user of theirs would)."""

    @torch.no_grad()
    def update(ema_params: list, params: list, n_averaged: torch.Tensor) -> None:
        torch._foreach_lerp_(ema_params, params, 1.0 - ema_decay(decay, int(n_averaged)))

    return update


def fit_peer(
    matcher, rho0, x1: np.ndarray, network: MLPSpec, settings: TrainSettings, seed: int
) -> TransportFlow:
    """Train our MLP (``network``, built as ``st.fit`` builds it) on a peer's regression target
    with our optimiser, schedule and EMA (``settings``: steps, batch size, learning rate, EMA
    decay, clipping)."""
    x1t = torch.from_numpy(x1)
    d = x1t.shape[1]
    x0t = None if isinstance(rho0, str) else torch.from_numpy(rho0)
    if x0t is None:  # a Gaussian source: a seeded draw (the global RNG differs per process)
        x0t = torch.randn(len(x1), d, generator=torch.Generator().manual_seed(seed + 1))
    norm = Normalization.from_samples(x1t, x0t)
    numpy_state = np.random.get_state()  # torchcfm's OT plan samples with numpy's global RNG
    np.random.seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_from_spec(network, (d,))
        g = torch.Generator().manual_seed(seed)
        ema = AveragedModel(net, multi_avg_fn=_ema_with_warmup(settings.ema), use_buffers=True)
        opt = torch.optim.AdamW(net.parameters(), lr=settings.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, LRSchedule(settings))
        bs = settings.batch_size
        for _ in range(settings.steps):
            idx = torch.randint(0, len(x1t), (bs,), generator=g)
            b1 = norm.encode(x1t[idx]).float()
            if x0t is None:
                b0 = norm.encode(torch.randn(bs, d, generator=g, dtype=torch.float64)).float()
            else:
                b0 = norm.encode(x0t[torch.randint(0, len(x0t), (bs,), generator=g)]).float()
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))  # peers' RNG
            t, xt, ut = matcher(b0, b1, g)
            loss = (net(xt, t) - ut).pow(2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip_grad)
            opt.step()
            sched.step()
            ema.update_parameters(net)
    np.random.set_state(numpy_state)
    model = ema.module.eval()
    return TransportFlow(model, "linear", base=rho0, target=x1, normalization=norm, shape=(d,))
