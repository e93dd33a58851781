"""nnUNetv2_malenia_evaluate: metric functions on hand-computed cases, lesion detection and attribute matching
counts on crafted inputs, and the command end to end on tiny NIfTI files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.evaluation.attribute_matching import (ReportLesion, ValueCanon, best_reference_match,
                                                            parse_report, score_case)
from nnunetv2_malenia.evaluation.evaluate import evaluate_folders, main
from nnunetv2_malenia.evaluation.lesions import (DetectionCounts, component_index_map, detection_counts,
                                                 lesion_components, overlap_counts, precision_recall_f1)
from nnunetv2_malenia.evaluation.metrics import dice, surface_dice


def ball(shape, center_mm, radius_mm, spacing):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, center_mm)) <= radius_mm ** 2


# ------------------------------------------------------------------------------------------------ Dice and NSD
def test_dice_hand_computed_and_empty_convention():
    ref = np.zeros((4, 4, 4), bool)
    ref[0:2, 0:2, 0:2] = True                  # 8 voxels
    pred = np.zeros_like(ref)
    pred[0:1, 0:2, 0:2] = True                 # 4 voxels, all inside ref
    assert dice(ref, pred) == pytest.approx(2 * 4 / (8 + 4))
    assert dice(ref, ref) == 1.0
    empty = np.zeros_like(ref)
    assert math.isnan(dice(empty, empty))      # nnU-Net's convention: nothing to score
    assert dice(ref, empty) == 0.0 and dice(empty, pred) == 0.0


def test_nsd_identical_and_empty_convention():
    spacing = (1.0, 1.0, 1.0)
    a = ball((16, 16, 16), (8, 8, 8), 4, spacing)
    empty = np.zeros_like(a)
    assert surface_dice(a, a, spacing, 0.0) == 1.0
    assert math.isnan(surface_dice(empty, empty, spacing, 2.0))
    assert surface_dice(a, empty, spacing, 2.0) == 0.0 and surface_dice(empty, a, spacing, 2.0) == 0.0


def test_nsd_sphere_vs_shifted_sphere_matches_analytic_value():
    # Two spheres of radius R, centres d apart. A surface point at polar angle theta (cos = c) of one sphere lies
    # |sqrt(R^2 - 2Rdc + d^2) - R| from the other sphere; it is within tau for c in
    # [(d^2 - 2R tau - tau^2) / 2Rd, (d^2 + 2R tau - tau^2) / 2Rd], and area is uniform in c on [-1, 1].
    # R = 10, d = 4, tau = 2: c in [-0.35, 0.65] -> NSD = 1.0 / 2 = 0.5 exactly, for both surfaces.
    spacing = (0.5, 0.5, 0.5)
    shape = (80, 64, 64)
    a = ball(shape, (18, 16, 16), 10, spacing)
    b = ball(shape, (22, 16, 16), 10, spacing)
    assert surface_dice(a, b, spacing, 2.0) == pytest.approx(0.5, abs=0.05)
    # bound: a shift d <= tau keeps every surface point within d of the other surface -> NSD = 1
    c = ball(shape, (19.5, 16, 16), 10, spacing)
    assert surface_dice(a, c, spacing, 1.5) == pytest.approx(1.0)
    # and it grows with the tolerance
    assert surface_dice(a, b, spacing, 1.0) < surface_dice(a, b, spacing, 2.0) < surface_dice(a, b, spacing, 3.0)


def test_nsd_anisotropic_spacing_counts_in_mm_along_the_right_axis():
    a = np.zeros((20, 12, 12), bool)
    a[6:12, 3:9, 3:9] = True
    b = np.roll(a, 2, axis=0)                   # shifted 2 voxels along array axis 0
    # 2 voxels of 1 mm along the shift axis: every boundary point within 2 mm -> 1, however wide the others are
    assert surface_dice(a, b, (1.0, 3.0, 3.0), 2.0) == pytest.approx(1.0)
    # the same voxels with 3 mm along the shift axis: a 6 mm shift, top and bottom faces out of tolerance
    stretched = surface_dice(a, b, (3.0, 1.0, 1.0), 2.0)
    assert stretched < 0.9
    assert surface_dice(a, b, (3.0, 1.0, 1.0), 6.0) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ lesions, detection
def test_lesion_components_order_and_26_connectivity():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[0, 0, 0] = 2                  # label 2 comes first in C order ...
    lab[1, 1, 1] = 2                  # ... and touches the voxel above only at a corner: one lesion (26-conn)
    lab[4, 4, 4] = 2
    lab[3:5, 0:2, 0:2] = 1
    comps = lesion_components(lab)
    assert [(c.id, c.label, c.num_voxels) for c in comps] == [(0, 1, 8), (1, 2, 2), (2, 2, 1)]
    index = component_index_map(lab.shape, comps)
    assert index[1, 1, 1] == 2 and index[4, 4, 4] == 3 and index[3, 0, 0] == 1 and index[2, 2, 2] == 0
    assert [c.label for c in lesion_components(lab, labels=[2])] == [2, 2]


def test_detection_counts_on_crafted_blobs():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[0:2, 0:2, 0:2] = 1            # A: found by a 1-voxel overlap
    ref[5:7, 0:2, 0:2] = 1            # B: missed
    ref[0:2, 6:8, 6:8] = 1            # C: missed
    ref[8:10, 8:10, 8:10] = 2         # another disease: overlap with it does not count for disease 1
    pred = np.zeros_like(ref)
    pred[1:4, 1:4, 1:4] = 1           # touches A at one voxel
    pred[8:10, 8:10, 8:10] = 1        # false positive for disease 1 (sits on a disease-2 lesion)
    rc, pc = lesion_components(ref), lesion_components(pred)
    overlaps = overlap_counts(component_index_map(ref.shape, rc), component_index_map(pred.shape, pc))
    counts = detection_counts([c.id for c in rc if c.label == 1], [c.id for c in pc if c.label == 1], overlaps)
    assert (counts.n_reference, counts.n_predicted, counts.reference_detected, counts.predicted_correct) == (3, 2, 1, 1)
    p, r, f1 = precision_recall_f1(counts)
    assert (p, r) == (pytest.approx(0.5), pytest.approx(1 / 3))
    assert f1 == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
    assert precision_recall_f1(DetectionCounts(2, 0, 0, 0)) == (None, 0.0, 0.0)     # all misses
    assert precision_recall_f1(DetectionCounts(0, 0, 0, 0)) == (None, None, None)


# ------------------------------------------------------------------------------------------ attribute matching
def test_report_values_are_canonicalised_through_the_vocabulary():
    from nnunetv2_malenia.attributes import load_vocabulary

    canon = ValueCanon(load_vocabulary())
    problems = []
    lesions = parse_report({"case": "c", "scan": {"enhancement_status": {"value": "contrast_enhanced"}}, "lesions": [
        {"id": 0, "label": 1, "attributes": {
            "density": {"value": None, "description": "Hypodense, lower density than the surrounding parenchyma."},
            "shape": {"value": "round_like", "description": "ignored when the key is known"},
            "surface": {"value": None, "description": "A  Smooth rim."}},
         "diseases": [{"name": "kidney cyst", "score": 0.2}, {"name": "kidney tumor", "score": 0.8}]}]},
        "r.json", canon, problems)
    assert problems == []
    (lesion,) = lesions
    assert lesion.values["density"] == "hypodense"                 # vocabulary text -> its key
    assert lesion.values["shape"] == "round_like"
    assert lesion.values["surface"] == "a smooth rim"               # free text, normalised
    assert lesion.values["enhancement_status"] == "contrast_enhanced"   # from the scan
    assert lesion.values["location"] is None
    assert lesion.top_disease == "kidney tumor"                     # best score even if the list is unsorted
    bad = []
    parse_report({"lesions": [{"id": -1, "label": 1}, {"id": 0, "label": "x"}]}, "bad.json", canon, bad)
    assert [p.where for p in bad] == ["lesions[0].id", "lesions[1].label"]


def test_attribute_matching_counts_on_crafted_report():
    # reference lesions 0 (cyst) and 1 (tumor); predicted 0 and 2 both overlap reference 0 (2 beats 0 on voxels),
    # predicted 1 overlaps reference 1, predicted 3 overlaps nothing
    overlaps = {(0, 0): 3, (0, 2): 5, (1, 1): 4, (1, 2): 1}
    match = best_reference_match(overlaps)
    assert match == {0: 0, 1: 1, 2: 0}
    reference = {0: ("kidney cyst", {"density": frozenset({"hypodense"}), "shape": frozenset({"round_like"})}),
                 1: ("kidney tumor", {"density": frozenset({"hyperdense", "isodense"})}),
                 2: ("kidney tumor", {"density": frozenset({"isodense"})})}        # never matched: a miss
    lesions = [ReportLesion(0, 1, {"density": "hypodense", "shape": "irregular"}, "kidney cyst"),   # TP, FP
               ReportLesion(1, 2, {"density": "isodense"}, "kidney cyst"),                        # TP, wrong disease
               ReportLesion(2, 1, {"density": "hypodense", "shape": None}, "kidney cyst"),        # TP again on ref 0
               ReportLesion(3, 1, {"density": "hypodense"}, "kidney tumor")]                      # unmatched: FP
    counts = score_case(lesions, match, reference).as_dict()
    density, shape = counts["per_aspect"]["density"], counts["per_aspect"]["shape"]
    assert (density["tp_predicted"], density["predicted_with_value"], density["precision"]) == (3, 4, 0.75)
    # recall counts reference lesions: 0 and 1 hit (0 twice), 2 missed
    assert (density["tp_reference"], density["reference_with_aspect"]) == (2, 3)
    assert density["recall"] == pytest.approx(2 / 3)
    assert (shape["tp_predicted"], shape["predicted_with_value"], shape["tp_reference"],
            shape["reference_with_aspect"]) == (0, 1, 0, 1)
    assert counts["per_aspect"]["location"]["precision"] is None
    ident = counts["disease_identification"]
    assert (ident["correct"], ident["matched"]) == (2, 3)


# ------------------------------------------------------------------------------------------------ end to end
def write_label_map(array: np.ndarray, path: Path, spacing=(1.0, 1.0, 1.0)) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.astype(np.uint8))          # array [Z, Y, X]
    image.SetSpacing(spacing)                                        # (x, y, z)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


@pytest.fixture
def tiny_evaluation(tmp_path):
    """Reference dataset (kidney cyst 1, kidney tumor 2, organ kidney 3) and a prediction that numbers the
    diseases differently (tumor 1, cyst 2, liver tumor 3), with lesion reports."""
    shape = (6, 12, 12)
    ref_root, pred = tmp_path / "Dataset001_Tiny", tmp_path / "pred"
    write_json({"labels": {"background": 0, "kidney cyst": 1, "kidney tumor": 2, "kidney": 3},
                "channel_names": {"0": "CT"}, "file_ending": ".nii.gz", "numTraining": 0}, ref_root / "dataset.json")
    write_json({"labels": {"background": 0, "kidney tumor": 1, "kidney cyst": 2, "liver tumor": 3},
                "file_ending": ".nii.gz"}, pred / "dataset.json")
    write_json({"format_version": 1,
                "labels": {"kidney cyst": {"disease": "kidney cyst"}, "kidney tumor": {"disease": "kidney tumor"},
                           "kidney": {"organ": "kidney", "description": "normal kidney"}},
                "cases": {"c1": {"kidney cyst": {"density": "hypodense", "shape": "round_like"}}}},
               ref_root / "malenia_attributes_test.json")
    r1 = np.zeros(shape, np.uint8)
    r1[1:4, 1:4, 1:4] = 1                     # cyst, 27 voxels
    r1[1:4, 7:10, 7:10] = 2                   # tumor, 27 voxels
    r1[5] = 3                                 # organ: not evaluated
    r2 = np.zeros(shape, np.uint8)
    r2[1:3, 1:3, 1:3] = 2                     # tumor, 8 voxels; no cyst in c2
    r2[5] = 3
    p1 = np.zeros(shape, np.uint8)
    p1[1:4, 7:10, 8:11] = 1                   # tumor shifted 1 voxel: 18 shared -> Dice 2*18/54
    p1[1:4, 1:4, 1:4] = 2                     # cyst exact
    p1[4, 10:12, 0:2] = 3                     # liver tumor: a predicted lesion matching nothing
    p2 = np.zeros(shape, np.uint8)            # nothing predicted in c2
    for arr, path in ((r1, ref_root / "labelsTs" / "c1.nii.gz"), (r2, ref_root / "labelsTs" / "c2.nii.gz"),
                      (p1, pred / "c1.nii.gz"), (p2, pred / "c2.nii.gz")):
        write_label_map(arr, path)
    assert [(c.id, c.label) for c in lesion_components(p1)] == [(0, 1), (1, 2), (2, 3)]
    attrs = lambda **kw: {a: {"value": v, "description": d, "score": 0.9} for a, (v, d) in kw.items()}
    write_json({"case": "c1", "scan": {}, "lesions": [
        {"id": 0, "label": 1, "disease": "kidney tumor",
         "attributes": attrs(density=("hyperdense", ""), shape=(None, "Round-like shape.")),
         "diseases": [{"name": "kidney cyst", "score": 0.3}, {"name": "kidney tumor", "score": 0.7}]},
        {"id": 1, "label": 2, "disease": "kidney cyst",
         "attributes": attrs(density=("hyperdense", ""), shape=("round_like", "")),
         "diseases": [{"name": "kidney cyst", "score": 0.8}]},
        {"id": 2, "label": 3, "disease": "liver tumor", "attributes": attrs(density=("hypodense", "")),
         "diseases": [{"name": "liver tumor", "score": 0.9}]}]}, tmp_path / "reports" / "c1.json")
    write_json({"case": "c2", "scan": {}, "lesions": []}, tmp_path / "reports" / "c2.json")
    return ref_root, pred, tmp_path / "reports"


def test_cli_end_to_end(tiny_evaluation, tmp_path, capsys):
    ref_root, pred, reports = tiny_evaluation
    out = tmp_path / "eval.json"
    main(["-ref", str(ref_root / "labelsTs"), "-pred", str(pred), "-o", str(out), "-np", "1",
          "--attributes", str(ref_root / "malenia_attributes_test.json"), "--reports", str(reports)])
    stdout = capsys.readouterr().out
    assert "kidney tumor" in stdout and "disease identification accuracy" in stdout
    result = json.loads(out.read_text())
    cyst, tumor = result["per_disease"]["kidney cyst"], result["per_disease"]["kidney tumor"]
    assert result["per_case"]["c2"]["kidney cyst"]["dice"] is None          # both empty: skipped
    assert (cyst["dice"], cyst["nsd"], cyst["n_cases_scored"]) == (1.0, 1.0, 1)
    assert result["per_case"]["c1"]["kidney tumor"]["dice"] == pytest.approx(36 / 54)
    assert result["per_case"]["c2"]["kidney tumor"]["nsd"] == 0.0           # missed entirely
    assert tumor["dice"] == pytest.approx(36 / 54 / 2)
    assert (tumor["detection"]["recall"], tumor["detection"]["precision"]) == (0.5, 1.0)
    assert set(result["per_disease"]) == {"kidney cyst", "kidney tumor"}     # organ label not evaluated
    assert result["not_evaluated"]["organ_labels"] == ["kidney"]
    # nothing says what the model was trained on: no seen/unseen split (the paper's is kept for reference only)
    assert list(result["summary"]) == ["all"] and (cyst["split"], tumor["split"]) == (None, None)
    assert (cyst["paper_split"], tumor["paper_split"]) == ("seen", "unseen")
    reports_result = result["lesion_reports"]
    density, shape = reports_result["per_aspect"]["density"], reports_result["per_aspect"]["shape"]
    # density: tumor "hyperdense" accepted by the tumor's table entry; cyst "hyperdense" vs per-case "hypodense";
    # the unmatched liver tumor counts as a predicted value -> 1 / 3; reference lesions c1 cyst, c1 + c2 tumor
    assert (density["tp_predicted"], density["predicted_with_value"]) == (1, 3)
    assert (density["tp_reference"], density["reference_with_aspect"]) == (1, 3)
    assert (shape["tp_predicted"], shape["predicted_with_value"], shape["tp_reference"]) == (2, 2, 2)
    assert reports_result["disease_identification"] == {"correct": 2, "matched": 2, "accuracy": 1.0}


def test_cli_names_the_file_on_shape_mismatch_and_writes_nothing(tiny_evaluation, tmp_path, capsys):
    ref_root, pred, _ = tiny_evaluation
    write_label_map(np.zeros((6, 12, 10), np.uint8), pred / "c2.nii.gz")
    out = tmp_path / "eval.json"
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", ["-ref", ref_root / "labelsTs", "-pred", pred, "-o", out,
                                                         "-np", "1"], "prediction on another grid", capsys)
    assert str(pred / "c2.nii.gz") in err and "shape" in err and "(10, 12, 6)" in err
    assert not out.exists()
    (pred / "c1.nii.gz").unlink()
    with pytest.raises(MaleniaInputError, match="prediction missing for reference case c1"):
        evaluate_folders(ref_root / "labelsTs", pred, progress=False)


def test_spacing_is_read_from_the_image_in_world_units(tmp_path):
    # the same voxels, shifted 2 voxels along z; only the z spacing may change NSD at 2 mm tolerance
    ref_root, pred = tmp_path / "Dataset002_Spacing", tmp_path / "pred"
    labels = {"background": 0, "liver tumor": 1}
    write_json({"labels": labels, "file_ending": ".nii.gz"}, ref_root / "dataset.json")
    write_json({"labels": labels, "file_ending": ".nii.gz"}, pred / "dataset.json")
    a = np.zeros((16, 12, 12), np.uint8)
    a[5:11, 3:9, 3:9] = 1
    for case, spacing_xyz in (("wide_x", (3.0, 1.0, 1.0)), ("thick_z", (1.0, 1.0, 3.0))):
        write_label_map(a, ref_root / "labelsTs" / f"{case}.nii.gz", spacing_xyz)
        write_label_map(np.roll(a, 2, axis=0), pred / f"{case}.nii.gz", spacing_xyz)
    result = evaluate_folders(ref_root / "labelsTs", pred, progress=False)
    per_case = result["per_case"]
    assert per_case["wide_x"]["liver tumor"]["nsd"] == pytest.approx(1.0)
    assert per_case["thick_z"]["liver tumor"]["nsd"] < 0.9
    assert per_case["wide_x"]["liver tumor"]["dice"] == per_case["thick_z"]["liver tumor"]["dice"]


def test_report_that_does_not_match_the_predicted_components_is_an_error(tiny_evaluation):
    ref_root, pred, reports = tiny_evaluation
    write_json({"case": "c1", "lesions": [{"id": 7, "label": 1, "attributes": {}, "diseases": []},
                                          {"id": 1, "label": 1, "attributes": {}, "diseases": []}]},
               reports / "c1.json")
    (reports / "c2.json").unlink()
    with pytest.raises(MaleniaInputError) as info:
        evaluate_folders(ref_root / "labelsTs", pred, reports_dir=reports, progress=False)
    wheres = sorted((Path(p.file).name, p.where) for p in info.value.problems)
    assert wheres == [("c1.json", "lesions[0].id"), ("c1.json", "lesions[1].label"), ("c2.json", "")]


# --- issue 13: no silent zeros --------------------------------------------------------------------------------------

def test_prediction_with_other_label_names_is_refused_or_mapped(tiny_evaluation, tmp_path, capsys):
    from bad_inputs import run_bad

    ref_root, pred, _ = tiny_evaluation
    # plain nnUNetv2_predict output of an MSD-trained model: its own label names
    write_json({"labels": {"background": 0, "Tumour": 1, "Cyst": 2, "Other": 3}, "file_ending": ".nii.gz"},
               pred / "dataset.json")
    out = tmp_path / "eval.json"
    argv = ["-ref", ref_root / "labelsTs", "-pred", pred, "-o", out, "-np", "1"]
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv, "prediction label names share none with the reference",
                     capsys)
    assert "no label name in common with the reference: the prediction has ['Cyst', 'Other', 'Tumour']" in err
    assert "['kidney cyst', 'kidney tumor', 'kidney']" in err and "--label-map" in err
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv + ["--label-map", "Tumor=kidney tumor"],
                     "--label-map with a name the prediction lacks", capsys)
    assert "--label-map: Tumor=kidney tumor: 'Tumor' is not a label of" in err
    assert not out.exists()
    main([str(a) for a in argv] + ["--label-map", "Tumour=kidney tumor", "--label-map", "Cyst=kidney cyst"])
    result = json.loads(out.read_text())
    assert result["per_disease"]["kidney cyst"]["dice"] == 1.0                # the same numbers as with shared names
    assert result["per_case"]["c1"]["kidney tumor"]["dice"] == pytest.approx(36 / 54)


def test_prediction_value_missing_from_its_dataset_json_is_refused(tiny_evaluation, tmp_path, capsys):
    from bad_inputs import run_bad

    ref_root, pred, _ = tiny_evaluation
    write_json({"labels": {"background": 0, "kidney tumor": 1, "kidney cyst": 2}, "file_ending": ".nii.gz"},
               pred / "dataset.json")                      # c1 also holds value 3
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", ["-ref", ref_root / "labelsTs", "-pred", pred, "-o",
                                                         tmp_path / "eval.json", "-np", "1"],
                     "prediction value not in its dataset.json", capsys)
    assert f"{pred / 'c1.nii.gz'}: voxel values: [3] are not label values of {pred / 'dataset.json'}" in err


def test_unwritable_output_is_refused_before_scoring(tiny_evaluation, tmp_path, capsys):
    from bad_inputs import run_bad

    ref_root, pred, _ = tiny_evaluation
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", ["-ref", ref_root / "labelsTs", "-pred", pred, "-o", tmp_path],
                     "-o is a folder", capsys)
    assert f"{tmp_path}: -o: is a folder" in err and "evaluate" not in err.split("error:")[0]


# --- issue 12: summary n, and seen/unseen as the model was trained -------------------------------------------------

def _add_empty_disease(ref_root: Path) -> None:
    """pancreas cyst: a reference label no case holds and nothing predicts, so it has no scored case."""
    dj = json.loads((ref_root / "dataset.json").read_text())
    dj["labels"]["pancreas cyst"] = 4
    write_json(dj, ref_root / "dataset.json")
    attributes = json.loads((ref_root / "malenia_attributes_test.json").read_text())
    attributes["labels"]["pancreas cyst"] = {"disease": "pancreas cyst"}
    write_json(attributes, ref_root / "malenia_attributes_test.json")


def _model_folder(root: Path, classes: dict, malenia: bool = True) -> Path:
    """A trained model folder as far as evaluate reads it: plans.json with the Malenia block's classes."""
    block = {"format_version": 1, "network": {"num_bank_rows": 1}, "classes": classes, "knowledge_table": {},
             "bank": {"content_hash": "0", "encoder_id": "none", "texts": ["a round lesion"], "aspects": ["shape"]}}
    configuration = {"data_identifier": "x", **({"malenia": block} if malenia else {})}
    folder = root / "Dataset901_X" / "nnUNetTrainerMalenia__nnUNetPlans__3d_fullres"
    write_json({"configurations": {"3d_fullres": configuration}}, folder / "plans.json")
    return folder


