"""The attribute schema: shipped vocabulary and knowledge table, and every kind of bad input in user files."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import make_raw_dataset
from nnunetv2_malenia.attributes.dataset_attributes import load_dataset_attributes, parse_dataset_attributes
from nnunetv2_malenia.attributes.knowledge_table import load_knowledge_table
from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT, load_vocabulary
from nnunetv2_malenia.errors import MaleniaInputError

DATASET_JSON = {"labels": {"background": 0, "kidney": 1, "kidney tumor": 2, "odd lesion": 3},
                "file_ending": ".nii.gz"}
SPLEEN_LESION = {"enhancement_status": "contrast_enhanced", "location": "spleen", "shape": "round_like",
                 "density": "hypodense", "density_variation": "homogeneous", "surface": "well_defined",
                 "relationship": "not_close", "specific_features": "none"}
GOOD = {"format_version": 1,
        "labels": {"kidney": {"organ": "kidney", "description": "normal kidney parenchyma"},
                   "kidney tumor": {"disease": "kidney tumor"},
                   "odd lesion": {"organ": "spleen", "attributes": SPLEEN_LESION}},
        "cases": {"case_00000": {"kidney tumor": {"density": ["hyperdense", "isodense"]}}}}
CASES = ["case_00000", "case_00001"]


def parse(raw: dict, case_ids=CASES, file="attrs.json"):
    return parse_dataset_attributes(raw, DATASET_JSON, file, case_ids)


def problems_of(raw: dict, case_ids=CASES) -> list[str]:
    with pytest.raises(MaleniaInputError) as e:
        parse(raw, case_ids)
    return [str(p) for p in e.value.problems]


def changed(**edits) -> dict:
    """A deep copy of GOOD with ``edits`` applied: key path with '/' separators -> new value (None deletes)."""
    raw = copy.deepcopy(GOOD)
    for path, value in edits.items():
        *parents, last = path.split("/")
        node = raw
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return raw


# --- shipped tables ----------------------------------------------------------------------------------------------

def test_shipped_vocabulary_has_the_eight_aspects_and_code_tables():
    vocab = load_vocabulary()
    assert tuple(vocab.values) == ASPECTS
    assert all(vocab.values[a] for a in ASPECTS)
    assert vocab.spreadsheet_columns["enhancement_status"] == "B" and vocab.spreadsheet_columns["relationship"] == "H"
    assert vocab.spreadsheet_columns["specific_features"] is None          # report text only
    assert vocab.code_to_key("location", "kidney", "2") == "right_kidney"
    assert vocab.code_to_key("density", "lung", "1") == "ground_glass"     # organ table before the generic one
    assert vocab.code_to_key("density", "liver", "1") == "hypodense"
    assert vocab.code_to_key("location", "kidney", "3") is None
    assert vocab.key_of_text("density", vocab.text("density", "isodense")) == "isodense"


def test_shipped_knowledge_table_has_12_diseases_split_6_6():
    table = load_knowledge_table()
    assert len(table.names) == 12
    assert len(table.split("seen")) == 6 and len(table.split("unseen")) == 6
    assert set(table.split("unseen")) == {"kidney tumor", "pancreas cyst", "hepatic vessel tumor", "liver cyst",
                                          "gallbladder tumor", "kidney stone"}
    for disease in table.diseases.values():
        assert set(disease.descriptions) == set(ASPECTS), disease.name
        assert all(disease.descriptions[a] for a in ASPECTS), disease.name
    assert table["kidney cyst"].organ == "kidney"
    assert table["kidney cyst"].value_keys["location"] == ("left_kidney", "right_kidney")
    vocab = load_vocabulary()
    assert table["kidney cyst"].descriptions["density"] == (vocab.text("density", "hypodense"),)


# --- dataset attribute files: good input -------------------------------------------------------------------------

def test_good_dataset_attributes_resolve_to_texts():
    vocab = load_vocabulary()
    attrs = parse(GOOD)
    assert [la.name for la in attrs.lesion_labels] == ["kidney tumor", "odd lesion"]
    assert attrs.labels["kidney"].descriptions == {ORGAN_ASPECT: ("normal kidney parenchyma",)}
    assert attrs.labels["odd lesion"].organ == "spleen" and attrs.labels["odd lesion"].disease is None
    merged = attrs.descriptions_for("case_00000", "kidney tumor")
    assert merged["density"] == (vocab.text("density", "hyperdense"), vocab.text("density", "isodense"))
    # Aspects the case leaves out come from the label's disease.
    assert merged["shape"] == attrs.knowledge_table["kidney tumor"].descriptions["shape"]
    assert attrs.descriptions_for("case_00001", "kidney tumor") == dict(attrs.labels["kidney tumor"].descriptions)
    assert attrs.label_by_value(3).name == "odd lesion"


def test_free_text_is_allowed_where_keys_are():
    raw = changed(**{"cases/case_00000/kidney tumor": {"density": "slightly hypodense with a thin rim"}})
    raw["labels"]["odd lesion"]["attributes"]["shape"] = "a lobulated oval mass"
    attrs = parse(raw)
    assert attrs.cases["case_00000"]["kidney tumor"]["density"] == ("slightly hypodense with a thin rim",)
    assert attrs.labels["odd lesion"].descriptions["shape"] == ("a lobulated oval mass",)


# --- dataset attribute files: each kind of bad input --------------------------------------------------------------

def test_bad_json_names_file_and_line(tmp_path):
    folder = make_raw_dataset(tmp_path / "Dataset510_Json", {"kidney": 1}, CASES[:1], None)
    (folder / "malenia_attributes.json").write_text('{"labels": {\n  "kidney": {"description": "x"}\n  "a": 1}\n')
    with pytest.raises(MaleniaInputError) as e:
        load_dataset_attributes(folder)
    (problem,) = e.value.problems
    assert problem.file.endswith("malenia_attributes.json") and problem.where.startswith("line 3 column")
    assert "invalid JSON" in problem.message


@pytest.mark.parametrize("edits,expected", [
    ({"labels/odd lesion/attributes/colour": "red"}, "attrs.json: labels.odd lesion.attributes.colour: unknown aspect"),
    ({"labels/odd lesion/attributes/density": "hypodens"},
     "attrs.json: labels.odd lesion.attributes.density[0]: unknown density value key 'hypodens'"),
    ({"labels/odd lesion/attributes/density": []},
     "attrs.json: labels.odd lesion.attributes.density: must be a description or a non-empty list"),
    ({"labels/odd lesion/attributes/surface": None},
     "attrs.json: labels.odd lesion.attributes: missing aspects: surface"),
    ({"labels/odd lesion/organ": None}, "attrs.json: labels.odd lesion.organ: missing"),
    ({"labels/kidney tumor/disease": "kidney tumour"},
     "attrs.json: labels.kidney tumor.disease: unknown disease 'kidney tumour'"),
    ({"labels/lung tumor": {"disease": "lung tumor"}},
     "attrs.json: labels.lung tumor: no foreground label 'lung tumor' in dataset.json"),
    ({"labels/kidney tumor": None}, "attrs.json: labels.kidney tumor: label 'kidney tumor' of dataset.json is not "
                                    "described"),
    ({"labels/kidney": {"description": "kidney", "disease": "kidney cyst"}},
     "attrs.json: labels.kidney: give exactly one of"),
    ({"cases/case_00099": {"kidney tumor": {"density": "hypodense"}}},
     "attrs.json: cases.case_00099: no such case in imagesTr/labelsTr"),
    ({"cases/case_00000/liver tumor": {"density": "hypodense"}},
     "attrs.json: cases.case_00000.liver tumor: no foreground label 'liver tumor' in dataset.json"),
    ({"cases/case_00000/kidney": {"density": "hypodense"}},
     "attrs.json: cases.case_00000.kidney: 'kidney' is an organ label"),
    ({"cases/case_00000/kidney tumor/shape": "roundish"},
     "attrs.json: cases.case_00000.kidney tumor.shape[0]: unknown shape value key 'roundish'"),
    ({"format_version": 2}, "attrs.json: format_version: unsupported version 2"),
    # typos would otherwise drop data silently: training refuses them, not only nnUNetv2_malenia_check
    ({"case": {}}, "attrs.json: case: unknown top-level key"),
    ({"labels/kidney tumor/atributes": {}}, "attrs.json: labels.kidney tumor.atributes: unknown key in a label entry"),
])
def test_bad_dataset_attributes_name_file_and_key_path(edits, expected):
    problems = problems_of(changed(**edits))
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_are_collected_not_just_the_first():
    raw = changed(**{"labels/kidney tumor/disease": "nope", "cases/case_00099": {"kidney tumor": {}},
                     "labels/odd lesion/attributes/shape": "blobby"})
    assert len(problems_of(raw)) == 3


def test_non_integer_label_value_is_a_problem_not_a_traceback():
    dataset_json = {"labels": {"background": 0, "kidney tumor": "one"}}
    with pytest.raises(MaleniaInputError) as e:
        parse_dataset_attributes({"labels": {"kidney tumor": {"disease": "kidney tumor"}}}, dataset_json,
                                 "attrs.json", None, "dj.json")
    assert "dj.json: labels.kidney tumor: label value must be an integer" in str(e.value)


def test_region_based_labels_are_rejected():
    dataset_json = {"labels": {"background": 0, "kidney": [1, 2], "kidney tumor": 2}}
    with pytest.raises(MaleniaInputError) as e:
        parse_dataset_attributes({"labels": {"kidney tumor": {"disease": "kidney tumor"}}}, dataset_json,
                                 "attrs.json", None, "dj.json")
    assert "dj.json: labels.kidney: region-based labels are not supported" in str(e.value)


# --- user knowledge tables ---------------------------------------------------------------------------------------

SPLENIC_CYST = {"organ": "spleen", "attributes": dict(SPLEEN_LESION, specific_features="fluid_density")}


def write_table(path: Path, diseases: dict) -> Path:
    path.write_text(json.dumps({"format_version": 1, "diseases": diseases}), encoding="utf-8")
    return path


def test_user_table_extends_and_overrides_the_default(tmp_path):
    override = dict(load_knowledge_table()["kidney cyst"].value_keys)
    override = {"organ": "kidney", "paper_split": "seen",
                "attributes": {**{a: list(v) for a, v in override.items()}, "shape": "irregular"}}
    user = write_table(tmp_path / "my_diseases.json", {"splenic cyst": SPLENIC_CYST, "kidney cyst": override})
    table = load_knowledge_table(user)
    assert len(table.names) == 13 and table["splenic cyst"].paper_split is None
    assert table["kidney cyst"].value_keys["shape"] == ("irregular",)
    assert table.files[-1] == str(user)

    # The dataset attribute file names its table relative to itself; labels can then use the new disease.
    dataset_json = {"labels": {"background": 0, "spleen lesion": 1}}
    raw = {"knowledge_table": "my_diseases.json", "labels": {"spleen lesion": {"disease": "splenic cyst"}}}
    attrs = parse_dataset_attributes(raw, dataset_json, str(tmp_path / "malenia_attributes.json"))
    assert attrs.labels["spleen lesion"].organ == "spleen"
    assert "splenic cyst" in attrs.knowledge_table


def test_bad_user_table_names_file_and_key_path(tmp_path):
    bad = dict(SPLENIC_CYST, attributes=dict(SPLENIC_CYST["attributes"], location="spleeen"))
    user = write_table(tmp_path / "bad.json", {"splenic cyst": bad})
    with pytest.raises(MaleniaInputError) as e:
        load_knowledge_table(user)
    assert str(e.value.problems[0]).startswith(f"{user}: diseases.splenic cyst.attributes.location[0]: unknown "
                                               f"location value key 'spleeen'")
    missing = write_table(tmp_path / "missing.json", {"splenic cyst": {"organ": "spleen", "attributes": {}}})
    with pytest.raises(MaleniaInputError) as e:
        load_knowledge_table(missing)
    assert "diseases.splenic cyst.attributes: missing aspects: enhancement_status" in str(e.value)


def test_missing_user_table_is_reported_from_the_attribute_file(tmp_path):
    raw = changed(knowledge_table="nowhere.json")
    with pytest.raises(MaleniaInputError) as e:
        parse_dataset_attributes(raw, DATASET_JSON, str(tmp_path / "attrs.json"), CASES)
    assert "attrs.json: knowledge_table: file not found" in str(e.value)


def test_user_vocabulary_errors_name_key_path(tmp_path):
    raw = json.loads(Path(load_vocabulary().source).read_text(encoding="utf-8"))
    raw["spreadsheet_codes"]["shape"]["*"]["3"] = "squarish"
    del raw["aspects"]["surface"]
    path = tmp_path / "aspects.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MaleniaInputError) as e:
        load_vocabulary(path)
    text = str(e.value)
    assert f"{path}: aspects: missing aspects: surface" in text
    assert f"{path}: spreadsheet_codes.shape.*.3: 'squarish' is not a shape value key" in text
