"""MSD and KiTS23 converters on tiny synthetic folders laid out like the originals (file names, label values,
MSD's dataset.json fields, the macOS ._ files of the MSD archives, KiTS23's case folders)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nnunetv2_malenia.attributes.check import validate_raw_dataset
from nnunetv2_malenia.attributes.import_annotations import read_annotation_workbook
from nnunetv2_malenia.converters import kits23, msd
from nnunetv2_malenia.converters.common import check_diseases
from nnunetv2_malenia.errors import MaleniaInputError

SHAPE = (8, 8, 8)
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
HEADER = ["ID", "1) 增强情况", "2) 病灶部位", "3) 形状", "4) 亮度变化", "5) 亮度变化", "6) 表面表现",
          "7) 与周围器官关系", "病灶的影像学完整结构化报告"]
# The MSD labels as the real dataset.json files name them
MSD_LABELS = {
    "Task03_Liver": {"0": "background", "1": "liver", "2": "cancer"},
    "Task06_Lung": {"0": "background", "1": "cancer"},
    "Task07_Pancreas": {"0": "background", "1": "pancreas", "2": "cancer"},
    "Task08_HepaticVessel": {"0": "background", "1": "Vessel", "2": "Tumour"},
    "Task10_Colon": {"0": "background", "1": "colon cancer primaries"},
}
PREFIX = {"Task03_Liver": "liver_", "Task06_Lung": "lung_", "Task07_Pancreas": "pancreas_",
          "Task08_HepaticVessel": "hepaticvessel_", "Task10_Colon": "colon_"}


def write_nii(path: Path, array: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))


def segmentation(values) -> np.ndarray:
    """Value k fills slab z = 2k-2 .. 2k-1, so every value is present and countable (8 voxels x 8 = 128 each)."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    for k in values:
        seg[:, :, 2 * k - 2:2 * k] = k
    return seg


def make_msd(root: Path, task: str, train_ids, test_ids=(), labels=None, seg_values=None) -> Path:
    folder = root / task
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    labels = labels or MSD_LABELS[task]
    values = seg_values or [int(v) for v in labels if v != "0"]
    prefix = PREFIX[task]
    rng = np.random.default_rng(0)
    training = []
    for i in train_ids:
        name = f"{prefix}{i}.nii.gz"
        write_nii(folder / "imagesTr" / name, (rng.normal(40, 10, SHAPE)).astype(np.int16))
        write_nii(folder / "labelsTr" / name, segmentation(values))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    test = []
    for i in test_ids:
        name = f"{prefix}{i}.nii.gz"
        write_nii(folder / "imagesTs" / name, np.zeros(SHAPE, np.int16))
        test.append(f"./imagesTs/{name}")
    for sub in ("imagesTr", "labelsTr", "imagesTs"):    # AppleDouble junk the MSD tar files carry
        (folder / sub / f"._{prefix}{train_ids[0]}.nii.gz").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    dataset_json = {"name": task.split("_")[1], "description": "synthetic", "reference": "test", "licence":
                    "CC-BY-SA 4.0", "release": "1.0 04/05/2018", "tensorImageSize": "3D", "modality": {"0": "CT"},
                    "labels": labels, "numTraining": len(training), "numTest": len(test), "training": training,
                    "test": test}
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=4))
    return folder


def make_kits(root: Path, cases, seg_values=(1, 2, 3)) -> Path:
    dataset = root / "kits23" / "dataset"
    for case in cases:
        d = dataset / case
        (d / "instances").mkdir(parents=True)
        write_nii(d / "imaging.nii.gz", np.zeros(SHAPE, np.int16))
        write_nii(d / "segmentation.nii.gz", segmentation(seg_values))
        write_nii(d / "instances" / "kidney_instance-1_annotation-1.nii.gz", np.zeros(SHAPE, np.uint8))
    (dataset / "kits23.json").write_text(json.dumps([{"case_id": c} for c in cases]))
    return root / "kits23"


def write_xlsx(path: Path, sheets: dict) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        ws = workbook.create_sheet(title)
        ws.append(HEADER)
        for row in rows:
            ws.append(row)
    workbook.save(path)
    return path