def test_summary_n_counts_only_diseases_with_a_scored_case(tiny_evaluation, tmp_path, capsys):
    ref_root, pred, _ = tiny_evaluation
    _add_empty_disease(ref_root)
    out = tmp_path / "eval.json"
    main(["-ref", str(ref_root / "labelsTs"), "-pred", str(pred), "-o", str(out), "-np", "1",
          "--attributes", str(ref_root / "malenia_attributes_test.json")])
    stdout = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["per_disease"]["pancreas cyst"]["n_cases_scored"] == 0
    everything = result["summary"]["all"]
    assert everything["diseases"] == ["kidney cyst", "kidney tumor", "pancreas cyst"]
    assert everything["diseases_scored"] == ["kidney cyst", "kidney tumor"]
    assert everything["dice"] == pytest.approx((1.0 + 36 / 54 / 2) / 2)
    assert [l for l in stdout.splitlines() if l.startswith("mean (all)")][0].split()[2] == "2/3"


def test_split_comes_from_the_model_not_the_paper(tiny_evaluation, tmp_path, capsys):
    ref_root, pred, _ = tiny_evaluation
    _add_empty_disease(ref_root)
    # trained on both kidney diseases: kidney tumor is "unseen" in the paper's split, seen for this model
    model = _model_folder(tmp_path, {"1": "kidney cyst", "2": "kidney tumor", "3": "kidney"})
    out = tmp_path / "eval.json"
    main(["-ref", str(ref_root / "labelsTs"), "-pred", str(pred), "-o", str(out), "-np", "1", "-m", str(model),
          "--attributes", str(ref_root / "malenia_attributes_test.json")])
    stdout = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["per_disease"]["kidney tumor"]["split"] == "seen"
    assert result["per_disease"]["kidney tumor"]["paper_split"] == "unseen"
    assert result["summary"]["seen"]["diseases"] == ["kidney cyst", "kidney tumor"]
    # the unseen group holds only a disease without a scored case: listed, but no mean and n 0/1
    unseen = result["summary"]["unseen"]
    assert (unseen["diseases"], unseen["diseases_scored"], unseen["dice"]) == (["pancreas cyst"], [], None)
    rows = {l[:13].strip(): l.split() for l in stdout.splitlines()}
    assert rows["kidney tumor"][2] == "seen" and rows["mean (seen)"][2] == "2/2" and rows["mean (unseen)"][2] == "0/1"
    assert result["settings"]["split"]["source"] == str(model / "plans.json")
    assert f"split: seen = a class the model was trained on ({model / 'plans.json'})" in stdout


