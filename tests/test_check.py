"""nnUNetv2_malenia_check on tiny raw datasets: exit codes and one message per problem."""
from __future__ import annotations

import json

import pytest

from conftest import make_raw_dataset
from nnunetv2_malenia.attributes.check import main

LABELS = {"kidney": 1, "kidney tumor": 2, "odd lesion": 3}
CASES = ["case_00000", "case_00001", "case_00002"]
INLINE = {"organ": "spleen", "attributes": {
    "enhancement_status": "contrast_enhanced", "location": "spleen", "shape": "round_like", "density": "hypodense",
    "density_variation": "homogeneous", "surface": "well_defined", "relationship": "not_close",
    "specific_features": "a thin enhancing rim"}}


def good_attributes() -> dict:
    return {"format_version": 1,
            "labels": {"kidney": {"organ": "kidney", "description": "normal kidney parenchyma"},
                       "kidney tumor": {"disease": "kidney tumor"},
                       "odd lesion": INLINE},
            "cases": {"case_00000": {"kidney tumor": {"density": "hyperdense", "location": "right_kidney"}},
                      "case_00001": {"kidney tumor": {"density": "slightly hypodense with a rim"}}}}


def run_check(capsys, dataset: str):
    with pytest.raises(SystemExit) as exit_info:
        main([dataset, "-np", "1"])
    out, err = capsys.readouterr()
    if exit_info.value.code:
        from bad_inputs import record

        record("nnUNetv2_malenia_check", [dataset, "-np", "1"], exit_info.value.code, err)
    return exit_info.value.code, out, err


def test_good_dataset_prints_summary(nnunet_raw, capsys):
    make_raw_dataset(nnunet_raw / "Dataset501_Check", LABELS, CASES, good_attributes())
    code, out, err = run_check(capsys, "501")                     # by id, resolved like nnU-Net does
    assert code == 0, err
    assert "1 kidney: organ label (kidney): 'normal kidney parenchyma'" in out
    assert "2 kidney tumor: lesion, disease 'kidney tumor' in kidney" in out
    assert "3 odd lesion: lesion described inline, in spleen" in out
    assert "cases with per-case descriptions: 2 of 3" in out
    assert "Dataset501_Check: OK (images, labels and dataset.json as nnU-Net reads them)" in out
    assert err == ""
    # the same number build_bank encodes, split into its two parts
    from nnunetv2_malenia.attributes.dataset_attributes import load_dataset_attributes
    from nnunetv2_malenia.text_bank.build_bank import bank_entries

    attributes = load_dataset_attributes(nnunet_raw / "Dataset501_Check")
    rows, descriptions = len(bank_entries(attributes)), len(attributes.all_descriptions())
    assert f"text bank: {rows} rows for nnUNetv2_malenia_build_bank = {descriptions} distinct descriptions" in out
    assert f"+ {rows - descriptions} paragraph texts (one per lesion label and per-case lesion entry" in out
    assert rows - descriptions == 4          # kidney tumor, odd lesion, and the two per-case kidney tumor entries


def test_summary_counts_dataset_descriptions(nnunet_raw, capsys):
    """The second count is exact: 1 organ text + kidney tumor's 8+ texts + inline texts + per-case free text."""
    from nnunetv2_malenia.attributes.check import summary_lines
    from nnunetv2_malenia.attributes.dataset_attributes import load_dataset_attributes

    folder = make_raw_dataset(nnunet_raw / "Dataset502_Count", {"liver": 1}, CASES[:1],
                              {"labels": {"liver": {"description": "normal liver parenchyma"}}})
    attributes = load_dataset_attributes(folder)
    lines = summary_lines(attributes, 1)
    assert lines[-2] == "cases with per-case descriptions: 0 of 1"
    assert "= 1 distinct descriptions" not in lines[-1]          # the knowledge table's texts count too
    assert "1 of them used by this dataset's labels and cases) + 0 paragraph texts" in lines[-1]


