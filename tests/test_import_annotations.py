"""Annotation spreadsheet importer: the real workbook, crafted noisy workbooks, id mappings and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_raw_dataset
from nnunetv2_malenia.attributes.dataset_attributes import parse_dataset_attributes
from nnunetv2_malenia.attributes.import_annotations import (AnnotationRow, default_case_id, import_rows, main,
                                                            read_annotation_workbook, read_id_mapping, split_codes)
from nnunetv2_malenia.errors import MaleniaInputError

HEADER = ["ID", "1) 增强情况", "2) 病灶部位", "3) 形状", "4) 亮度变化", "5) 亮度变化", "6) 表面表现",
          "7) 与周围器官关系", "病灶的影像学完整结构化报告"]


def write_xlsx(path: Path, sheets: dict) -> Path:
    """sheets: title -> list of rows (each a list of cell values); written with openpyxl."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        ws = workbook.create_sheet(title)
        for row in rows:
            ws.append(row)
    workbook.save(path)
    return path


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if exit_info.value.code:
        from bad_inputs import record

        record("nnUNetv2_malenia_import_annotations", argv, exit_info.value.code, err)
    return exit_info.value.code, out, err


def by_case(rows, sheet):
    """raw case id -> its first row in ``sheet``."""
    out = {}
    for r in rows:
        if r.sheet == sheet:
            out.setdefault(r.raw_case_id, r)
    return out


# --- the real workbook -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real():
    from conftest import ANNOTATIONS_XLSX

    if not ANNOTATIONS_XLSX.is_file():
        pytest.skip(f"annotation spreadsheet not found at {ANNOTATIONS_XLSX} (shared/ must sit beside the repo)")
    rows, problems = read_annotation_workbook(ANNOTATIONS_XLSX)
    return ANNOTATIONS_XLSX, rows, problems


def test_real_workbook_row_counts(real):
    _, rows, _ = real
    per_sheet = {}
    for r in rows:
        per_sheet[r.sheet] = per_sheet.get(r.sheet, 0) + 1
    # Data rows minus example rows: 肾癌 162-1, 肾囊肿 67-1, 肝癌 42-2, 胰腺癌 37 (its odd id '1' is kept here:
    # an id mapping may still place it; the importer skips it by default).
    assert per_sheet == {"肾癌": 161, "肾囊肿": 66, "肝癌": 40, "胰腺癌": 37}
    assert all(isinstance(r, AnnotationRow) for r in rows)
    result = import_rows(rows, "x.xlsx")
    imported = {s: summary.imported for s, summary in result.summaries.items()}
    assert imported == {"肾癌": 160, "肾囊肿": 66, "肝癌": 39, "胰腺癌": 36}
    assert len(result.cases) == 238          # 160 + 39 + 36 KiTS/MSD cases, 3 cysts on cases without a tumour row
    assert set(result.labels) == {"kidney tumor", "kidney cyst", "liver tumor", "pancreas tumor"}


def test_real_workbook_rows_checked_by_hand(real):
    """Codes read off the sheet and their meaning from the headers, compared with the report text by eye."""
    _, rows, _ = real
    # 肾癌 row 5, case_00001: 2 2 2 1 1 1 1 -- "An irregular hypodense lesion is seen in the right kidney,
    # homogeneous internally, with well-defined margins."
    r = by_case(rows, "肾癌")["case_00001"]
    assert (r.row, r.disease, r.organ) == (5, "kidney tumor", "kidney")
    assert r.codes["location"] == ("2",)
    assert r.values == {"enhancement_status": ("contrast_enhanced",), "location": ("right_kidney",),
                        "shape": ("irregular",), "density": ("hypodense",), "density_variation": ("homogeneous",),
                        "surface": ("well_defined",), "relationship": ("not_close",)}
    assert r.report.startswith("Contrast-enhanced CT: An irregular hypodense lesion is seen in the right kidney")
    # 肝癌 row 7, liver_3.nii: 2 1 2 1 2 2 1 -- "patchy hypodense lesion in the left hepatic lobe, heterogeneous,
    # poorly defined margins".
    r = by_case(rows, "肝癌")["liver_3.nii"]
    assert r.row == 7 and r.organ == "liver"
    assert r.values["location"] == ("liver_left_lobe",) and r.values["density_variation"] == ("heterogeneous",)
    assert r.values["surface"] == ("ill_defined",) and r.values["shape"] == ("irregular",)
    # 胰腺癌 row 31, pancreas_124.nii: 2 2 2 1 2 2 2 -- "in the pancreatic body ... closely related to the liver
    # with indistinct demarcation".
    r = by_case(rows, "胰腺癌")["pancreas_124.nii"]
    assert r.row == 31 and r.values["location"] == ("pancreas_body",)
    assert r.values["relationship"] == ("close_unclear_boundary",)


