"""bench_naming.py: its sets are checked like --describe-masks' masks, before any model is loaded."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_naming  # noqa: E402
from conftest import make_raw_dataset  # noqa: E402
from nnunetv2_malenia.errors import MaleniaInputError  # noqa: E402


def test_reference_lesions_pair_images_with_masks_and_names(tmp_path):
    root = make_raw_dataset(tmp_path / "Dataset501_X", {"liver cyst": 1, "kidney stone": 2}, ["a", "b"])
    cases = bench_naming.reference_lesions(root / "imagesTr", root / "labelsTr")
    assert [(Path(files[0]).name, mask.name) for files, mask, _, _ in cases] == [("a_0000.nii.gz", "a.nii.gz"),
                                                                                ("b_0000.nii.gz", "b.nii.gz")]
    assert cases[0][2] == {1: "liver cyst", 2: "kidney stone"} and cases[0][3] is None
    # --location-maps: the organ maps beside the labels (labelsTr -> locationsTr) are checked with them
    with pytest.raises(MaleniaInputError, match="locationsTr/locations.json"):
        bench_naming.reference_lesions(root / "imagesTr", root / "labelsTr", ["left_kidney"])


def test_a_missing_mask_or_dataset_json_is_an_error_naming_the_file(tmp_path, capsys):
    root = make_raw_dataset(tmp_path / "Dataset501_X", {"liver cyst": 1}, ["a", "b"])
    (root / "labelsTr" / "b.nii.gz").unlink()
    with pytest.raises(MaleniaInputError, match="b.nii.gz"):
        bench_naming.reference_lesions(root / "imagesTr", root / "labelsTr")
    (root / "dataset.json").unlink()
    with pytest.raises(SystemExit) as exit_info:       # checked before the model folder is even looked at
        bench_naming.main(["-m", str(tmp_path / "no_model"), "--set", "s", str(root / "imagesTr"),
                           str(root / "labelsTr")])
    assert exit_info.value.code == 2 and "dataset.json" in capsys.readouterr().err


def test_per_disease_lines_say_what_the_misnamed_lesions_were_named():
    rows = [{"rule": "best_match", "seen_penalty": 1.0, "sets": {"unseen": {"correct": 1, "lesions": 4, "per_disease": {
        "liver cyst": {"lesions": 4, "correct": 1, "named_as": {"liver tumor": 1, "hepatic vessel tumor": 2}}}}}}]
    assert bench_naming.per_disease(rows, ["unseen"]) == (
        "- best_match, G=1, unseen: liver cyst 1/4 (as hepatic vessel tumor 2, liver tumor 1)")
    rows[0]["sets"]["unseen"]["per_disease"]["liver cyst"] = {"lesions": 4, "correct": 4, "named_as": {}}
    assert bench_naming.per_disease(rows, ["unseen"]).endswith("liver cyst 4/4")