@pytest.mark.parametrize("mutate,expected", [
    (lambda a: a["labels"].pop("kidney tumor"), "labels.kidney tumor: label 'kidney tumor' of dataset.json is not "
                                                "described"),
    (lambda a: a["labels"].update({"lung tumor": {"disease": "lung tumor"}}), "labels.lung tumor: no foreground "
                                                                              "label 'lung tumor'"),
    (lambda a: a["labels"]["kidney tumor"].update(disease="kidney tumour"), "labels.kidney tumor.disease: unknown "
                                                                            "disease 'kidney tumour'"),
    (lambda a: a["cases"].update({"case_00099": {"kidney tumor": {"density": "hypodense"}}}),
     "cases.case_00099: no such case in imagesTr/labelsTr"),
    (lambda a: a["cases"]["case_00000"].update({"liver tumor": {"density": "hypodense"}}),
     "cases.case_00000.liver tumor: no foreground label 'liver tumor'"),
    (lambda a: a["cases"]["case_00000"].update({"kidney": {"density": "hypodense"}}),
     "cases.case_00000.kidney: 'kidney' is an organ label"),
    (lambda a: a["cases"]["case_00000"]["kidney tumor"].update(colour="red"),
     "cases.case_00000.kidney tumor.colour: unknown aspect"),
    (lambda a: a["cases"]["case_00000"]["kidney tumor"].update(density="hypodens"),
     "cases.case_00000.kidney tumor.density[0]: unknown density value key 'hypodens'"),
    (lambda a: a.update(case=a.pop("cases")), "malenia_attributes.json: case: unknown top-level key"),
    (lambda a: a["labels"]["kidney tumor"].update(atributes={}), "labels.kidney tumor.atributes: unknown key in a "
                                                                 "label entry"),
])
def test_bad_attributes_exit_2_with_key_path(nnunet_raw, capsys, mutate, expected):
    attributes = good_attributes()
    mutate(attributes)
    make_raw_dataset(nnunet_raw / "Dataset503_Bad", LABELS, CASES, attributes)
    code, out, err = run_check(capsys, "Dataset503_Bad")
    assert code == 2
    assert expected in err
    assert "Dataset503_Bad/malenia_attributes.json" in err or "Dataset503_Bad/dataset.json" in err
    assert "problem(s) found" in err and out == ""


def test_every_problem_is_reported_once(nnunet_raw, capsys):
    attributes = good_attributes()
    attributes["labels"]["kidney tumor"]["disease"] = "no such disease"
    attributes["cases"]["case_00099"] = {"kidney tumor": {"density": "hypodense"}}
    make_raw_dataset(nnunet_raw / "Dataset504_Two", LABELS, CASES, attributes)
    code, _, err = run_check(capsys, "504")
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(error_lines) == 2
    assert "2 problem(s) found" in err


def test_duplicate_key_is_reported_with_path(nnunet_raw, capsys):
    folder = make_raw_dataset(nnunet_raw / "Dataset505_Dup", LABELS, CASES, good_attributes())
    text = json.dumps(good_attributes(), indent=2)
    # Describe case_00000 twice: json.load would silently keep only the second block.
    text = text.replace('"cases": {', '"cases": {\n "case_00000": {"kidney tumor": {"density": "isodense"}},', 1)
    (folder / "malenia_attributes.json").write_text(text)
    code, _, err = run_check(capsys, "505")
    assert code == 2
    assert "malenia_attributes.json: cases.case_00000: key given twice" in err


def test_invalid_json_names_line(nnunet_raw, capsys):
    folder = make_raw_dataset(nnunet_raw / "Dataset506_Json", LABELS, CASES, None)
    (folder / "malenia_attributes.json").write_text('{\n  "labels": {\n    "kidney": 1,,\n  }\n}\n')
    code, _, err = run_check(capsys, "506")
    assert code == 2 and "malenia_attributes.json: line 3 column" in err and "invalid JSON" in err


def test_missing_attribute_file_and_unknown_dataset(nnunet_raw, capsys):
    make_raw_dataset(nnunet_raw / "Dataset507_None", LABELS, CASES, None)
    code, _, err = run_check(capsys, "507")
    assert code == 2 and "dataset attribute file not found" in err
    code, _, err = run_check(capsys, "599")
    assert code == 2 and "dataset '599' not found" in err
    code, _, err = run_check(capsys, "not_a_dataset")
    assert code == 2 and "give a dataset id" in err


def test_broken_raw_dataset_gives_errors_not_tracebacks(nnunet_raw, capsys):
    folder = make_raw_dataset(nnunet_raw / "Dataset508_Broken", LABELS, CASES, good_attributes())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["labels"]["kidney"] = "one"
    del dataset_json["file_ending"]
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    code, _, err = run_check(capsys, "508")
    assert code == 2
    assert "dataset.json: file_ending: missing" in err
    assert "dataset.json: labels.kidney: label value must be an integer" in err


