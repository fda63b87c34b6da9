"""The summary figure of the benchmarks page, drawn from the committed JSON results.

``results/summary_w2_ratio.png``: the W2 ratio (exact W2 of generated vs held-out target
samples over the noise floor, W2 between two held-out sets; 1 is a perfect model) of every
method on every task, one panel per benchmark (bench_peers, bench_ot, bench_2d); a benchmark
whose JSON is missing is left out. Nothing is trained or evaluated.

Run: ``python benchmarks/plot_results.py`` (a few seconds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("N->moons", "N->8gaussians", "moons->8gaussians", "N->2spirals", "N->checkerboard")
MARKERS = ("o", "s", "D", "^", "v")


def _rows(name: str, folder: Path) -> tuple[list[dict], dict] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data["rows"], data["parameters"]


def _samples(params: dict) -> str:
    return f"{params['n_eval']} vs {params['n_eval']} samples"


Point = tuple[float, float]  # a W2 ratio and its standard error (nan: not recorded)


def _ratio(r: dict) -> Point:
    """A row's W2 ratio and standard error (``ratio``/``ratio_se``, else ``w2`` over
    ``noise_floor`` with ``w2_se`` scaled alike)."""
    if "ratio" in r:
        return r["ratio"], r.get("ratio_se", float("nan"))
    return r["w2"] / r["noise_floor"], r.get("w2_se", float("nan")) / r["noise_floor"]


def panels(folder: Path = RESULTS) -> list[tuple[str, dict[str, dict[str, Point]]]]:
    """(panel title, {method: {task: (W2 ratio, its standard error)}}) of each benchmark."""
    titles = {
        "bench_peers": lambda p: f"bench_peers: {p['steps']} steps each, {_samples(p)}",
        "bench_ot": lambda p: f"bench_ot: couplings and paths, {p['steps']} steps, {_samples(p)}",
        "bench_2d": lambda p: "bench_2d: the default fit",
    }
    out = []
    for name, title in titles.items():
        found = _rows(name, folder)
        if not found:
            continue
        rows, params = found
        ratios: dict[str, dict[str, Point]] = {}
        for r in rows:
            method = "default fit" if name == "bench_2d" else r["method"]
            ratios.setdefault(method, {})[r["task"]] = _ratio(r)
        out.append((title(params), ratios))
    return out


def plot(folder: Path = RESULTS, out: Path | None = None) -> Path:
    """Draw the figure; return its path."""
    found = panels(folder)
    if not found:
        raise FileNotFoundError(f"no bench_peers, bench_ot or bench_2d JSON in {folder}")
    heights = [len(methods) + 1.5 for _, methods in found]
    fig, axes = plt.subplots(
        len(found),
        1,
        figsize=(9, 0.28 * sum(heights) + 1.2),
        sharex=True,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (title, methods) in zip(axes[:, 0], found, strict=True):
        names = list(methods)
        for k, task in enumerate(TASKS):
            pts = [(*methods[m][task], i) for i, m in enumerate(names) if task in methods[m]]
            if pts:
                x, se, y = zip(*pts, strict=True)
                ax.errorbar(x, y, xerr=se, fmt="none", ecolor=f"C{k}", alpha=0.5, lw=1, zorder=2)
                ax.scatter(x, y, marker=MARKERS[k], s=28, label=task, color=f"C{k}", zorder=3)
        ax.axvline(1.0, color="0.4", lw=1, ls="--", zorder=1)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.grid(axis="x", color="0.9")
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(
        "W2 ratio = W2(generated, held-out) / noise floor   (1 = perfect; bars: one standard error)"
    )
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = folder / "summary_w2_ratio.png" if out is None else out
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON")
    args = parser.parse_args()
    print(plot(args.results))


if __name__ == "__main__":
    main()