def test_real_workbook_multi_code_and_blank_cells(real):
    path, rows, problems = real
    # 肾囊肿 row 48, case_00119: location '1、2' -- "lesions are seen in both kidneys".
    r = by_case(rows, "肾囊肿")["case_00119"]
    assert r.codes["location"] == ("1", "2")
    assert r.values["location"] == ("left_kidney", "right_kidney")
    # 肾囊肿 row 43, case_00110: column B blank -> a problem; the other six aspects still import.
    r = by_case(rows, "肾囊肿")["case_00110"]
    assert "enhancement_status" not in r.values and len(r.values) == 6
    messages = [str(p) for p in problems]
    assert f"{path}: sheet 肾囊肿 row 43 column B: blank cell; aspect left to the label's default" in messages
    # liver_34.nii: nothing but the id -> one problem for the row, not eight.
    assert f"{path}: sheet 肝癌 row 37 columns B-I: row of 'liver_34.nii' has no codes and no report" in messages
    assert sum("row 37" in m for m in messages) == 1
    assert sum("example row" in m for m in messages) == 4                 # 肾癌 1, 肾囊肿 1, 肝癌 2
    assert len(problems) == 6


def test_real_workbook_cli_summary(real, tmp_path, capsys):
    path, _, _ = real
    code, out, err = run_cli(capsys, path, "-o", tmp_path / "attrs.json", "--records", tmp_path / "records.json")
    assert code == 0
    assert "imported 301 rows into 238 cases" in out
    lines = {line.split("\t")[0].strip(): line.split() for line in out.splitlines() if "\t" in line}
    assert lines["肾癌"][-4:] == ["162", "160", "2", "2"]             # read, imported, skipped, problems
    assert lines["肾囊肿"][-4:] == ["67", "66", "1", "2"]
    assert lines["肝癌"][-4:] == ["42", "39", "3", "4"]
    assert lines["胰腺癌"][-4:] == ["37", "36", "1", "1"]
    assert lines["肺癌"][-4:] == ["0", "0", "0", "0"]
    assert "sheet 肾癌 row 3 column A: id 'imaging.nii' does not identify a case" in err
    assert "sheet 胰腺癌 row 2 column A: id '1' does not identify a case" in err
    attrs = json.loads((tmp_path / "attrs.json").read_text(encoding="utf-8"))
    assert attrs["cases"]["liver_3"]["liver tumor"]["location"] == "liver_left_lobe"
    assert attrs["cases"]["case_00119"]["kidney cyst"]["location"] == ["left_kidney", "right_kidney"]
    assert attrs["labels"]["pancreas tumor"] == {"disease": "pancreas tumor"}
    records = json.loads((tmp_path / "records.json").read_text(encoding="utf-8"))["rows"]
    assert len(records) == 304 and sum(r["imported"] for r in records) == 301
    imaging = next(r for r in records if r["raw_case_id"] == "imaging.nii")
    assert imaging["case_id"] is None and imaging["codes"]["density"] == ["3"] and imaging["report"]
    # The written file is a valid attribute file for a dataset with these labels.
    dataset_json = {"labels": {"background": 0, "kidney tumor": 1, "kidney cyst": 2, "liver tumor": 3,
                               "pancreas tumor": 4}}
    parsed = parse_dataset_attributes(attrs, dataset_json, "attrs.json")
    assert len(parsed.cases) == 238