def test_split_from_the_record_nnunetv2_malenia_predict_leaves(tiny_evaluation, tmp_path):
    from nnunetv2_malenia.inference.predict import PREDICTION_RECORD, prediction_record
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic

    ref_root, pred, _ = tiny_evaluation
    # the record predict writes: a model trained on kidney tumor only (the paper would call the cyst seen)
    write_json_atomic(prediction_record(tmp_path / "model", {1: "kidney tumor"}, ["kidney tumor", "kidney cyst"],
                                        [0], "checkpoint_final.pth", [], None), pred / PREDICTION_RECORD)
    result = evaluate_folders(ref_root / "labelsTs", pred, progress=False,
                              attributes_file=ref_root / "malenia_attributes_test.json")
    assert result["summary"]["seen"]["diseases"] == ["kidney tumor"]
    assert result["summary"]["unseen"]["diseases"] == ["kidney cyst"]
    assert result["settings"]["split"] == {"source": str(pred / PREDICTION_RECORD), "trained_classes": ["kidney tumor"],
                                           "rule": result["settings"]["split"]["rule"]}


def test_split_unknown_is_said_not_guessed(tiny_evaluation, tmp_path, capsys):
    ref_root, pred, _ = tiny_evaluation
    out = tmp_path / "eval.json"
    main(["-ref", str(ref_root / "labelsTs"), "-pred", str(pred), "-o", str(out), "-np", "1",
          "--attributes", str(ref_root / "malenia_attributes_test.json")])
    stdout = capsys.readouterr().out
    rows = {l[:13].strip(): l.split() for l in stdout.splitlines()}
    assert rows["kidney cyst"][2] == "?" and rows["kidney tumor"][2] == "?" and "mean (seen)" not in rows
    assert "split ?: the model's trained classes are unknown; give -m MODEL_FOLDER" in stdout
    assert json.loads(out.read_text())["settings"]["split"]["source"] is None


