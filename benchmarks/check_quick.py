"""Re-run the CI-sized (``--quick``) benchmarks and compare their verdicts with the committed ones.

For every committed ``results/*_quick.json`` this runs the command the file records (once per
command: ``bench_ot.py --quick`` writes two files) into a temporary folder
(``SITRANSPORT_BENCH_RESULTS``), then compares each verdict of the new file with the committed
one: the ``- label: ...: met`` / ``NOT met`` lines and the sentences that judge a whole table
(``met by all N rows``, ``met on every task``, ``missed on ...``). A verdict that flips, appears
or disappears fails the check. Verdicts on wall-clock speed (steps/s, t_MLE / t_ours, ``in
under N s``) are shown but not compared: the machine that runs CI is not the one that measured.
A command whose committed run took longer than ``--budget`` seconds is skipped, and said so.

Run: ``python benchmarks/check_quick.py`` (exit status 1 when a verdict differs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_STATUS = re.compile(r":\s*(met|NOT met|NOT shown)\.?$")
_SENTENCE = re.compile(r"(met by all \d+ rows|met on every task|missed (?:on|by) .*?)(?=\.\s|\.?$)")
_TIMING = re.compile(
    r"steps/s|t_MLE|training time|\bin under \d|\d+(\.\d+)?x independent|speed", re.I
)


def verdicts(markdown: str) -> dict[str, str]:
    """``{key: status}`` of a result's Markdown: a verdict line's key is its text before the
    first ``:`` (numbered when it repeats: ``N->moons #2``), its status met / NOT met; a judging
    sentence's key is the text before it, with its numbers removed."""
    out: dict[str, str] = {}
    for line in _paragraphs(markdown):
        if line.startswith("- ") and (status := _STATUS.search(line)):
            label = line[2:].split(":", 1)[0].strip()
            kind = "timing" if _TIMING.search(line) else "verdict"
            key, n = label, 1
            while key in out:
                n += 1
                key = f"{label} #{n}"
            out[key] = f"{status[1]}" + (" (timing)" if kind == "timing" else "")
            continue
        for match in _SENTENCE.finditer(line):
            start = line.rfind(". ", 0, match.start()) + 1
            key = re.sub(r"\d+(\.\d+)?", "#", line[start : match.start()]).strip()
            out[key] = _sentence_status(match[1]) + (" (timing)" if _TIMING.search(key) else "")
    return out


def _paragraphs(markdown: str) -> list[str]:
    """The lines of ``markdown`` with each paragraph of text joined into one line."""
    out: list[str] = []
    prose = False
    for line in markdown.splitlines():
        text = bool(line.strip()) and not line.startswith(("- ", "|", "#", "    "))
        if text and prose:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
        prose = text
    return out


def _sentence_status(verdict: str) -> str:
    """``met``, or ``NOT met (A; B)`` naming what missed (``missed on A (...); B (...)``)."""
    if verdict.startswith("met"):
        return "met"
    names = [part.split("(")[0].strip() for part in verdict.split(" ", 2)[2].split(";")]
    return f"NOT met ({'; '.join(names)})"


def differences(committed: dict[str, str], new: dict[str, str]) -> list[str]:
    """The verdicts that differ, timing verdicts excepted."""
    out = []
    for key in sorted(set(committed) | set(new)):
        old, now = committed.get(key, "absent"), new.get(key, "absent")
        if old != now and "(timing)" not in old + now:
            out.append(f"{key}: committed {old}, now {now}")
    return out


def _commands(budget: float) -> tuple[dict[str, list[str]], list[str]]:
    """``{command: [stems]}`` of the committed quick results within ``budget`` seconds, and
    the commands skipped for their cost."""
    runs: dict[str, list[str]] = {}
    skipped = []
    for path in sorted(RESULTS.glob("*_quick.json")):
        env = json.loads(path.read_text(encoding="utf-8"))["environment"]
        wall = env.get("wall_s")
        if wall is not None and wall > budget:
            line = f"{env['command']} ({wall:.0f} s > {budget:.0f} s)"
            skipped += [] if line in skipped else [line]
            continue
        runs.setdefault(env["command"], []).append(path.stem)
    return runs, skipped


def check(budget: float) -> int:
    runs, skipped = _commands(budget)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SITRANSPORT_BENCH_RESULTS": tmp}
        for command, stems in runs.items():
            start = time.perf_counter()
            args = shlex.split(command)
            args[0] = sys.executable
            done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
            print(f"{command}: {time.perf_counter() - start:.0f} s", flush=True)
            if done.returncode:
                failures.append(f"{command} failed:\n{done.stderr[-3000:]}")
                continue
            for stem in stems:
                failures += _compare(stem, Path(tmp))
    for line in skipped:
        print(f"skipped (over the budget): {line}")
    for line in failures:
        print(f"DIFFERS {line}")
    print("quick verdicts: " + ("all as committed" if not failures else f"{len(failures)} differ"))
    return 1 if failures else 0


def _compare(stem: str, folder: Path) -> list[str]:
    new_md = folder / f"{stem}.md"
    if not new_md.is_file():
        return [f"{stem}: the run wrote no {new_md.name}"]
    committed = verdicts((RESULTS / f"{stem}.md").read_text(encoding="utf-8"))
    new = verdicts(new_md.read_text(encoding="utf-8"))
    for key, status in sorted(new.items()):
        print(f"  {stem}: {key}: {status}")
    return [f"{stem}: {d}" for d in differences(committed, new)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, default=600.0, help="skip runs whose committed wall time exceeds it"
    )
    sys.exit(check(parser.parse_args().budget))


if __name__ == "__main__":
    main()