def test_real_workbook_against_a_raw_dataset_then_check(real, nnunet_raw, capsys):
    """-d: unknown cases and labels of other sheets are reported and left out; the result passes the check."""
    from nnunetv2_malenia.attributes.check import main as check_main

    path, _, _ = real
    folder = make_raw_dataset(nnunet_raw / "Dataset520_Kits", {"kidney tumor": 1}, ["case_00000", "case_00001"])
    code, out, err = run_cli(capsys, path, "-d", "520")
    assert code == 0
    assert "imported 2 rows into 2 cases" in out
    # one line per sheet for the rows of cases outside the dataset, not one per row
    line = next(l for l in err.splitlines() if "sheet 肾癌 column A:" in l)
    assert "row(s) name cases that are not in the dataset's imagesTr, e.g. 'case_00002' (row 6)" in line
    assert err.count("not in the dataset's imagesTr") == len({l.split(":")[1] for l in err.splitlines()
                                                             if "not in the dataset's imagesTr" in l})
    assert "sheet 肝癌: label 'liver tumor' is not a label of dataset.json (kidney tumor); sheet skipped" in err
    attrs = json.loads((folder / "malenia_attributes.json").read_text(encoding="utf-8"))
    assert set(attrs["cases"]) == {"case_00000", "case_00001"}
    with pytest.raises(SystemExit) as e:
        check_main(["520", "-np", "1"])
    assert e.value.code == 0
    assert "cases with per-case descriptions: 2 of 2" in capsys.readouterr().out


# --- crafted workbooks -------------------------------------------------------------------------------------------

def test_split_codes():
    assert split_codes("1、2", {"1", "2"}) == ("1", "2")
    assert split_codes("1,2", {"1", "2"}) == ("1", "2")
    assert split_codes("2，1", {"1", "2"}) == ("2", "1")
    assert split_codes("12", {"1", "2"}) == ("1", "2")
    assert split_codes("13", {"1", "2"}) == ("13",)                   # 3 is no code: not split, reported whole
    assert split_codes("2.0", {"1", "2"}) == ("2",)
    assert split_codes("1 1", {"1", "2"}) == ("1",)


@pytest.fixture
def noisy_xlsx(tmp_path) -> Path:
    kidney = [HEADER,
              ["Example 1", 2, 1, 1, 1, 1, 1, 1, "example report"],
              ["case_00010", 2, 3, 1, 1, 1, 1, 1, "left kidney lesion"],             # location 3: out of range
              ["case_00011", 2, 12, 1, 1, 1, 1, 1, "lesions in both kidneys"],       # 12 -> 1 and 2
              ["case_00012", 2.0, "1,2", 1, 4, 1, 1, 1, "density 4 is out of range"],
              [None, None, None, None, None, None, None, None, None],               # spacer row, ignored
              [" case_00013.nii.gz ", 1, 2, 2, 2, 2, 2, 2, None],                    # blank report
              [None, 2, 1, 1, 1, 1, 1, 1, "no id"],
              ["case_00014", 9, 9, 9, 9, 9, 9, 9, "all codes bad"],
              ["case_00010", 2, 1, 1, 1, 1, 1, 1, "duplicate"]]
    lung = [HEADER, ["lung_001.nii", 1, 4, 2, 4, 2, 2, 1, "spiculated mixed nodule in the right middle lobe"]]
    return write_xlsx(tmp_path / "noisy.xlsx", {"肾癌": kidney, "肺癌": lung, "Sheet1": [["notes"]]})


def test_crafted_workbook_problems_name_sheet_row_column(noisy_xlsx):
    rows, problems = read_annotation_workbook(noisy_xlsx)
    messages = [str(p).split(": ", 1)[1] for p in problems]
    assert any(m.startswith("sheet 肾癌 row 3 column C: location code '3' is not valid for kidney") for m in messages)
    assert any(m.startswith("sheet 肾癌 row 5 column E: density code '4' is not valid") for m in messages)
    assert "sheet 肾癌 row 7 column I: blank report text" in messages
    assert "sheet 肾癌 row 8 column A: codes without a case id; skipped" in messages
    assert "sheet 肾癌 row 2 column A: example row 'Example 1'; skipped" in messages
    assert sum(m.startswith("sheet 肾癌 row 9 column ") for m in messages) == 7
    assert any(m.startswith("sheet Sheet1: unknown sheet title") for m in messages)
    kidney = by_case(rows, "肾癌")
    assert "location" not in kidney["case_00010"].values and kidney["case_00010"].codes["location"] == ("3",)
    assert len(kidney["case_00010"].values) == 6                      # the other aspects survive
    assert kidney["case_00011"].values["location"] == ("left_kidney", "right_kidney")
    assert kidney["case_00012"].values["enhancement_status"] == ("contrast_enhanced",)
    assert kidney["case_00012"].values["location"] == ("left_kidney", "right_kidney")
    assert kidney["case_00014"].values == {}
    lung = by_case(rows, "肺癌")["lung_001.nii"]                       # the lung code tables differ
    assert lung.values["density"] == ("mixed_ground_glass_solid",)
    assert lung.values["surface"] == ("spiculated",) and lung.values["location"] == ("lung_right_middle_lobe",)


