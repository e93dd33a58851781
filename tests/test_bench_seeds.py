"""bench_seeds.py: each seed trains into its own results folder with its seed, and the table and ratios it writes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_seeds as bs  # noqa: E402
import bench_zero_shot as bz  # noqa: E402


def test_a_seed_trains_with_its_seed_into_its_own_results_folder(tmp_path):
    bench = bs.seed_bench(tmp_path, 3)
    assert bench.env["MALENIA_SEED"] == "3"
    assert bench.env["nnUNet_results"] == str(tmp_path / "nnUNet_results_seed3")
    assert bench.model(bz.SEEN_ID, "T").parent.parent == tmp_path / "nnUNet_results_seed3"
    # the quick run's models stay where bench_zero_shot.py put them
    assert bz.Bench(tmp_path, bz.PROFILES["quick"]).model(bz.SEEN_ID, "T").parent.parent == tmp_path / "nnUNet_results"
    assert bs.prediction_name("per_class", 3) == "per_class_seed3_seen"
    assert bs.prediction_name("per_class", None) == "per_class_seen"


def test_a_finished_seed_is_rescored_not_retrained(tmp_path):
    bench = bs.seed_bench(tmp_path, 1)
    model = bench.model(bz.MERGED_ID, "nnUNetTrainer_CPUDemo") / "fold_0"
    model.mkdir(parents=True)
    (model / "checkpoint_final.pth").write_bytes(b"")
    tests = bench.dataset(bz.UNSEEN_ID) / "labelsTs"
    tests.mkdir(parents=True)
    for case in ("unseen_00080", "unseen_00081"):
        (tests / f"{case}.nii.gz").write_bytes(b"")
    assert not bs.finished(bench, "agnostic", 1)                         # no predictions yet
    predictions = tmp_path / "predictions" / "agnostic_seed1"
    predictions.mkdir(parents=True)
    (predictions / "unseen_00080.nii.gz").write_bytes(b"")
    assert not bs.finished(bench, "agnostic", 1)                         # a prediction cut short
    (predictions / "unseen_00081.nii.gz").write_bytes(b"")
    assert bs.finished(bench, "agnostic", 1)
    assert not bs.finished(bench, "supervised", 1)                       # another arm's model is missing
    assert bs.test_set_of("agnostic") == bz.UNSEEN_ID and bs.dataset_of("agnostic") == bz.MERGED_ID


def test_refuses_a_work_folder_without_the_quick_run(tmp_path):
    with pytest.raises(SystemExit, match="nnUNetTrainer_CPUDemo__nnUNetPlans__3d_cpu/fold_0/checkpoint_final.pth"):
        bs.run(tmp_path, tmp_path / "out", [1], ["per_class"])


def test_table_gives_every_seed_the_means_and_the_seen_ratios(tmp_path):
    naming = {"identification": {"correct": 2, "matched": 30}, "zero_shot_dice": 0.01, "lesion_dice_unseen": 0.4}
    result = {"profile": "quick", "generated_by": "x", "hardware": {"cpu": "cpu", "cores": "2 usable cores"},
              "seed": "0", "arms": {
                  "malenia": {"0": dict(naming, seen_dice=0.4), "1": dict(naming, seen_dice=0.6)},
                  "per_class": {"0": {"disease_dice": 0.6, "per_disease": {"gallstone": 0.9, "colon tumor": None}},
                                "1": {"disease_dice": 0.5, "per_disease": {"gallstone": 0.8, "colon tumor": 0.2}}},
                  "agnostic": {"0": {"lesion_dice_unseen": 0.53}, "1": {"lesion_dice_unseen": 0.51}}}}
    bs.write(result, tmp_path)
    text = (tmp_path / "seeds.md").read_text()
    assert "| malenia | 0.400 | 0.600 | 0.500 |" in text
    assert "| per_class | 0.600 | 0.500 | 0.550 |" in text
    assert "| malenia / per_class (seen) | 0.667 | 1.200 | 0.909 |" in text
    assert "| 1 | 0.010 | 0.400 | 2/30 |" in text
    assert "| per_class | colon tumor | – | 0.200 |" in text
    assert "| agnostic | 0.530 | 0.510 | 0.520 |" in text and "| agnostic | gallstone" not in text
    assert (tmp_path / "seeds.json").is_file()
