"""Location read from an organ map (nnUNetv2_malenia_predict --location-maps): the folder's checks, the shares under
a lesion, the evidence per disease and the re-ranking, and the relabelled label map."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_malenia.attributes import load_knowledge_table
from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.inference.lesion_report import follow_components
from nnunetv2_malenia.inference.location_map import (LOCATIONS_FILENAME, location_evidence, location_shares,
                                                     name_with_location, read_location_maps, read_location_names,
                                                     write_location_names)

TABLE = load_knowledge_table()
ALLOWED = ("left_kidney", "right_kidney", "liver_left_lobe", "liver_right_lobe", "gallbladder_lumen", "kidney")


def test_shares_count_only_voxels_with_a_location():
    names = {1: "left_kidney", 2: "liver_right_lobe"}
    shares = location_shares(np.array([1, 1, 1, 2, 0, 0, 7]), names)       # 0 and undeclared 7: no location
    assert list(shares) == ["left_kidney", "liver_right_lobe"]
    assert shares["left_kidney"] == pytest.approx(0.75) and shares["liver_right_lobe"] == pytest.approx(0.25)
    assert location_shares(np.array([0, 0]), names) == {}


def test_evidence_counts_the_locations_and_the_organ_a_disease_accepts():
    diseases = [TABLE["kidney cyst"], TABLE["liver cyst"], TABLE["kidney stone"], TABLE["gallstone"]]
    evidence = location_evidence({"left_kidney": 0.6, "liver_right_lobe": 0.4}, diseases)
    assert evidence == pytest.approx([0.6, 0.4, 0.6, 0.0])
    # a map without sub-regions names the organ
    assert location_evidence({"kidney": 1.0}, diseases) == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_the_map_overrules_a_confident_token_only_by_location():
    # tokens trained on seen diseases: a liver cyst read as a kidney cyst (0.90) beside liver cyst (0.05) and
    # liver tumour (0.05); the map puts the lesion in the liver
    tokens = np.array([0.90, 0.05, 0.05])
    evidence = location_evidence({"liver_right_lobe": 1.0}, [TABLE["kidney cyst"], TABLE["liver cyst"],
                                                             TABLE["liver tumor"]])
    scores = name_with_location(tokens, evidence, floor=0.01)
    assert scores.sum() == pytest.approx(1.0) and int(np.argmax(scores)) in (1, 2)
    # between the diseases of the lesion's organ the tokens still decide (a tie here)
    assert scores[1] == pytest.approx(scores[2])
    # with no location evidence at all the tokens' ranking stays
    assert name_with_location(tokens, np.zeros(3), floor=0.0) == pytest.approx(tokens)


def _folder(tmp_path, labels, maps):
    folder = tmp_path / "locations"
    folder.mkdir()
    (folder / LOCATIONS_FILENAME).write_text(json.dumps({"format_version": 1, "labels": labels}))
    for case, array in maps.items():
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        sitk.WriteImage(image, str(folder / f"{case}.nii.gz"))
    return folder


def _cases(tmp_path, shape=(4, 5, 6)):
    images = tmp_path / "images"
    images.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros(shape, np.int16)), str(images / "case_0000.nii.gz"))
    return {"case": [str(images / "case_0000.nii.gz")]}


def test_a_good_folder_is_read(tmp_path):
    cases = _cases(tmp_path)
    folder = _folder(tmp_path, {"left_kidney": 1, "kidney": 3}, {"case": np.full((4, 5, 6), 3)})
    maps = read_location_maps(str(folder), cases, ".nii.gz", ALLOWED)
    assert maps.names == {1: "left_kidney", 3: "kidney"} and maps.read("case").shape == (4, 5, 6)


@pytest.mark.parametrize("labels, field", [({"left_lung": 1}, "labels.left_lung"),
                                           ({"left_kidney": 0}, "labels.left_kidney"),
                                           ({"left_kidney": 1, "kidney": 1}, "labels.kidney"),
                                           ({}, "labels")])
def test_bad_labels_name_the_file_and_field(tmp_path, labels, field):
    folder = _folder(tmp_path, labels, {})
    with pytest.raises(MaleniaInputError) as e:
        read_location_names(folder, ALLOWED)
    assert f"{folder / LOCATIONS_FILENAME}: {field}" in str(e.value)


def test_missing_misaligned_or_undeclared_maps_are_refused_before_any_work(tmp_path):
    cases = _cases(tmp_path)
    cases["other"] = cases["case"]
    folder = _folder(tmp_path, {"left_kidney": 1}, {"case": np.full((4, 5, 7), 2)})
    with pytest.raises(MaleniaInputError) as e:
        read_location_maps(str(folder), cases, ".nii.gz", ALLOWED)
    message = str(e.value)
    assert f"{folder / 'other.nii.gz'}: not found" in message
    assert f"{folder / 'case.nii.gz'}: shape" in message and f"{folder / 'case.nii.gz'}: label values" in message
    with pytest.raises(MaleniaInputError, match="not found"):
        read_location_maps(str(tmp_path / "images"), _cases(tmp_path / "images"), ".nii.gz", ALLOWED)


def test_written_names_read_back(tmp_path):
    write_location_names(tmp_path, ["liver_left_lobe", "kidney"])
    assert read_location_names(tmp_path, ALLOWED) == {1: "liver_left_lobe", 2: "kidney"}


def test_renamed_lesions_follow_the_renamed_maps_components():
    """Evaluation reads report lesions in lesion_components order (by label, then position): renaming reorders."""
    from nnunetv2_malenia.evaluation.lesions import component_index_map, lesion_components

    seg = np.zeros((1, 6, 6), np.uint8)
    seg[0, 0:2, 0:2] = 1                       # one lesion split by dense prediction into labels 1 and 2
    seg[0, 0:2, 2] = 2
    seg[0, 4:6, 4:6] = 2                       # a second lesion
    components = lesion_components((seg > 0).astype(np.uint8))
    assert len(components) == 2                # renaming treats the split lesion as one
    ids = component_index_map(seg.shape, components)
    lesions = [{"id": 0, "label": 3, "disease": "c"}, {"id": 1, "label": 1, "disease": "a"}]
    renamed = np.zeros_like(seg)
    for comp, lesion in zip(components, lesions):
        renamed[comp.slices][comp.mask] = lesion["label"]
    out = follow_components(lesions, ids, renamed)
    assert [(l["id"], l["label"], l["disease"]) for l in out] == [(0, 1, "a"), (1, 3, "c")]
    assert [c.label for c in lesion_components(renamed)] == [1, 3]
