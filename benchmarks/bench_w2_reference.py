"""How precisely can ``bench_ot`` measure NPE? The spread and drift of its W2^2 reference.

``bench_ot`` reports NPE = |KE - W2^2| / W2^2 with W2^2 the exact (POT) cost between 2,000
source and 2,000 target samples. That reference is itself a random number: it fluctuates
between draws (the central-limit term of empirical OT) and drifts with n (its bias). This
script measures both on the four 2-D tasks: the mean and standard deviation of the exact
W2^2 over independent draws at n = 500 ... 8,000 per side. The relative standard deviation at
n = 2,000 is the resolution of one NPE value in ``bench_ot``: an NPE target below it cannot be
certified from one draw.

Run: ``python benchmarks/bench_w2_reference.py`` (about 3 minutes: the 8,000-point solves
dominate), ``--quick`` (n up to 2,000, one task).
"""

from __future__ import annotations

import argparse

import numpy as np
import ot
import torch
from _common import OT_TASKS, write_results

from sitransport.datasets import draw

COLUMNS = ("task", "n", "draws", "w2sq_mean", "w2sq_std", "rel_std", "rel_to_largest")
# what a run exercises (freshness.py): the task samplers; the exact W2^2 is POT's own
MODULES = ("sitransport.datasets",)


def exact_w2sq(src: str, tgt: str, n: int, seed: int) -> float:
    a = np.asarray(draw(src, n, seed), dtype=np.float64)
    b = np.asarray(draw(tgt, n, seed + 10_000), dtype=np.float64)
    return float(ot.emd2([], [], ot.dist(a, b), numItermax=10**8))


def measure(task: str, sizes: list[int], draws: int) -> list[dict]:
    src, tgt = OT_TASKS[task]
    rows = []
    for n in sizes:
        vals = np.array([exact_w2sq(src, tgt, n, 100 + 7 * r) for r in range(draws)])
        rows.append(
            {
                "task": task,
                "n": n,
                "draws": draws,
                "w2sq_mean": vals.mean(),
                "w2sq_std": vals.std(ddof=1),
                "rel_std": vals.std(ddof=1) / vals.mean(),
            }
        )
    for row in rows:
        row["rel_to_largest"] = row["w2sq_mean"] / rows[-1]["w2sq_mean"] - 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = list(OT_TASKS)[:1] if args.quick else list(OT_TASKS)
    sizes = [500, 1000, 2000] if args.quick else [500, 1000, 2000, 4000, 8000]
    draws = 3 if args.quick else 4
    rows = [row for task in tasks for row in measure(task, sizes, draws)]
    at_2000 = [r["rel_std"] for r in rows if r["n"] == 2000]
    notes = (
        f"Exact W2^2 (POT emd) between n source and n target samples, {draws} independent draws "
        "per size. rel_std: standard deviation over draws / mean. rel_to_largest: the mean "
        f"relative to the mean at the largest n. At n = 2000 (bench_ot's reference) rel_std is "
        f"{min(at_2000):.3f}-{max(at_2000):.3f}: one NPE value carries that much noise from "
        f"its reference alone (each spread is itself from {draws} draws, so known to about "
        f"+-{100 / np.sqrt(2 * (draws - 1)):.0f}%)."
    )
    name = "bench_w2_reference" + ("_quick" if args.quick else "")
    params = {"sizes": sizes, "draws": draws}
    print(write_results(name, rows, COLUMNS, params, notes, modules=MODULES).read_text())


if __name__ == "__main__":
    main()