def load_seg(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def no_leftovers(root: Path) -> bool:
    return not [p for p in root.iterdir() if p.name.startswith(".")]


# --- MSD -----------------------------------------------------------------------------------------------------------

def test_msd_liver_drops_organ_and_copies_test_images(tmp_path):
    src = make_msd(tmp_path / "src", "Task03_Liver", [0, 1], test_ids=[132])
    out = tmp_path / "raw"
    msd.main([str(src), "-o", str(out), "-np", "1"])
    ds = out / "Dataset003_Liver"
    dj = read(ds / "dataset.json")
    assert dj["labels"] == {"background": 0, "liver tumor": 1}
    assert dj["channel_names"] == {"0": "CT"} and dj["numTraining"] == 2 and dj["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == ["liver_0_0000.nii.gz", "liver_1_0000.nii.gz"]
    assert [p.name for p in (ds / "imagesTs").iterdir()] == ["liver_132_0000.nii.gz"]
    seg = load_seg(ds / "labelsTr" / "liver_0.nii.gz")
    source = load_seg(src / "labelsTr" / "liver_0.nii.gz")
    assert np.array_equal(seg, np.where(source == 2, 1, 0))          # tumour -> 1, liver -> background
    assert np.allclose(nib.load(str(ds / "labelsTr" / "liver_0.nii.gz")).affine, AFFINE)
    attrs = read(ds / "malenia_attributes.json")
    assert attrs["labels"] == {"liver tumor": {"disease": "liver tumor"}} and attrs["cases"] == {}
    validate_raw_dataset(ds)
    assert no_leftovers(out)


def test_msd_keep_organ_label(tmp_path):
    src = make_msd(tmp_path / "src", "Task03_Liver", [0])
    msd.main([str(src), "-o", str(tmp_path / "raw"), "-d", "503", "--keep-organ-label", "-np", "1"])
    ds = tmp_path / "raw" / "Dataset503_Liver"
    assert read(ds / "dataset.json")["labels"] == {"background": 0, "liver": 1, "liver tumor": 2}
    assert np.array_equal(load_seg(ds / "labelsTr" / "liver_0.nii.gz"), load_seg(src / "labelsTr" / "liver_0.nii.gz"))
    assert read(ds / "malenia_attributes.json")["labels"]["liver"]["organ"] == "liver"


@pytest.mark.parametrize("task,expected", [
    ("Task06_Lung", {"background": 0, "lung tumor": 1}),
    ("Task08_HepaticVessel", {"background": 0, "hepatic vessel tumor": 1}),
    ("Task10_Colon", {"background": 0, "colon tumor": 1}),
])
def test_msd_other_tasks(tmp_path, task, expected):
    src = make_msd(tmp_path / "src", task, [1])
    msd.main([str(src), "-o", str(tmp_path / "raw"), "-np", "1"])
    ds = next((tmp_path / "raw").iterdir())
    assert read(ds / "dataset.json")["labels"] == expected
    lesion_value = max(int(v) for v in MSD_LABELS[task])
    source = load_seg(src / "labelsTr" / f"{PREFIX[task]}1.nii.gz")
    assert np.array_equal(load_seg(ds / "labelsTr" / f"{PREFIX[task]}1.nii.gz"), (source == lesion_value) * 1)


def test_msd_spreadsheet_beats_reports_beats_defaults(tmp_path, annotations_xlsx):
    rows, _ = read_annotation_workbook(annotations_xlsx)
    sheet_row = next(r for r in rows if r.raw_case_id == "liver_0.nii")
    assert not any(r.raw_case_id == "liver_130.nii" for r in rows)     # no spreadsheet row: reports fill in
    src = make_msd(tmp_path / "src", "Task03_Liver", [0, 130, 131])
    reports = tmp_path / "parsed.json"
    reports.write_text(json.dumps({"format_version": 1, "cases": {
        "liver_0": {"liver tumor": {"location": "liver_left_lobe", "specific_features": "calcification"}},
        "liver_130": {"liver": {"shape": "irregular"}}}}))        # an organ label: the case's one liver lesion
    msd.main([str(src), "-o", str(tmp_path / "raw"), "--annotations", str(annotations_xlsx),
              "--reports", str(reports), "-np", "1"])
    attrs = read(tmp_path / "raw" / "Dataset003_Liver" / "malenia_attributes.json")
    liver_0 = attrs["cases"]["liver_0"]["liver tumor"]
    assert liver_0["location"] == sheet_row.values["location"][0] == "liver_right_lobe"   # spreadsheet wins
    assert liver_0["specific_features"] == "calcification"                                 # report fills the gap
    assert liver_0["density"] == sheet_row.values["density"][0]
    assert attrs["cases"]["liver_130"] == {"liver tumor": {"shape": "irregular"}}
    assert "liver_131" not in attrs["cases"]                                                # knowledge-table default
    validate_raw_dataset(tmp_path / "raw" / "Dataset003_Liver")


def _pancreas_workbook(path: Path) -> Path:
    codes = [2, 1, 1, 1, 1, 1, 1]
    return write_xlsx(path, {
        "胰腺癌": [["pancreas_004.nii", *codes, "tumour"], ["pancreas_005.nii", *codes, "tumour"]],
        "胰腺囊肿": [["pancreas_001.nii", *codes, "cyst"], ["pancreas_005.nii", *codes, "cyst"]],
        "肾癌": [["case_00000", *codes, "kidney rows are ignored for pancreas"]],
    })


def test_msd_pancreas_without_spreadsheet_is_all_tumour(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task07_Pancreas", ["001", "004"])
    msd.main([str(src), "-o", str(tmp_path / "raw"), "-np", "1"])
    assert "every MSD label-2 lesion is 'pancreas tumor'" in capsys.readouterr().out
    ds = tmp_path / "raw" / "Dataset007_Pancreas"
    assert read(ds / "dataset.json")["labels"] == {"background": 0, "pancreas tumor": 1}


def test_msd_pancreas_cyst_rows_split_tumour_and_cyst(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task07_Pancreas", ["001", "004", "005", "006"])
    xlsx = _pancreas_workbook(tmp_path / "sheet.xlsx")
    msd.main([str(src), "-o", str(tmp_path / "raw"), "--annotations", str(xlsx), "-np", "1"])
    captured = capsys.readouterr()
    assert "pancreas_005 is on both" in captured.err and "case_00000" not in captured.err
    ds = tmp_path / "raw" / "Dataset007_Pancreas"
    assert read(ds / "dataset.json")["labels"] == {"background": 0, "pancreas tumor": 1, "pancreas cyst": 2}
    lesion = segmentation([2]) == 2
    for case, value in (("001", 2), ("004", 1), ("005", 1), ("006", 1)):
        seg = load_seg(ds / "labelsTr" / f"pancreas_{case}.nii.gz")
        assert np.array_equal(seg, lesion * value), case
    attrs = read(ds / "malenia_attributes.json")
    assert attrs["labels"]["pancreas cyst"] == {"disease": "pancreas cyst"}
    assert set(attrs["cases"]["pancreas_001"]) == {"pancreas cyst"}
    assert set(attrs["cases"]["pancreas_005"]) == {"pancreas tumor"}       # both sheets: tumour row only
    assert "pancreas_006" not in attrs["cases"]
    validate_raw_dataset(ds)


# --- KiTS23 --------------------------------------------------------------------------------------------------------

def test_kits23_labels_and_spreadsheet(tmp_path, annotations_xlsx):
    src = make_kits(tmp_path, ["case_00000", "case_00002", "case_00003"])
    kits23.main([str(src), "-o", str(tmp_path / "raw"), "--annotations", str(annotations_xlsx), "-np", "1"])
    ds = tmp_path / "raw" / "Dataset220_KiTS2023"
    dj = read(ds / "dataset.json")
    assert dj["labels"] == {"background": 0, "kidney tumor": 1, "kidney cyst": 2}
    assert dj["overwrite_image_reader_writer"] == "NibabelIOWithReorient"
    expected = np.take([0, 0, 1, 2], segmentation([1, 2, 3]))           # kidney -> 0, tumor -> 1, cyst -> 2
    assert np.array_equal(load_seg(ds / "labelsTr" / "case_00000.nii.gz"), expected)
    attrs = read(ds / "malenia_attributes.json")
    assert set(attrs["labels"]) == {"kidney tumor", "kidney cyst"}
    assert attrs["cases"]["case_00000"]["kidney tumor"]["location"] == "right_kidney"
    assert attrs["cases"]["case_00002"]["kidney tumor"]["location"] == "left_kidney"
    assert attrs["cases"]["case_00002"]["kidney cyst"]["location"] == "right_kidney"
    validate_raw_dataset(ds)


def test_kits23_report_filed_under_the_organ_goes_to_the_lesion_present(tmp_path):
    src = make_kits(tmp_path, ["case_00000", "case_00001"])
    write_nii(src / "dataset" / "case_00001" / "segmentation.nii.gz", segmentation([1, 3]))     # cyst only
    reports = tmp_path / "parsed.json"
    reports.write_text(json.dumps({"cases": {"case_00000": {"kidney": {"shape": "round_like"}},
                                             "case_00001": {"kidney": {"shape": "round_like"}}}}))
    kits23.main([str(src), "-o", str(tmp_path / "raw"), "--reports", str(reports), "-np", "1"])
    attrs = read(tmp_path / "raw" / "Dataset220_KiTS2023" / "malenia_attributes.json")
    assert attrs["cases"] == {"case_00001": {"kidney cyst": {"shape": "round_like"}}}   # case_00000: tumour and cyst


def test_kits23_keep_organ_label_and_dataset_folder_argument(tmp_path):
    src = make_kits(tmp_path, ["case_00000"])
    kits23.main([str(src / "dataset"), "-o", str(tmp_path / "raw"), "-d", "221", "--keep-organ-label", "-np", "1"])
    ds = tmp_path / "raw" / "Dataset221_KiTS2023"
    assert read(ds / "dataset.json")["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3}
    assert np.array_equal(load_seg(ds / "labelsTr" / "case_00000.nii.gz"), segmentation([1, 2, 3]))


def test_nnunet_verify_accepts_the_result(tmp_path):
    """nnU-Net's own integrity check; it spawns a worker pool, so one small test only."""
    src = make_kits(tmp_path, ["case_00000"])
    kits23.main([str(src), "-o", str(tmp_path / "raw"), "--verify", "-np", "1"])
    assert (tmp_path / "raw" / "Dataset220_KiTS2023" / "labelsTr" / "case_00000.nii.gz").is_file()


def test_worker_pool_gives_the_same_result(tmp_path):
    src = make_msd(tmp_path / "src", "Task03_Liver", [0, 1])
    msd.main([str(src), "-o", str(tmp_path / "one"), "-np", "1"])
    msd.main([str(src), "-o", str(tmp_path / "two"), "-np", "2"])
    for case in ("liver_0", "liver_1"):
        assert np.array_equal(load_seg(tmp_path / "one" / "Dataset003_Liver" / "labelsTr" / f"{case}.nii.gz"),
                              load_seg(tmp_path / "two" / "Dataset003_Liver" / "labelsTr" / f"{case}.nii.gz"))


# --- errors --------------------------------------------------------------------------------------------------------

def _fails(main, argv, capsys) -> str:
    from bad_inputs import run_bad

    prog = "nnUNetv2_malenia_convert_msd" if main is msd.main else "nnUNetv2_malenia_convert_kits23"
    return run_bad(main, prog, argv, None, capsys)[1]


def test_error_missing_dataset_json(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task06_Lung", [1])
    (src / "dataset.json").unlink()
    err = _fails(msd.main, [str(src), "-o", str(tmp_path / "raw")], capsys)
    assert f"{src / 'dataset.json'}: dataset.json not found" in err
    assert not (tmp_path / "raw").exists()


def test_error_wrong_task_and_wrong_labels(tmp_path, capsys):
    prostate = tmp_path / "Task05_Prostate"
    prostate.mkdir()
    assert "not a supported MSD lesion task folder" in _fails(msd.main, [str(prostate), "-o", str(tmp_path)], capsys)
    src = make_msd(tmp_path / "src", "Task03_Liver", [0], labels=MSD_LABELS["Task06_Lung"], seg_values=[1])
    err = _fails(msd.main, [str(src), "-o", str(tmp_path / "raw")], capsys)
    assert "dataset.json: labels.1: expected 'liver'" in err and "labels.2: expected 'cancer'" in err


def test_error_unexpected_label_value_leaves_nothing(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task03_Liver", [0, 1])
    write_nii(src / "labelsTr" / "liver_1.nii.gz", segmentation([1, 2, 4]))
    out = tmp_path / "raw"
    err = _fails(msd.main, [str(src), "-o", str(out), "-np", "1"], capsys)
    assert f"{src / 'labelsTr' / 'liver_1.nii.gz'}: unexpected label values [4]" in err
    assert not out.exists()          # neither the dataset, nor its temporary folder, nor the root made for it


def test_error_missing_file_listed_in_training(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task10_Colon", [1, 2])
    (src / "labelsTr" / "colon_2.nii.gz").unlink()
    err = _fails(msd.main, [str(src), "-o", str(tmp_path / "raw")], capsys)
    assert "dataset.json: training[1].label: file not found" in err


def test_error_kits_missing_imaging_and_existing_target(tmp_path, capsys):
    src = make_kits(tmp_path, ["case_00000", "case_00001"])
    (src / "dataset" / "case_00001" / "imaging.nii.gz").unlink()
    err = _fails(kits23.main, [str(src), "-o", str(tmp_path / "raw")], capsys)
    assert "case_00001/imaging.nii.gz: file not found" in err
    (tmp_path / "raw" / "Dataset220_KiTS2023").mkdir(parents=True)
    (src / "dataset" / "case_00001" / "imaging.nii.gz").write_bytes(
        (src / "dataset" / "case_00000" / "imaging.nii.gz").read_bytes())
    assert "use --overwrite" in _fails(kits23.main, [str(src), "-o", str(tmp_path / "raw")], capsys)
    kits23.main([str(src), "-o", str(tmp_path / "raw"), "--overwrite", "-np", "1"])
    assert (tmp_path / "raw" / "Dataset220_KiTS2023" / "dataset.json").is_file() and no_leftovers(tmp_path / "raw")
    (tmp_path / "raw" / "Dataset221_Other").mkdir()
    assert "dataset id 221 is already taken" in _fails(kits23.main, [str(src), "-o", str(tmp_path / "raw"),
                                                                     "-d", "221"], capsys)


def test_error_bad_report_value_names_key(tmp_path, capsys):
    src = make_msd(tmp_path / "src", "Task06_Lung", [1])
    reports = tmp_path / "parsed.json"
    reports.write_text(json.dumps({"cases": {"lung_1": {"lung tumor": {"shape": "squarish"}}}}))
    err = _fails(msd.main, [str(src), "-o", str(tmp_path / "raw"), "--reports", str(reports)], capsys)
    assert "parsed.json: cases.lung_1.lung tumor.shape" in err


def test_knowledge_table_must_know_the_disease():
    check_diseases(["liver tumor", "kidney cyst"])
    with pytest.raises(MaleniaInputError, match="'spleen tumor' needed by this conversion"):
        check_diseases(["spleen tumor"])


def test_failed_conversion_keeps_an_existing_root_and_unwritable_root_fails_first(tmp_path, capsys):
    from bad_inputs import run_bad

    src = make_msd(tmp_path / "src", "Task06_Lung", [1])
    (src / "labelsTr" / "lung_1.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "raw"
    out.mkdir()
    run_bad(msd.main, "nnUNetv2_malenia_convert_msd", [src, "-o", out, "-np", "1"], "unreadable segmentation",
            capsys)
    assert out.is_dir() and list(out.iterdir()) == []   # the user's root stays, empty as it was
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _, err = run_bad(msd.main, "nnUNetv2_malenia_convert_msd", [src, "-o", blocker / "raw", "-np", "1"],
                     "-o below a file", capsys)
    assert "-o: cannot be created" in err and "converting" not in err
