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
        main([dataset])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_good_dataset_prints_summary(nnunet_raw, capsys):
    make_raw_dataset(nnunet_raw / "Dataset501_Check", LABELS, CASES, good_attributes())
    code, out, err = run_check(capsys, "501")                     # by id, resolved like nnU-Net does
    assert code == 0, err
    assert "1 kidney: organ label (kidney): 'normal kidney parenchyma'" in out
    assert "2 kidney tumor: lesion, disease 'kidney tumor' in kidney" in out
    assert "3 odd lesion: lesion described inline, in spleen" in out
    assert "cases with per-case descriptions: 2 of 3" in out
    assert "distinct descriptions:" in out and err == ""


def test_summary_counts_dataset_descriptions(nnunet_raw, capsys):
    """The second count is exact: 1 organ text + kidney tumor's 8+ texts + inline texts + per-case free text."""
    from nnunetv2_malenia.attributes.check import summary_lines
    from nnunetv2_malenia.attributes.dataset_attributes import load_dataset_attributes

    folder = make_raw_dataset(nnunet_raw / "Dataset502_Count", {"liver": 1}, CASES[:1],
                              {"labels": {"liver": {"description": "normal liver parenchyma"}}})
    attributes = load_dataset_attributes(folder)
    lines = summary_lines(attributes, 1)
    assert lines[-2] == "cases with per-case descriptions: 0 of 1"
    assert lines[-1].endswith(", 1 used by this dataset's labels and cases")


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
