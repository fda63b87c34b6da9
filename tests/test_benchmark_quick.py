"""``benchmarks/check_quick.py``: the verdicts CI compares between a fresh ``--quick`` run and
the committed one (the runs themselves are CI's job, ``.ci/run``; here the comparison)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


quick = load_script("sitransport_bench_check_quick", ROOT / "benchmarks" / "check_quick.py")

COMMITTED = """# bench_x_quick

| task | ratio |
|---|---|
| a | 1.1 |

global_ot target (npe <= 0.05): missed on N->moons (npe 0.061); moons->8g (npe 0.07). Target:
NFE = 4 within 1.2x: met by all 6 rows.

- N->moons: W2 ratio 1.1 +- 0.02 (n=5; target <= 1.3 beyond 2 SE): met
- N->moons: NLL 2.48 vs best peer 2.51: met
- N->moons: steps/s ours / torchcfm = 1.20x: met
"""


def test_verdict_lines_and_sentences_are_read_with_their_status():
    v = quick.verdicts(COMMITTED)
    assert v["N->moons"] == "met" and v["N->moons #2"] == "met"
    assert v["N->moons #3"] == "met (timing)"
    assert v["global_ot target (npe <= #):"] == "NOT met (N->moons; moons->8g)"
    assert v["Target: NFE = # within #x:"] == "met"


def test_a_flipped_missing_or_moved_verdict_differs_but_numbers_and_timing_do_not():
    base = quick.verdicts(COMMITTED)
    numbers = COMMITTED.replace("1.1 +- 0.02", "1.2 +- 0.03").replace("0.061", "0.058")
    assert quick.differences(base, quick.verdicts(numbers)) == []
    slower = COMMITTED.replace("= 1.20x: met", "= 0.90x: NOT met")
    assert quick.differences(base, quick.verdicts(slower)) == []
    flipped = COMMITTED.replace("beyond 2 SE): met", "beyond 2 SE): NOT met")
    assert quick.differences(base, quick.verdicts(flipped)) == [
        "N->moons: committed met, now NOT met"
    ]
    moved = COMMITTED.replace("; moons->8g (npe 0.07)", "")
    assert len(quick.differences(base, quick.verdicts(moved))) == 1
    gone = COMMITTED.replace("met by all 6 rows", "")
    assert quick.differences(base, quick.verdicts(gone)) == [
        "Target: NFE = # within #x:: committed met, now absent"
    ]