def test_crafted_workbook_import(noisy_xlsx):
    rows, _ = read_annotation_workbook(noisy_xlsx)
    result = import_rows(rows, str(noisy_xlsx))
    assert set(result.cases) == {"case_00010", "case_00011", "case_00012", "case_00013", "lung_001"}
    assert result.summaries["肾癌"].imported == 4
    assert result.cases["case_00010"]["kidney tumor"]["shape"] == ["round_like"]     # first row wins
    messages = [str(p) for p in result.problems]
    assert any("row 9: no valid code for 'case_00014'; skipped" in m for m in messages)
    assert any("row 10 column A: case 'case_00010' already given for 'kidney tumor' in row 3" in m for m in messages)


def test_default_case_id_rule():
    assert default_case_id("liver_3.nii") == ("liver_3", "")
    assert default_case_id(" case_00000 ") == ("case_00000", "")
    assert default_case_id("pancreas_001.NII.GZ") == ("pancreas_001", "")
    for odd in ("imaging.nii", "1", "Example 1", ""):
        assert default_case_id(odd)[0] is None, odd


def test_id_mapping_files_override_the_rule(noisy_xlsx, tmp_path):
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text("spreadsheet_id,case_id\ncase_00011,kits_011\nlung_001.nii,lung_0001\n", encoding="utf-8")
    json_file = tmp_path / "ids.json"
    json_file.write_text(json.dumps({"case_00011": "kits_011", "lung_001.nii": "lung_0001"}), encoding="utf-8")
    assert read_id_mapping(csv_file) == read_id_mapping(json_file) == {"case_00011": "kits_011",
                                                                       "lung_001.nii": "lung_0001"}
    rows, _ = read_annotation_workbook(noisy_xlsx)
    result = import_rows(rows, "x", id_mapping=read_id_mapping(csv_file))
    assert {"kits_011", "lung_0001", "case_00010"} <= set(result.cases)
    assert "case_00011" not in result.cases


