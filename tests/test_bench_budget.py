"""bench_budget.py: its trainers exist with the two budgets, its work-folder check and its tables."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_budget as bb  # noqa: E402
import bench_zero_shot as bz  # noqa: E402


def test_every_arm_has_both_budgets_as_trainers_with_the_stated_iterations():
    from nnunetv2_malenia.nnunet_shims import malenia_trainers

    for arm in bb.ARMS:
        for suffix, iterations in bb.BUDGETS.items():
            schedule = getattr(malenia_trainers, bb.trainer_of(arm, suffix)).schedule
            assert schedule["num_epochs"] * schedule["num_iterations_per_epoch"] == iterations


def test_refuses_a_work_folder_without_the_quick_run(tmp_path):
    bench = bz.Bench(tmp_path, bz.PROFILES["quick"])
    with pytest.raises(SystemExit, match="nnUNetTrainer_CPUDemo__nnUNetPlans__3d_cpu/fold_0/checkpoint_final.pth"):
        bb.check_work_folder(bench, ["supervised"])


def _cell(iterations, **figures):
    return dict(iterations=iterations, train_s=400.0, final_ema_pseudo_dice=0.6, ema_pseudo_dice=[0.1, 0.6],
                iterations_per_epoch=25, **figures)


def test_tables_and_curves_are_written(tmp_path):
    supervised = {"CPUDemo": _cell(2000, disease_dice=0.44, lesion_dice_unseen=0.71,
                                   per_disease={"liver cyst": 0.8, "kidney stone": None}),
                  "CPULong": _cell(4000, disease_dice=0.61, lesion_dice_unseen=0.75,
                                   per_disease={"liver cyst": 0.85, "kidney stone": 0.3})}
    naming = {"identification": {"correct": 2, "matched": 30}, "zero_shot_dice": 0.01, "seen_dice": 0.66,
              "lesion_dice_unseen": 0.4}
    result = {"profile": "quick", "generated_by": "x", "hardware": {"cpu": "cpu", "cores": "2 usable cores"},
              "seed": "0", "arms": {"supervised": supervised,
                                    "malenia": {"CPUDemo": _cell(2000, **naming), "CPULong": _cell(4000, **naming)}}}
    bb.write(result, tmp_path)
    text = (tmp_path / "budget.md").read_text()
    assert "| supervised | 4,000 | 0.610 | – | 0.750 | – | 0.600 | 400 |" in text
    assert "| malenia | 2,000 | 0.660 | 0.010 | 0.400 | 2/30 |" in text
    assert "| supervised | kidney stone | – | 0.300 |" in text
    assert (tmp_path / "budget.png").stat().st_size > 0 and (tmp_path / "budget.json").is_file()