# --- issue 13: datasets nnU-Net refuses or misreads, and ids used twice ---------------------------------------------

def _check_fails(capsys, kind: str, dataset: str = "503", processes: str = "1") -> str:
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_check", [dataset, "-np", processes], kind, capsys)
    return err


def _dataset(nnunet_raw):
    return make_raw_dataset(nnunet_raw / "Dataset503_Bad", LABELS, CASES, good_attributes())


def _rewrite(path, **changes):
    """Re-save a NIfTI with changed geometry (size via a cropped array)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if "array" in changes:
        new = sitk.GetImageFromArray(changes.pop("array"))
        new.CopyInformation(image) if new.GetSize() == image.GetSize() else new.SetSpacing(image.GetSpacing())
        image = new
    for key, value in changes.items():
        getattr(image, f"Set{key}")(value)
    sitk.WriteImage(image, str(path))


def test_label_off_the_image_grid_is_a_problem(nnunet_raw, capsys):
    import numpy as np

    folder = _dataset(nnunet_raw)
    _rewrite(folder / "labelsTr" / "case_00000.nii.gz", Origin=(5.0, 0.0, 0.0))
    _rewrite(folder / "labelsTr" / "case_00001.nii.gz", Spacing=(2.0, 1.0, 1.0))
    _rewrite(folder / "labelsTr" / "case_00002.nii.gz", array=np.zeros((8, 8, 6), np.uint8))
    err = _check_fails(capsys, "label on another grid than its image (origin, spacing, shape)", processes="2")
    assert "labelsTr/case_00000.nii.gz: origin: (5.0, 0.0, 0.0) differs from the image's (0.0, 0.0, 0.0)" in err
    assert "labelsTr/case_00001.nii.gz: spacing: (2.0, 1.0, 1.0) differs" in err
    assert "labelsTr/case_00002.nii.gz: size: (6, 8, 8) differs from the image's (8, 8, 8)" in err


def test_stray_files_unknown_label_values_and_numtraining(nnunet_raw, capsys):
    import numpy as np

    folder = _dataset(nnunet_raw)
    (folder / "imagesTr" / "notes.nii.gz").write_bytes(b"")
    (folder / "labelsTr" / "case_00099.nii.gz").write_bytes(b"")
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[0, 0, 0], seg[1, 1, 1] = 8, 10
    _rewrite(folder / "labelsTr" / "case_00001.nii.gz", array=seg)
    dj = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps(dict(dj, numTraining=7)))
    err = _check_fails(capsys, "stray files, label values not in dataset.json, wrong numTraining")
    assert "imagesTr/notes.nii.gz: stray file in imagesTr" in err
    assert "labelsTr/case_00099.nii.gz: stray file in labelsTr" in err
    assert "labelsTr/case_00001.nii.gz: voxel values: [8, 10] are not label values of dataset.json" in err
    assert "dataset.json: numTraining: says 7, but there are 3 training cases" in err


def test_empty_imagestr_is_a_problem(nnunet_raw, capsys):
    folder = _dataset(nnunet_raw)
    for sub in ("imagesTr", "labelsTr"):
        for f in (folder / sub).iterdir():
            f.unlink()
    err = _check_fails(capsys, "empty imagesTr")
    assert "imagesTr: no training images (CASE_0000.nii.gz)" in err


def test_duplicate_dataset_id_names_the_colliding_folders(nnunet_raw, capsys):
    _dataset(nnunet_raw)
    make_raw_dataset(nnunet_raw / "Dataset503_Other", LABELS, CASES, good_attributes())
    err = _check_fails(capsys, "two folders with one dataset id")
    assert "dataset id 503 is used by more than one dataset name: Dataset503_Bad, Dataset503_Other" in err
    assert "not found" not in err
    err = _check_fails(capsys, "dataset id that does not exist", "504")
    assert "no Dataset504_* folder" in err


def test_label_values_with_a_gap_are_a_problem(tmp_path):
    from nnunetv2_malenia.attributes.dataset_integrity import label_value_problems

    [problem] = label_value_problems(tmp_path, {"labels": {"background": 0, "kidney tumor": 2}})
    assert problem.where == "labels" and "[0, 2] must be consecutive" in problem.message
    assert label_value_problems(tmp_path, {"labels": {"background": 0, "a": 1, "ignore": 2}}) == []
