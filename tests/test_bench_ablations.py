"""bench_ablations.py: every row it can train exists as a CPU-regime trainer, its work-folder check and its table."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_ablations as ba  # noqa: E402
import bench_zero_shot as bz  # noqa: E402


def test_every_variant_is_a_cpu_regime_trainer_that_changes_one_setting():
    from nnunetv2_malenia.training import variants

    base = variants.nnUNetTrainerMalenia_CPUDemo
    for variant in ba.WHAT:
        cls = getattr(variants, ba.trainer_of(variant))
        assert issubclass(cls, base)
        assert (cls.schedule, cls.adamw, cls.augment) == (base.schedule, base.adamw, base.augment)
        changed = [name for name in ("malenia_network_settings", "malenia_loss_settings", "appearance_swap")
                   if getattr(cls, name) != getattr(base, name)]
        assert len(changed) == 1, f"{cls.__name__} changes {changed}"
        if changed[0] != "appearance_swap":                     # a scalar setting; the others are dicts
            diff = {k for k, v in getattr(cls, changed[0]).items() if getattr(base, changed[0]).get(k) != v}
            assert len(diff) == 1, f"{cls.__name__} changes {diff}"
    assert set(ba.PAPER_VARIANTS) <= set(ba.WHAT)


def test_refuses_a_work_folder_without_the_quick_run(tmp_path):
    bench = bz.Bench(tmp_path, bz.PROFILES["quick"])
    with pytest.raises(SystemExit, match="not the work folder of a finished .*checkpoint_final.pth"):
        ba.check_work_folder(bench)


def test_table_has_one_line_per_row(tmp_path):
    row = {"lesion_dice_unseen": 0.5, "zero_shot_dice": 0.1, "seen_dice": None, "train_s": 700.0,
           "identification": {"correct": 3, "matched": 30, "accuracy": 0.1},
           "precision": {"location": 0.2, "density": 0.75, "enhancement_status": 0.9}}
    result = {"profile": "quick", "generated_by": "x", "hardware": {"cpu": "cpu", "cores": "2 usable cores"},
              "seed": "0", "rows": {"default": dict(row, what="`T`"), "NoFusion": dict(row, what=ba.WHAT["NoFusion"])}}
    ba.write(result, tmp_path)
    table = [line for line in (tmp_path / "ablations.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 3
    assert table[2].startswith("| NoFusion | CMKI without deep fusion") and "| 0.500 | 0.100 | – | 3/30 |" in table[2]
    assert (tmp_path / "ablations.json").is_file()


def test_resume_keeps_finished_rows_of_the_same_profile_and_seed_only(tmp_path):
    row = {"lesion_dice_unseen": 0.5, "zero_shot_dice": 0.1, "seen_dice": 0.6, "train_s": 700.0, "what": "w",
           "identification": {"correct": 0, "matched": 30, "accuracy": 0.0},
           "precision": {"location": 0.2, "density": 0.75, "enhancement_status": 0.9}}
    result = {"profile": "quick", "generated_by": "x", "hardware": {"cpu": "cpu", "cores": "2 usable cores"},
              "seed": "0", "rows": {"default": row, "NoFusion": row}}
    assert ba.finished_rows(tmp_path, "quick", "0") == {}
    ba.write(result, tmp_path)
    assert ba.finished_rows(tmp_path, "quick", "0") == {"NoFusion": row}
    with pytest.raises(SystemExit, match="profile/seed quick/0 differ from this run's quick/1"):
        ba.finished_rows(tmp_path, "quick", "1")
    (tmp_path / "ablations.json").write_text("{")
    with pytest.raises(SystemExit, match="ablations.json: cannot resume"):
        ba.finished_rows(tmp_path, "quick", "0")


def test_only_single_positive_models_are_named_by_paragraphs():
    """The network follows the loss: plans.json gets match_paragraphs from multi_positive (trainer._network_settings)."""
    from nnunetv2_malenia.training import variants

    for variant in ba.WHAT:
        cls = getattr(variants, ba.trainer_of(variant))
        settings = variants.nnUNetTrainerMalenia._network_settings(cls)     # class attributes only
        assert settings["match_paragraphs"] == (variant == "SinglePositive"), variant