def test_bad_id_mapping_files(tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\nc,d,e\na,f\ng,\n", encoding="utf-8")
    with pytest.raises(MaleniaInputError) as e:
        read_id_mapping(bad_csv)
    wheres = [p.where for p in e.value.problems]
    assert wheres == ["line 2", "line 3", "line 4"]
    assert "mapped twice" in e.value.problems[1].message


def test_cli_label_name_merge_and_overwrite(noisy_xlsx, tmp_path, capsys):
    existing = {"format_version": 1,
                "labels": {"kidney": {"organ": "kidney", "description": "normal kidney"},
                           "rcc": {"disease": "kidney tumor"}},
                "cases": {"case_00011": {"rcc": {"specific_features": "calcification", "location": "left_kidney"}},
                          "case_00099": {"rcc": {"density": "isodense"}}}}
    target = tmp_path / "malenia_attributes.json"
    target.write_text(json.dumps(existing), encoding="utf-8")
    # Without --merge an existing file is left alone.
    code, _, err = run_cli(capsys, noisy_xlsx, "-o", target)
    assert code == 2 and "exists; use --merge" in err
    assert json.loads(target.read_text()) == existing

    code, out, _ = run_cli(capsys, noisy_xlsx, "-o", target, "--merge", "--label-name", "肾癌=rcc")
    assert code == 0 and "added label 'lung tumor'" in out
    merged = json.loads(target.read_text(encoding="utf-8"))
    assert merged["labels"]["kidney"] == existing["labels"]["kidney"] and merged["labels"]["rcc"] == \
        {"disease": "kidney tumor"}
    assert merged["labels"]["lung tumor"] == {"disease": "lung tumor"}
    assert merged["cases"]["case_00099"] == existing["cases"]["case_00099"]
    # Imported aspects replace, aspects the sheet does not code (specific features) are kept.
    assert merged["cases"]["case_00011"]["rcc"]["specific_features"] == "calcification"
    assert merged["cases"]["case_00011"]["rcc"]["location"] == ["left_kidney", "right_kidney"]

    code, _, _ = run_cli(capsys, noisy_xlsx, "-o", target, "--overwrite")
    assert code == 0
    assert set(json.loads(target.read_text())["labels"]) == {"kidney tumor", "lung tumor"}


def test_cli_exit_2_on_unreadable_or_foreign_files(tmp_path, capsys):
    not_xlsx = tmp_path / "notes.xlsx"
    not_xlsx.write_text("just text")
    code, _, err = run_cli(capsys, not_xlsx, "-o", tmp_path / "a.json")
    assert code == 2 and "cannot read as an .xlsx workbook" in err
    foreign = write_xlsx(tmp_path / "foreign.xlsx", {"Sheet1": [["ID", "x"], ["case_1", 1]]})
    code, _, err = run_cli(capsys, foreign, "-o", tmp_path / "a.json")
    assert code == 2 and "no sheet of the Malenia annotation format" in err
    shuffled = write_xlsx(tmp_path / "shuffled.xlsx", {"肾癌": [["ID"] + HEADER[2:3] + HEADER[1:2] + HEADER[3:],
                                                                 ["case_00000", 2, 1, 1, 1, 1, 1, 1, "r"]]})
    code, _, err = run_cli(capsys, shuffled, "-o", tmp_path / "a.json")
    assert code == 2 and "sheet 肾癌 row 1: header of column B should start with '1)'" in err
    only_examples = write_xlsx(tmp_path / "examples.xlsx", {"肾癌": [HEADER, ["Example 1", 2, 1, 1, 1, 1, 1, 1, "r"]]})
    code, _, err = run_cli(capsys, only_examples, "-o", tmp_path / "a.json")
    assert code == 2 and "no row could be imported; nothing written" in err
    code, _, err = run_cli(capsys, tmp_path / "missing.xlsx", "-o", tmp_path / "a.json")
    assert code == 2 and "annotation spreadsheet not found" in err
    code, _, err = run_cli(capsys, only_examples, "-o", tmp_path / "a.json", "--label-name", "胃癌=x")
    assert code == 2 and "expected SHEET=LABEL" in err
    assert not (tmp_path / "a.json").exists()


def test_cli_bad_dataset_argument_exits_2(noisy_xlsx, nnunet_raw, capsys):
    code, _, err = run_cli(capsys, noisy_xlsx, "-d", "kits")
    assert code == 2 and "give a dataset id" in err
    code, _, err = run_cli(capsys, noisy_xlsx, "-d", "Dataset530_Missing")
    assert code == 2 and "Dataset530_Missing: raw dataset folder not found" in err


def test_cli_refuses_merge_with_overwrite_and_unwritable_outputs(noisy_xlsx, tmp_path, capsys):
    from bad_inputs import run_bad

    target = tmp_path / "malenia_attributes.json"
    target.write_text(json.dumps({"format_version": 1, "labels": {}}), encoding="utf-8")
    before = target.read_text()
    _, err = run_bad(main, "nnUNetv2_malenia_import_annotations", [noisy_xlsx, "-o", target, "--merge", "--overwrite"],
                     "--merge and --overwrite together", capsys)
    assert "--merge/--overwrite: choose one" in err
    _, err = run_bad(main, "nnUNetv2_malenia_import_annotations", [noisy_xlsx, "-o", tmp_path],
                     "-o is a folder", capsys)
    assert f"{tmp_path}: -o: is a folder" in err
    _, err = run_bad(main, "nnUNetv2_malenia_import_annotations",
                     [noisy_xlsx, "-o", tmp_path / "new.json", "--records", target / "records.json"],
                     "--records below a file", capsys)
    assert "--records: cannot be created" in err
    assert target.read_text() == before and not (tmp_path / "new.json").exists()


def test_rows_of_cases_outside_the_dataset_are_summarised_per_sheet():
    rows = [AnnotationRow(sheet="肾癌", row=i + 2, raw_case_id=f"case_{i:05d}", disease="kidney tumor",
                          organ="kidney", codes={}, values={"density": ("hypodense",)}, report="")
            for i in range(50)]
    result = import_rows(rows, "x.xlsx", known_cases=["case_00000"], known_labels=["kidney tumor"])
    assert result.n_imported == 1
    [problem] = result.problems
    assert problem.message.startswith("49 row(s) name cases that are not in the dataset's imagesTr, e.g. "
                                      "'case_00001' (row 3)")
    assert result.summaries["肾癌"].skipped == 49
