"""Shared plumbing of the benchmark scripts: environment record, JSON + Markdown output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


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
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if not np.isfinite(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(
    name: str,
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    params: dict[str, Any],
    notes: str = "",
) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return the Markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()
    payload = {"benchmark": name, "parameters": params, "environment": env, "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
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
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(md))
    return path
