"""bench_dev_ab.py: the dev sets are none of the benchmark's sets, and its table shows what the README cites."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_dev_ab as dev  # noqa: E402
import bench_zero_shot as bz  # noqa: E402


def test_dev_sets_are_not_the_benchmark_sets():
    seeds = {seed for _, _, seed in dev.DEV_SETS.values()}
    assert not seeds & set(bz.SEEDS.values())                       # other phantom seeds than A's and C's
    assert {dev.DEV_UNSEEN_ID, dev.DEV_SEEN_ID}.isdisjoint({bz.SEEN_ID, bz.MERGED_ID, bz.UNSEEN_ID})


def test_markdown_row_per_trainer_and_penalty():
    row = {"trainer": "T", "seen_penalty": 1.25, "finding": 0.4671, "unseen": 0.065, "seen": None, "named": 11,
           "lesions": 41, "location": 0.024, "density": 0.463, "enhancement_status": 0.707, "seen_location": 0.3}
    table = dev.markdown([row, dict(row, seen_penalty=0.0)]).splitlines()
    assert len(table) == 4 and table[0].startswith("| trainer | G |")
    assert table[2] == "| T | 1.25 | 0.467 | 0.065 | – | 11/41 | 0.024 | 0.463 | 0.707 | 0.300 |"
    assert table[3].startswith("| T | 0 |")


def test_trainers_are_required():
    with pytest.raises(SystemExit):
        dev.main(["--work", "/nonexistent"])
