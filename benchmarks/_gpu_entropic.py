"""``bench_gpu``'s entropic-plan section: the global entropic plan (``GlobalEntropicOT``)
solved on the training device.

On two Gaussian ends on the device (``x1 = 2 x0 + 1``, whose optimal map is known), one
plan of ``n`` points per end through :class:`~sitransport.couplings.EntropicPlanSampler`:
its solve seconds, the device of the drawn pairs and of geomloss's dual potentials (read
from the sampler's own solve, see :func:`recording_potentials`), which must both be the
bench device, and the pairs' mean squared distance to the exact map; then the steps/s of a
small 2-D fit with ``coupling="global_entropic"`` against independent pairing on that
device, side by side in one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import sitransport as st
from sitransport.couplings import GlobalEntropicOT, entropic_plan


@dataclass(frozen=True)
class PlanCheck:
    """Sizes of the section: ``n`` points per end of the checked plan, and the fit's
    training points, steps and batch (its plan covers all ``fit_n`` points)."""

    n: int
    fit_n: int
    fit_steps: int
    batch_size: int


TINY = PlanCheck(n=384, fit_n=384, fit_steps=60, batch_size=64)
FULL = PlanCheck(n=65_536, fit_n=65_536, fit_steps=500, batch_size=1024)


@contextmanager
def recording_potentials(seen: list) -> Iterator[list]:
    """Within the block, every :class:`~sitransport.couplings.entropic.Potentials` the
    global entropic plans solve is appended to ``seen`` (a spy on the solver function that
    ``entropic_plan`` calls; restored on exit)."""
    original = entropic_plan.solve_potentials

    def spy(*args: Any, **kwargs: Any) -> Any:
        pot = original(*args, **kwargs)
        seen.append(pot)
        return pot

    entropic_plan.solve_potentials = spy
    try:
        yield seen
    finally:
        entropic_plan.solve_potentials = original


def potential_devices(seen: list) -> list[str]:
    """The distinct devices of the recorded potentials' ``f``, ``g`` and points, sorted."""
    return sorted({str(t.device) for p in seen for t in (p.f, p.g, p.x0, p.x1)})


def gaussian_ends(n: int, device: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of ``N(0, I_2)`` and their images under ``x -> 2 x + 1``, independently
    drawn, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g)
    x1 = 2.0 * torch.randn(n, 2, generator=g) + 1.0
    return x0.to(device), x1.to(device)


def plan_report(check: PlanCheck, device: str, seed: int) -> dict[str, Any]:
    """One plan of ``check.n`` points per end on ``device``: seconds, devices, map error."""
    x0, x1 = gaussian_ends(check.n, device, seed)
    coupling = GlobalEntropicOT(n=check.n, device=device, background=False)
    with recording_potentials([]) as seen:
        draw = coupling.sampler(x0, x1, seed=seed)
        a, b = draw(check.n, torch.Generator().manual_seed(seed))
    mse = float((b - (2.0 * a + 1.0)).pow(2).sum(1).mean())
    return {
        "n": check.n,
        "blur": coupling.blur,
        "plan_s": draw.solve_seconds[0],
        "pairs_device": str(b.device),
        "potentials_device": ",".join(potential_devices(seen)),
        "map_mse": mse,
    }


def fit_rate(check: PlanCheck, device: str, coupling: Any, seed: int) -> dict[str, Any]:
    """Steps/s (training loop wall time, plan solves included) of a small 2-D fit."""
    x0, x1 = (t.cpu().numpy() for t in gaussian_ends(check.fit_n, "cpu", seed + 1))
    seen: list = []
    t0 = time.perf_counter()
    with recording_potentials(seen):
        flow = st.fit(
            x0,
            x1,
            coupling=coupling,
            interpolant="linear",
            steps=check.fit_steps,
            batch_size=check.batch_size,
            network=st.MLPSpec(width=64),
            seed=seed,
            device=device,
            validation=0.0,
            progress=False,
        )
    wall = float(np.asarray(flow.history["wall_time"])[-1])
    return {
        "steps_per_s": check.fit_steps / wall,
        "fit_s": time.perf_counter() - t0,
        "plans": len(np.atleast_1d(flow.history.attrs.get("ot_plan_solve_s", []))),
        "potentials_device": ",".join(potential_devices(seen)) or None,
    }


def entropic_report(check: PlanCheck, device: str, seed: int) -> dict[str, Any]:
    """The section: the plan, the two fits and whether everything ran on ``device``."""
    plan = plan_report(check, device, seed)
    spec = {"name": "global_entropic", "n": check.fit_n, "device": device}
    fits = {
        "independent": fit_rate(check, device, "independent", seed),
        "global_entropic": fit_rate(check, device, spec, seed),
    }
    expected = str(torch.device(device))
    on_device = {plan["pairs_device"], plan["potentials_device"]}
    on_device.add(fits["global_entropic"]["potentials_device"])
    ratio = fits["global_entropic"]["steps_per_s"] / fits["independent"]["steps_per_s"]
    return {
        "plan": plan,
        "fits": fits,
        "ratio": ratio,
        "on_device": all(d is not None and d.split(":")[0] == expected for d in on_device),
    }


ENTROPIC_COLUMNS = ["coupling", "n", "steps", "batch_size", "steps_per_s", "ratio", "plans",
                    "potentials_device"]  # fmt: skip


def entropic_markdown(report: dict[str, Any], check: PlanCheck) -> str:
    """The section's lines for ``bench_gpu``'s Markdown (a sentence and a table)."""
    from _common import markdown_table

    if "error" in report:
        return f"Entropic plan on the device failed: {report['error']}"
    plan, fits = report["plan"], report["fits"]
    ind = fits["independent"]["steps_per_s"]
    rows = [
        {
            "coupling": name,
            "n": check.fit_n,
            "steps": check.fit_steps,
            "batch_size": check.batch_size,
            **{k: fit[k] for k in ("steps_per_s", "plans", "potentials_device")},
            "ratio": fit["steps_per_s"] / ind,
        }
        for name, fit in fits.items()
    ]
    head = (
        f"Entropic global plan on the device (GlobalEntropicOT, blur {plan['blur']}, Gaussian "
        f"ends x1 = 2 x0 + 1 in 2-D): a {plan['n']}-point plan took {plan['plan_s']:.2f} s; "
        f"pairs on {plan['pairs_device']}, potentials on {plan['potentials_device']} "
        f"(all on the bench device: {report['on_device']}); pairs' mean squared distance "
        f"to the exact map {plan['map_mse']:.3g}. Fits (linear, MLP 4x64; steps/s of the "
        "training loop, plan solves included; ratio to independent, same process):"
    )
    return head + "\n\n" + markdown_table(rows, ENTROPIC_COLUMNS)