def test_bad_model_folder_or_record_is_refused_and_nothing_written(tiny_evaluation, tmp_path, capsys):
    from bad_inputs import run_bad
    from nnunetv2_malenia.inference.predict import PREDICTION_RECORD

    ref_root, pred, _ = tiny_evaluation
    out = tmp_path / "eval.json"
    argv = ["-ref", ref_root / "labelsTs", "-pred", pred, "-o", out, "-np", "1"]
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv + ["-m", tmp_path / "no_model"], "-m folder missing",
                     capsys)
    assert f"{tmp_path / 'no_model'}: -m: folder not found" in err
    plain = _model_folder(tmp_path / "plain", {"1": "kidney cyst"}, malenia=False)
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv + ["-m", plain], "-m model not trained with Malenia",
                     capsys)
    assert f"{plain / 'plans.json'}: malenia: no Malenia block" in err
    write_json({"format_version": 1, "trained_classes": {"one": "kidney cyst"}}, pred / PREDICTION_RECORD)
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv, "prediction record with a bad class", capsys)
    assert f"{pred / PREDICTION_RECORD}: trained_classes.one: expected label value (integer) -> name" in err
    write_json({"format_version": 1, "trained_classes": {"1": "kidney tumor"}}, pred / PREDICTION_RECORD)
    model = _model_folder(tmp_path, {"1": "kidney cyst"})
    _, err = run_bad(main, "nnUNetv2_malenia_evaluate", argv + ["-m", model], "-m is not the model of the record",
                     capsys)
    assert f"{pred / PREDICTION_RECORD}: trained_classes: 1: kidney tumor differ from the classes of -m {model}" in err
    assert not out.exists()
