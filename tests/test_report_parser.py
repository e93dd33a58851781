"""Rule-based report parser: phrasing rules, every organ's locations, evidence spans, CLI, validator, accuracy."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nnunetv2_malenia.attributes.dataset_attributes import parse_dataset_attributes
from nnunetv2_malenia.attributes.schema import ASPECTS, load_vocabulary
from nnunetv2_malenia.reports.cli import main
from nnunetv2_malenia.reports.extract import DEFAULT, FOUND, MISSING, ReportParser, parse_report
from nnunetv2_malenia.reports.validate import validate_parsed

REPO = Path(__file__).resolve().parents[1]
XLSX = Path(__file__).resolve().parents[2] / "shared" / "data" / "malenia_annotations" / "annotations_dev.xlsx"


def values(text, aspect, organ="kidney", **kw):
    return parse_report(text, organ, **kw).aspects[aspect].values


# --- synonyms ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phrase,key", [
    ("hypodense", "hypodense"), ("low attenuation", "hypodense"), ("hypoattenuating", "hypodense"),
    ("low-density", "hypodense"), ("isodense", "isodense"), ("isoattenuating", "isodense"),
    ("similar density", "isodense"), ("hyperdense", "hyperdense"), ("high attenuation", "hyperdense"),
    ("mixed hyperdense", "hyperdense")])
def test_density_synonyms(phrase, key):
    assert values(f"CT: A {phrase} lesion in the left kidney.", "density") == (key,)


@pytest.mark.parametrize("phrase,key", [
    ("ill-defined margins", "ill_defined"), ("indistinct margins", "ill_defined"), ("unclear borders", "ill_defined"),
    ("blurred margins", "ill_defined"), ("well-defined margins", "well_defined"), ("clear margins", "well_defined"),
    ("sharp borders", "well_defined")])
def test_surface_synonyms(phrase, key):
    assert values(f"A lesion in the liver with {phrase}.", "surface", "liver") == (key,)


@pytest.mark.parametrize("phrase,key", [
    ("heterogeneous", "heterogeneous"), ("uneven", "heterogeneous"), ("mixed density", "heterogeneous"),
    ("inhomogeneous", "heterogeneous"), ("non-homogeneous", "heterogeneous"), ("homogeneous", "homogeneous"),
    ("homogenous", "homogeneous"), ("heterogenous", "heterogeneous"), ("inhomogenous", "heterogeneous"),
    ("density even,", "homogeneous"), ("patchy enhancement of the", "heterogeneous")])
def test_density_variation_synonyms(phrase, key):
    assert values(f"A lesion with {phrase} internal attenuation.", "density_variation") == (key,)


def test_enhancement_non_contrast_is_not_read_as_contrast():
    assert values("Non-contrast CT: lesion.", "enhancement_status") == ("non_contrast",)
    assert values("Non-enhanced CT: lesion.", "enhancement_status") == ("non_contrast",)
    assert values("Contrast-enhanced CT: lesion.", "enhancement_status") == ("contrast_enhanced",)


@pytest.mark.parametrize("text,key", [
    ("Plain chest CT: a nodule in the right upper lobe.", "non_contrast"),
    ("Chest CT without contrast: a nodule.", "non_contrast"),
    ("Non-enhanced chest CT: a nodule.", "non_contrast"),
    ("CT (plain scan): a nodule.", "non_contrast"),
    ("Enhanced CT of the abdomen: a mass.", "contrast_enhanced"),
    ("CT chest with intravenous contrast: a mass.", "contrast_enhanced"),
    ("Contrast CT: a cyst.", "contrast_enhanced"),
    ("Chest CT (no contrast): a mass.", "non_contrast"),
    ("The cyst shows no contrast enhancement.", "contrast_enhanced"),     # the lesion, on a contrast study
    ("The mass shows heterogeneous enhancement.", "contrast_enhanced"),
    # the lesion does not enhance, but the study was a contrast study
    ("A cyst that shows no enhancement after contrast administration.", "contrast_enhanced"),
])
def test_enhancement_in_any_of_its_forms(text, key):
    assert values(text, "enhancement_status", "lung") == (key,)


def test_explicit_study_type_beats_implied_enhancement():
    assert values("Non-contrast CT: the enhancement pattern cannot be assessed.", "enhancement_status") == \
        ("non_contrast",)


@pytest.mark.parametrize("text,key", [
    ("The mass is of lower density than the normal bowel wall.", "hypodense"),
    ("The lesion has attenuation similar to that of the adjacent liver.", "isodense"),
    ("The lesion is denser than the background liver.", "hyperdense"),
    ("The lesion is less dense than the adjacent renal cortex.", "hypodense"),
    ("A cyst of fluid density.", "hypodense"),
])
def test_density_relative_to_the_named_reference(text, key):
    assert values(text, "density", "liver") == (key,)


@pytest.mark.parametrize("text,key", [
    ("The thickened wall is slightly lower than the adjacent bowel wall.", "hypodense"),
    ("Its brightness is higher than the surrounding bowel wall.", "hyperdense"),     # the sheets' word, 亮度
    ("The mass is similar to the normal colonic wall on the venous phase.", "isodense"),
])
def test_comparison_anchored_on_the_named_reference_tissue(text, key):
    assert values(text, "density", "colon") == (key,)


def test_stated_density_outweighs_the_soft_tissue_inference():
    text = "An irregular soft-tissue mass, slightly hypodense compared with the bowel wall."
    assert values(text, "density", "colon") == ("hypodense",)


def test_soft_tissue_density_is_isodense_only_against_a_wall():
    text = "A soft-tissue density mass."
    assert values(text, "density", "colon") == ("isodense",)          # reference: bowel wall, itself soft tissue
    assert values(text, "density", "kidney", coding_defaults=False) == ()   # says nothing about the parenchyma
    assert values(text, "density", "lung") == ("soft_tissue",)


@pytest.mark.parametrize("text,key", [
    ("A non-solid nodule.", "ground_glass"),
    ("A solid nodule surrounded by a ground-glass halo.", "mixed_ground_glass_solid"),
    ("A ground-glass nodule with a central solid component.", "mixed_ground_glass_solid"),
    ("A partially solid nodule.", "mixed_ground_glass_solid"),
    ("A mixed ground-glass nodule with vacuole sign.", "mixed_ground_glass_solid"),
    ("An irregularly-shaped mixed-density nodule.", "mixed_ground_glass_solid"),
    ("A pure ground-glass nodule without a solid component.", "ground_glass"),
    ("A solid nodule.", "soft_tissue"),
])
def test_lung_density_categories(text, key):
    assert values(text, "density", "lung") == (key,)


def test_ground_glass_and_solid_combine_only_within_one_sentence():
    assert values("A solid mass in the RUL. Scattered ground-glass opacities in both lungs.", "density", "lung") == \
        ("soft_tissue",)


@pytest.mark.parametrize("text,key", [
    ("A cyst with density similar to water.", ("hypodense",)),
    ("A lesion with density slightly higher than water.", ()),      # complex cyst; says nothing vs parenchyma
])
def test_comparison_with_water_is_not_a_comparison_with_the_parenchyma(text, key):
    assert values(text, "density", "kidney", coding_defaults=False) == key


@pytest.mark.parametrize("text,organ,key", [
    ("A rounded cystic lesion in the pancreatic body.", "pancreas", ("hypodense",)),     # fluid, inferred
    ("A simple cyst in the left kidney.", "kidney", ("hypodense",)),
    ("A hyperdense cyst in the left kidney.", "kidney", ("hyperdense",)),               # stated beats inferred
    ("A cystic lesion in the sigmoid colon wall.", "colon", ()),                        # hollow organ: not read
    ("An irregular cystic-solid lesion in the pancreatic head.", "pancreas", ("hypodense",)),   # its fluid part
    ("A mixed solid and cystic mass of the right kidney.", "kidney", ("hypodense",)),
    ("A hyperdense cystic-solid lesion in the pancreatic tail.", "pancreas", ("hyperdense",)),
])
def test_a_cyst_in_a_solid_organ_is_hypodense_unless_stated_otherwise(text, organ, key):
    assert values(text, "density", organ, coding_defaults=False) == key


def test_uneven_margin_is_surface_not_density_variation():
    r = parse_report("The margin is uneven, with homogeneous density and well-defined borders elsewhere.", "colon")
    assert r.aspects["density_variation"].values == ("homogeneous",)
    assert parse_report("The margin is uneven.", "colon").aspects["surface"].values == ("ill_defined",)


def test_uneven_wall_thickening_is_shape_not_density_variation():
    r = parse_report("Uneven thickening of the rectal wall with uniform density.", "colon")
    assert r.aspects["density_variation"].values == ("homogeneous",)
    assert r.aspects["shape"].codes == ("2",) and r.aspects["shape"].status == FOUND


@pytest.mark.parametrize("text,key", [
    ("The serosal surface of the sigmoid colon is rough.", "ill_defined"),
    ("The serosal surface is smooth.", "well_defined"),
    ("The outer margin of the thickened bowel wall is blurred.", "ill_defined"),
    ("The lesion is sharply demarcated.", "well_defined"),
    ("The mass is poorly marginated.", "ill_defined"),
    ("A mass, boundary not clear.", "ill_defined"),                  # no verb, as notes write it
    ("A mass with margins unclear.", "ill_defined"),
    ("A cyst, boundary clear.", "well_defined"),
    ("The outer membrane of the rectal wall is rough.", "ill_defined"),
    ("The polyp is sharply outlined.", "well_defined"),
    ("A cyst with crisp margins.", "well_defined"),
    ("Outer margin well preserved.", "well_defined"),
])
def test_surface_of_hollow_and_solid_organs(text, key):
    assert values(text, "surface", "colon") == (key,)


@pytest.mark.parametrize("text,key", [
    ("The fat space between the lesion and the prostate has disappeared.", "close_unclear_boundary"),
    ("The boundary with the bladder is unclear.", "close_unclear_boundary"),
    ("The tumour is inseparable from the stomach.", "close_unclear_boundary"),
    ("The mass abuts the pleura with pleural indentation.", "close_unclear_boundary"),
    ("The nodule does not abut the pleura.", "not_close"),
    ("The surrounding fat space is clear.", "not_close"),
    ("Surrounding fat planes intact.", "not_close"),                  # no verb
    ("The fat space between the lesion and the vagina is not visible.", "close_unclear_boundary"),
    ("No contact with the pleura.", "not_close"),
    ("The nodule is separate from the pleura.", "not_close"),
    ("The mass cannot be separated from the bladder.", "close_unclear_boundary"),
    ("The nodule is not adjacent to the pleura.", "not_close"),
    ("A nodule with no relationship to the pleura.", "not_close"),
    ("The mass is adjacent to the bladder.", None),                     # says nothing about the boundary
    ("The mass invades the bladder; no lymph nodes adjacent to it.", "close_unclear_boundary"),
    ("Serosa surface rough, with the left ureter boundary unclear.", "close_unclear_boundary"),   # translated order
    ("A nodule adhering to the oblique fissure.", "close_unclear_boundary"),
    ("Adjacent pleura retracted.", "close_unclear_boundary"),
    ("A round nodule away from the pleura.", "not_close"),
    ("The mass is intimately related to the duodenum.", "close_unclear_boundary"),
    ("The tumour merges with the adjacent small bowel.", "close_unclear_boundary"),
    ("The mass extends into the mesentery.", "close_unclear_boundary"),
    ("The tumour extends into the muscularis propria.", None),           # its own wall: depth, not a neighbour
    ("The boundary between the mass and the bladder has disappeared.", "close_unclear_boundary"),
    ("The boundary with the bladder is clear.", "not_close"),
    ("The mass is tethered to the left adnexa.", "close_unclear_boundary"),
    ("Obliterated fat between the rectum and the sacrum.", "close_unclear_boundary"),
    ("The interface between them cannot be identified.", "close_unclear_boundary"),
    ("The splenic vessels are free.", "not_close"),
])
def test_relationship_wordings(text, key):
    assert values(text, "relationship", "colon", coding_defaults=False) == ((key,) if key else ())


@pytest.mark.parametrize("text,surface,relationship", [
    ("The tumour invades the serosa.", ("ill_defined",), ()),
    ("The surrounding fat space is blurred.", ("ill_defined",), ()),
    ("Stranding of the pericolic fat is seen.", ("ill_defined",), ()),
    ("The mass invades the bladder.", (), ("close_unclear_boundary",)),
])
def test_colon_wall_layers_and_surrounding_fat_are_surface_not_neighbours(text, surface, relationship):
    r = parse_report(text, "colon", coding_defaults=False)
    assert r.aspects["surface"].values == surface and r.aspects["relationship"].values == relationship


def test_blurred_fat_names_no_neighbour_in_solid_organs_either():
    r = parse_report("The peripancreatic fat is blurred.", "pancreas", coding_defaults=False)
    assert r.aspects["relationship"].status == MISSING and r.aspects["surface"].status == MISSING


def test_unclear_margin_with_own_parenchyma_stays_surface():
    r = parse_report("The boundary with the renal parenchyma is unclear.", "kidney", coding_defaults=False)
    assert r.aspects["surface"].values == ("ill_defined",) and r.aspects["relationship"].status == MISSING


def test_hyphenated_and_adverb_forms_of_irregular():
    assert values("An irregularly-shaped lesion.", "shape") == ("irregular",)
    assert values("The lesion is irregularly shaped.", "shape") == ("irregular",)


def test_lung_cavitation_is_irregular_even_when_round():
    assert values("A round mass with a central cavity.", "shape", "lung") == ("irregular",)
    assert values("A round mass with a central cavity.", "shape", "kidney") == ("round_like",)


# --- negation and hedges ------------------------------------------------------------------------------------------

def test_negated_feature_is_not_a_feature():
    r = parse_report("Lesion in the pancreatic head. No pancreatic ductal dilatation is observed.", "pancreas")
    features = r.aspects["specific_features"]
    assert features.values == ("none",) and "pancreatic_duct_dilatation" in features.negated


def test_negation_scope_ends_at_clause():
    r = parse_report("Lesion without calcification, but the pancreatic duct is dilated.", "pancreas")
    assert r.aspects["specific_features"].values == ("pancreatic_duct_dilatation",)
    assert r.aspects["specific_features"].negated == ("calcification",)


def test_negation_covers_or_lists_but_not_the_next_comma_item():
    listed = parse_report("Lesion without calcification, septation or wall thickening.", "kidney")
    assert listed.aspects["specific_features"].values == ("none",)
    assert set(listed.aspects["specific_features"].negated) == {"calcification", "septation", "wall_thickening"}
    r = parse_report("A lesion in the pancreatic tail, no calcification, clear fat plane.", "pancreas")
    assert r.aspects["relationship"].values == ("not_close",)


def test_negation_stops_at_a_new_subject():
    r = parse_report("Margins are not clearly defined and it invades the psoas muscle.", "kidney")
    assert r.aspects["surface"].values == ("ill_defined",)
    assert r.aspects["relationship"].values == ("close_unclear_boundary",)


def test_relationship_negation_and_fat_plane():
    assert values("Lesion with no close relationship with adjacent organs.", "relationship") == ("not_close",)
    assert values("The lesion is not closely related to the liver.", "relationship") == ("not_close",)
    assert values("A clear fat plane with the duodenum is seen.", "relationship", "pancreas") == ("not_close",)
    assert values("The fat plane with the left kidney is preserved.", "relationship", "colon") == ("not_close",)
    assert values("Closely related to the duodenum with indistinct borders.", "relationship",
                  "pancreas") == ("close_unclear_boundary",)


def test_relationship_borders_are_not_the_lesion_surface():
    r = parse_report("A round lesion with well-defined margins, closely related to the psoas muscle with "
                     "indistinct borders.", "kidney")
    assert r.aspects["surface"].values == ("well_defined",)
    assert r.aspects["relationship"].values == ("close_unclear_boundary",)


def test_negative_relationship_keeps_surface_words():
    r = parse_report("Lesion not closely related to adjacent organs, with well-defined margins.", "kidney")
    assert r.aspects["surface"].values == ("well_defined",)
    assert r.aspects["relationship"].values == ("not_close",)


def test_interface_with_own_parenchyma_is_surface_with_neighbour_is_relationship():
    own = parse_report("Lesion with poorly defined interface with the renal parenchyma.", "kidney")
    assert own.aspects["surface"].values == ("ill_defined",) and own.aspects["relationship"].status == DEFAULT
    other = parse_report("Lesion with indistinct margins and unclear demarcation from the adjacent bowel.", "kidney")
    assert other.aspects["relationship"].values == ("close_unclear_boundary",)


def test_negated_well_defined_is_ill_defined():
    assert values("The margins are not well-defined.", "surface") == ("ill_defined",)


@pytest.mark.parametrize("phrase", ["roughly round", "round-like", "approximately round", "oval"])
def test_shape_hedges_stay_round(phrase):
    assert values(f"A {phrase} hypodense lesion.", "shape") == ("round_like",)


def test_hedges_lower_confidence():
    plain = parse_report("A round lesion.", "kidney").aspects["shape"].confidence
    approx = parse_report("A roughly round lesion.", "kidney").aspects["shape"].confidence
    unsure = parse_report("Possibly a round lesion.", "kidney").aspects["shape"].confidence
    assert unsure < approx < plain
    assert parse_report("A roughly round lesion.", "kidney").aspects["shape"].hedged
    assert not parse_report("A round lesion.", "kidney").aspects["shape"].hedged


def test_internal_areas_do_not_set_lesion_density():
    text = "An irregular mixed hyperdense lesion with heterogeneous density and areas of low attenuation."
    assert values(text, "density") == ("hyperdense",)
    assert values("Hypodense areas are present. An isodense lesion in the right kidney.", "density") == ("isodense",)
    assert values("A patchy area of slightly decreased attenuation.", "density", "liver") == ("hypodense",)


def test_explicit_homogeneity_beats_mixed_hint():
    assert values("An irregular mixed hyperdense lesion with homogeneous internal density.",
                  "density_variation") == ("homogeneous",)


@pytest.mark.parametrize("phrase,key", [
    ("calcification", "calcification"), ("internal septations", "septation"), ("wall thickening", "wall_thickening"),
    ("spiculation and pleural traction", "spiculation"), ("atrophy of the pancreatic tail", "parenchymal_atrophy"),
    ("cystic degeneration", "cystic_degeneration"), ("necrotic areas", "cystic_degeneration"),
    ("hydronephrosis", "hydronephrosis"), ("dilatation of the left renal pelvis", "hydronephrosis"),
    ("intrahepatic bile duct dilatation", "bile_duct_dilatation"), ("the pancreatic duct is dilated",
                                                                     "pancreatic_duct_dilatation")])
def test_specific_features(phrase, key):
    assert key in values(f"A lesion is seen. There is {phrase}.", "specific_features")


# --- every organ's locations -------------------------------------------------------------------------------------

@pytest.mark.parametrize("organ,phrase,keys,codes", [
    ("kidney", "the left kidney", ("left_kidney",), ("1",)),
    ("kidney", "the upper pole of the right kidney", ("right_kidney",), ("2",)),
    ("kidney", "both kidneys", ("left_kidney", "right_kidney"), ("1", "2")),
    ("liver", "the right hepatic lobe", ("liver_right_lobe",), ("2",)),
    ("liver", "the left lobe of the liver", ("liver_left_lobe",), ("1",)),
    ("liver", "segment VII", ("liver_right_lobe",), ("2",)),
    ("pancreas", "the pancreatic head", ("pancreas_head",), ("1",)),
    ("pancreas", "the uncinate process", ("pancreas_head",), ("1",)),
    ("pancreas", "the pancreatic body and tail", ("pancreas_body", "pancreas_tail"), ("2", "3")),
    ("pancreas", "the pancreatic head and neck", ("pancreas_head",), ("1",)),
    ("colon", "the ascending colon", ("colon_ascending",), ("1",)),
    ("colon", "the transverse colon", ("colon_transverse",), ("2",)),
    ("colon", "the descending colon", ("colon_descending",), ("3",)),
    ("colon", "the sigmoid colon", ("colon_sigmoid",), ("4",)),
    ("colon", "the rectum", ("rectum",), ("5",)),
    ("lung", "the left upper lobe", ("lung_left_upper_lobe",), ("1",)),
    ("lung", "the lower lobe of the left lung", ("lung_left_lower_lobe",), ("2",)),
    ("lung", "the right upper lobe", ("lung_right_upper_lobe",), ("3",)),
    ("lung", "the right middle lobe", ("lung_right_middle_lobe",), ("4",)),
    ("lung", "the RLL", ("lung_right_lower_lobe",), ("5",)),
    ("lung", "the lingula", ("lung_left_upper_lobe",), ("1",)),
    ("spleen", "the spleen", ("spleen",), ()),
])
def test_locations_of_every_organ(organ, phrase, keys, codes):
    r = parse_report(f"A hypodense lesion is seen in {phrase}, with atrophy of the pancreatic tail.", organ)
    assert r.aspects["location"].values == keys
    assert r.aspects["location"].codes == codes


def test_lung_density_and_spiculated_surface_codes():
    r = parse_report("Non-contrast CT: a part-solid nodule in the right upper lobe with spiculated margins and "
                     "pleural traction.", "lung")
    assert r.aspects["density"].values == ("mixed_ground_glass_solid",) and r.aspects["density"].codes == ("4",)
    assert r.aspects["surface"].values == ("spiculated",) and r.aspects["surface"].codes == ("2",)
    assert "spiculation" in r.aspects["specific_features"].values


def test_uncoded_keys_fall_back_to_nearest_code():
    r = parse_report("A lobulated ill-defined lesion in the sigmoid colon.", "colon")
    assert r.aspects["shape"].values == ("lobulated",) and r.aspects["shape"].codes == ("2",)


# --- missing aspects, defaults, evidence ---------------------------------------------------------------------------

def test_missing_aspects_are_reported():
    r = parse_report("A lesion.", "kidney", coding_defaults=False)
    assert set(r.missing) == set(ASPECTS)
    assert all(r.aspects[a].values == () and r.aspects[a].codes == () for a in ASPECTS)
    with_defaults = parse_report("A lesion.", "kidney")
    assert with_defaults.aspects["relationship"].status == DEFAULT
    assert with_defaults.aspects["relationship"].evidence == ()
    assert "relationship" not in with_defaults.attribute_entry()       # defaults never enter the attribute file


def test_evidence_spans_point_into_text():
    text = ("Contrast-enhanced CT: A roughly round mixed hyperdense lesion is seen in the right kidney, with "
            "heterogeneous internal density, indistinct margins. It is closely related to the liver. No calcification.")
    r = parse_report(text, "kidney")
    for aspect in ASPECTS:
        result = r.aspects[aspect]
        assert result.status == FOUND, aspect
        for ev in result.evidence:
            assert text[ev.start:ev.end] == ev.text and ev.text
    assert validate_parsed(r.to_json(), text) == []


def test_deterministic():
    text = "Contrast-enhanced CT: an irregular hypodense lesion in the pancreatic tail with calcification."
    assert parse_report(text, "pancreas").to_json() == parse_report(text, "pancreas").to_json()


def test_validator_rejects_bad_llm_output():
    text = "A round lesion."
    good = parse_report(text, "kidney").to_json()
    bad = json.loads(json.dumps(good))
    bad["aspects"]["shape"]["values"] = ["triangular"]
    bad["aspects"]["shape"]["evidence"][0]["start"] += 1
    bad["aspects"]["density"] = {"status": "missing", "values": ["hypodense"], "confidence": 2, "evidence": []}
    del bad["aspects"]["surface"]
    wheres = {p.where for p in validate_parsed(bad, text)}
    assert {"aspects.shape.values[0]", "aspects.shape.evidence[0]", "aspects.density.values",
            "aspects.density.confidence", "aspects.surface"} <= wheres


# --- CLI ----------------------------------------------------------------------------------------------------------

def test_cli_txt_folder_output_is_a_valid_attribute_section(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "case_1.txt").write_text("Contrast-enhanced CT: a round-like hypodense lesion in the right kidney, "
                                       "homogeneous, with well-defined margins.", encoding="utf-8")
    (folder / "case_2.txt").write_text("Non-contrast CT: lesion in the left kidney.", encoding="utf-8")
    out = tmp_path / "parsed.json"
    main(["-i", str(folder), "-o", str(out), "--disease", "kidney cyst", "--label", "cyst"])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["cases"]["case_1"]["cyst"]["location"] == ["right_kidney"]
    assert "shape" not in result["cases"]["case_2"]["cyst"]
    assert result["reports"]["case_2"]["cyst"]["aspects"]["shape"]["status"] == DEFAULT
    assert result["reports"]["case_2"]["cyst"]["aspects"]["density"]["status"] == MISSING
    dataset_json = {"labels": {"background": 0, "cyst": 1}}
    attrs = parse_dataset_attributes({"labels": {"cyst": {"disease": "kidney cyst"}}, "cases": result["cases"]},
                                     dataset_json, str(out))
    assert attrs.cases["case_1"]["cyst"]["location"] == ("located in the right kidney",)


def test_cli_csv_with_organ_column(tmp_path):
    path = tmp_path / "reports.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "organ"])
        w.writerow(["lung_001", "A ground-glass nodule in the right middle lobe.", "lung"])
        w.writerow(["colon_001", "Wall thickening of the sigmoid colon.", "colon"])
    out = tmp_path / "parsed.json"
    main(["-i", str(path), "-o", str(out), "--case-column", "id", "--report-column", "text", "--organ-column",
          "organ"])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["cases"]["lung_001"]["lung"]["location"] == ["lung_right_middle_lobe"]
    assert result["reports"]["lung_001"]["lung"]["aspects"]["density"]["codes"] == ["1"]
    assert result["cases"]["colon_001"]["colon"]["specific_features"] == ["wall_thickening"]


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "reports.csv"
    path.write_text("id,text\nc1,\n,A lesion.\n", encoding="utf-8")
    out = tmp_path / "parsed.json"
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_parse_reports", ["-i", path, "-o", out, "--case-column", "id",
                                                              "--report-column", "text", "--organ", "liver"],
                     "CSV with an empty report and an empty case id", capsys)
    assert not out.exists()
    assert "row 2 column text: empty report" in err and "row 3 column id: empty case id" in err


def test_cli_rejects_case_ids_the_importer_rejects_unless_mapped(tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "imaging.txt").write_text("A round cyst in the left kidney.", encoding="utf-8")
    (folder / "case_00002.txt").write_text("A round cyst in the right kidney.", encoding="utf-8")
    out = tmp_path / "parsed.json"
    with pytest.raises(SystemExit) as e:
        main(["-i", str(folder), "-o", str(out), "--disease", "kidney cyst"])
    assert e.value.code == 2 and not out.exists()
    assert f"{folder / 'imaging.txt'}: file name: id 'imaging' does not identify a case" in capsys.readouterr().err
    mapping = tmp_path / "ids.csv"
    mapping.write_text("spreadsheet_id,case_id\nimaging,case_00001\n", encoding="utf-8")
    main(["-i", str(folder), "-o", str(out), "--disease", "kidney cyst", "--id-mapping", str(mapping)])
    assert set(json.loads(out.read_text(encoding="utf-8"))["cases"]) == {"case_00001", "case_00002"}


@pytest.mark.skipif(not XLSX.is_file(), reason=f"annotation spreadsheet not found at {XLSX}")
def test_cli_spreadsheet_skips_rows_without_a_case_id(tmp_path, capsys):
    out = tmp_path / "parsed.json"
    main(["-i", str(XLSX), "-o", str(out)])
    cases = json.loads(out.read_text(encoding="utf-8"))["cases"]
    assert "imaging" not in cases and "1" not in cases and not any(c.startswith("Example") for c in cases)
    assert "case_00000" in cases and "liver_2" in cases
    assert "row 3 column A: id 'imaging.nii' does not identify a case" in capsys.readouterr().err


def test_cli_merges_into_a_raw_datasets_attribute_file(nnunet_raw, tmp_path):
    from conftest import make_raw_dataset

    existing = {"format_version": 1, "labels": {"tumor": {"disease": "kidney tumor"}},
                "cases": {"case_00001": {"tumor": {"shape": "round_like", "specific_features": "calcification"}}}}
    folder = make_raw_dataset(nnunet_raw / "Dataset501_Kid", {"tumor": 1}, ["case_00001", "case_00002"], existing)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "case_00001.txt").write_text("Contrast-enhanced CT: an irregular hyperdense mass in the right kidney.",
                                            encoding="utf-8")
    main(["-i", str(reports), "--disease", "kidney tumor", "--label", "tumor", "-d", "501"])
    merged = json.loads((folder / "malenia_attributes.json").read_text(encoding="utf-8"))
    case = merged["cases"]["case_00001"]["tumor"]
    assert case["shape"] == "irregular" and case["density"] == "hyperdense" and case["location"] == "right_kidney"
    assert case["specific_features"] == "calcification"             # aspects the report does not state are kept
    assert merged["labels"] == existing["labels"]


def test_cli_dataset_mismatch_exits_2_and_writes_nothing(nnunet_raw, tmp_path, capsys):
    from conftest import make_raw_dataset

    folder = make_raw_dataset(nnunet_raw / "Dataset502_Kid", {"tumor": 1}, ["case_00001"])
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "case_00009.txt").write_text("A round cyst in the left kidney.", encoding="utf-8")
    out = tmp_path / "parsed.json"
    with pytest.raises(SystemExit) as e:
        main(["-i", str(reports), "--disease", "kidney cyst", "-d", "502", "-o", str(out)])
    assert e.value.code == 2
    assert not (folder / "malenia_attributes.json").exists() and not out.exists()
    err = capsys.readouterr().err
    assert f"{reports / 'case_00009.txt'}: case id: case 'case_00009' is not in the dataset's imagesTr" in err
    assert "no foreground label 'kidney cyst'" in err


def test_cli_attributes_file_created_and_organ_only_label_refused(tmp_path, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "liver_3.txt").write_text("Non-contrast CT: a round hypodense lesion in the right hepatic lobe.",
                                         encoding="utf-8")
    target = tmp_path / "malenia_attributes.json"
    main(["-i", str(reports), "--disease", "liver cyst", "--attributes", str(target)])
    created = json.loads(target.read_text(encoding="utf-8"))
    assert created["labels"] == {"liver cyst": {"disease": "liver cyst"}}
    assert created["cases"]["liver_3"]["liver cyst"]["location"] == "liver_right_lobe"
    other = tmp_path / "other.json"
    with pytest.raises(SystemExit) as e:
        main(["-i", str(reports), "--organ", "liver", "--attributes", str(other)])
    assert e.value.code == 2 and not other.exists()
    assert f"{other}: labels.liver: label not described in the attribute file" in capsys.readouterr().err


def _user_table(tmp_path, vocabulary):
    table = {"format_version": 1, "diseases": {"stomach tumor": {
        "organ": "stomach",
        "attributes": {"enhancement_status": "contrast_enhanced", "location": "located in the gastric antrum",
                       "shape": "irregular", "density": "isodense", "density_variation": "heterogeneous",
                       "surface": "ill_defined", "relationship": "close_unclear_boundary",
                       "specific_features": "wall_thickening"},
        "report_vocabulary": vocabulary}}}
    path = tmp_path / "my_table.json"
    path.write_text(json.dumps(table), encoding="utf-8")
    return path


def test_cli_knowledge_table_user_disease_and_organ_vocabulary(nnunet_raw, tmp_path):
    from conftest import make_raw_dataset

    folder = make_raw_dataset(nnunet_raw / "Dataset503_Sto", {"stomach tumor": 1}, ["stomach_001"])
    table = _user_table(tmp_path, {"like": "colon", "location": {
        "located in the gastric antrum": [r"\bantr(?:um|al)\b"], "located in the gastric body": [r"\bgastric body\b"]}})
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "stomach_001.txt").write_text("Contrast-enhanced CT: irregular thickening of the antral wall of soft-"
                                             "tissue density; the serosal surface is rough.", encoding="utf-8")
    main(["-i", str(reports), "--disease", "stomach tumor", "--knowledge-table", str(table), "-d", "503"])
    merged = json.loads((folder / "malenia_attributes.json").read_text(encoding="utf-8"))
    assert merged["labels"] == {"stomach tumor": {"disease": "stomach tumor"}}
    assert (folder / merged["knowledge_table"]).resolve() == table.resolve()
    case = merged["cases"]["stomach_001"]["stomach tumor"]
    assert case["location"] == "located in the gastric antrum"
    assert case["density"] == "isodense"                 # "like": colon -> soft tissue is isodense to the wall
    assert case["surface"] == "ill_defined"


def test_cli_uses_the_knowledge_table_the_attribute_file_names(nnunet_raw, tmp_path):
    from conftest import make_raw_dataset

    table = _user_table(tmp_path, {"like": "colon", "location": {"located in the gastric antrum": [r"\bantral\b"]}})
    folder = make_raw_dataset(nnunet_raw / "Dataset504_Sto", {"stomach tumor": 1}, ["stomach_002"],
                              {"format_version": 1, "knowledge_table": str(table),
                               "labels": {"stomach tumor": {"disease": "stomach tumor"}}})
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "stomach_002.txt").write_text("An antral mass of soft-tissue density.", encoding="utf-8")
    main(["-i", str(reports), "--disease", "stomach tumor", "-d", "504"])     # no --knowledge-table needed
    case = json.loads((folder / "malenia_attributes.json").read_text(encoding="utf-8"))["cases"]["stomach_002"]
    assert case["stomach tumor"] == {"location": "located in the gastric antrum", "density": "isodense"}


def test_unknown_organ_reads_no_other_organs_locations():
    assert values("A mass in the gastric body.", "location", "stomach", coding_defaults=False) == ()
    assert values("A mass in the pancreatic body.", "location", "pancreas") == ("pancreas_body",)


def test_cli_bad_report_vocabulary_names_file_and_field(tmp_path, capsys):
    table = _user_table(tmp_path, {"like": "stomach", "location": {"antrum": ["("]}})
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "stomach_001.txt").write_text("A mass.", encoding="utf-8")
    out = tmp_path / "parsed.json"
    with pytest.raises(SystemExit) as e:
        main(["-i", str(folder), "--disease", "stomach tumor", "--knowledge-table", str(table), "-o", str(out)])
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert f"{table}: diseases.stomach tumor.report_vocabulary.like: 'stomach' is not a known organ group" in err
    assert "report_vocabulary.location.antrum: 'antrum' is neither a location value key" in err


# --- accuracy floor on the real spreadsheet -----------------------------------------------------------------------

def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_report_parser", REPO / "benchmarks" / "bench_report_parser.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not XLSX.is_file(), reason=f"annotation spreadsheet not found at {XLSX}")
def test_accuracy_floor_on_annotation_spreadsheet():
    bench = _load_benchmark()
    vocab = load_vocabulary()
    results = bench.evaluate(bench.read_rows(XLSX, vocab), vocab)
    assert {"肾癌", "肾囊肿", "肝癌", "胰腺癌"} <= set(results)
    # Floor below the measured figures (>= 93.8 %): the misses left are rows whose code contradicts the text.
    for sheet, aspects in results.items():
        for aspect, cell in aspects.items():
            if cell["scored"]:
                assert cell["accuracy"] >= 0.93, (sheet, aspect, cell["confusion"])
    # Where the text itself rules out 97 % (codes set against their own report, or reports silent on the aspect:
    # kidney tumour location 5 rows and shape 10, kidney cyst location 2 and shape 2, pancreas tumour surface 2),
    # the parser is exactly at that ceiling; elsewhere it misses at most one row more than the ceiling (kidney cyst
    # surface: rows 35/41 are phrased like rows 7/10/20 but coded the other way).
    for sheet, aspects in results.items():
        for aspect, cell in aspects.items():
            if not cell["scored"]:
                continue
            if cell["text_ceiling"] < 0.97:
                assert cell["accuracy"] == cell["text_ceiling"], (sheet, aspect, cell["wrong_rows"])
                assert all(w["text"] != "supports" for w in cell["wrong_rows"]), (sheet, aspect)
            else:
                assert cell["accuracy"] >= 0.96, (sheet, aspect, cell["wrong_rows"])


def test_text_support_tells_contradicted_codes_from_parser_misses():
    bench = _load_benchmark()
    vocab = load_vocabulary()
    parser = ReportParser(vocab)

    def support(report, aspect, gold):
        return bench.text_support(parser, vocab, bench.Row("s", 2, "kidney", {}, report), aspect, gold)

    text = "An irregular hypodense lesion in the left kidney, not well-defined, with areas of hyperdensity."
    assert support(text, "shape", ("2",)) == "supports"          # irregular
    assert support(text, "shape", ("1",)) == "contradicts"       # coded round-like against "irregular"
    assert support(text, "density", ("3",)) == "supports"        # a hyperdense PART still states the word
    assert support(text, "surface", ("2",)) == "supports"        # "not well-defined" states ill-defined
    assert support(text, "surface", ("1",)) == "contradicts"
    assert support("A hypodense lesion in the left kidney.", "surface", ("1",)) == "silent"
    assert support(text, "relationship", ("1",)) == "supports"   # silent, and "not close" is the convention
    assert support(text, "relationship", ("2",)) == "silent"
    assert parser.stated_values(text, "density", "kidney") == ("hypodense", "hyperdense")
    # a ground-glass and a solid statement in one sentence state the lung's mixed category, for the ceiling too
    lung = "A solid nodule with a ground-glass halo."
    assert "mixed_ground_glass_solid" in parser.stated_values(lung, "density", "lung")


@pytest.mark.parametrize("name", ["report_paraphrases.tsv", "report_paraphrases_holdout.tsv",
                                  "report_paraphrases_holdout2.tsv", "report_paraphrases_holdout3.tsv",
                                  "report_paraphrases_holdout4.tsv", "report_paraphrases_holdout5.tsv",
                                  "report_paraphrases_holdout6.tsv", "report_paraphrases_holdout7.tsv",
                                  "report_paraphrases_holdout8.tsv", "report_paraphrases_holdout9.tsv",
                                  "report_paraphrases_holdout10.tsv", "report_paraphrases_holdout11.tsv"])
def test_paraphrase_sets_floor(name):
    """Regression floor on the paraphrase sets of all seven organs (measured: 100 % on every aspect, see the
    benchmark's docstring for the held-back set's first measurement)."""
    bench = _load_benchmark()
    vocab = load_vocabulary()
    items = bench.read_paraphrases(REPO / "tests" / "data" / name, vocab)
    organs = {"kidney", "liver", "pancreas", "colon", "lung", "gallbladder", "spleen"}
    held_out_sheets = any(f"holdout{n}" in name for n in range(3, 12))  # only the held-out sheets' organs
    assert {p.organ for p in items} == ({"colon", "lung", "pancreas"} if held_out_sheets else organs)
    results = bench.evaluate_paraphrases(items, vocab, ReportParser(vocab, coding_defaults=False))
    for aspect, cell in results["all organs"].items():
        assert cell["accuracy"] >= 0.95, (aspect, [w for o, a in results.items() for w in a[aspect]["wrong_rows"]
                                                   if o != "all organs" and aspect in a])


def test_paraphrase_reader_names_the_bad_line(tmp_path):
    bench = _load_benchmark()
    bad = tmp_path / "p.tsv"
    bad.write_text("# comment\nkidney\tdensity\tbright\tA bright lesion.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        bench.read_paraphrases(bad, load_vocabulary())


def test_cli_unwritable_output_is_refused_before_parsing(tmp_path, capsys):
    from bad_inputs import run_bad

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "case_1.txt").write_text("A 2 cm hypodense lesion in the left kidney.", encoding="utf-8")
    _, err = run_bad(main, "nnUNetv2_malenia_parse_reports", ["-i", folder, "-o", tmp_path, "--organ", "kidney"],
                     "-o is a folder", capsys)
    assert f"{tmp_path}: -o: is a folder; give a file name" in err
    _, err = run_bad(main, "nnUNetv2_malenia_parse_reports",
                     ["-i", folder, "-o", folder / "case_1.txt" / "out.json", "--organ", "kidney"],
                     "-o below a file", capsys)
    assert "-o: cannot be created" in err and "parsing reports" not in err


@pytest.mark.parametrize("text, organ, key", [
    ("The lesion clings to the adjacent pleura.", "lung", "close_unclear_boundary"),
    ("There is adhesion with the adjacent small intestine.", "colon", "close_unclear_boundary"),
    ("There is a certain distance between the nodule and the pleura.", "lung", "not_close"),
    ("No abnormality of the adjacent pleura.", "lung", "not_close"),          # a negated contact word flips
    ("The lesion surrounds the superior mesenteric artery.", "pancreas", "close_unclear_boundary"),
])
def test_relationship_read_from_a_clause_naming_a_neighbour(text, organ, key):
    result = ReportParser(coding_defaults=False).parse(text, organ).aspects["relationship"]
    assert (result.status, result.values) == (FOUND, (key,))
    assert result.confidence < 0.7                                            # a fallback: weaker than any phrase


@pytest.mark.parametrize("text, organ", [
    ("Irregular thickening of the hepatic flexure, pressing on the lumen.", "colon"),   # a location, not the liver
    ("The cyst compresses the adjacent pancreatic parenchyma.", "pancreas"),            # its own organ
    ("A 2 cm nodule in the right lower lobe.", "lung"),                                # no contact or separation word
    ("The tumour invades the serosa next to the bladder.", "colon"),      # blocked phrase (own wall) stays unread
])
def test_relationship_fallback_needs_a_neighbour_and_a_cue(text, organ):
    result = ReportParser(coding_defaults=False).parse(text, organ).aspects["relationship"]
    assert result.status == MISSING


def test_relationship_phrase_beats_the_neighbour_fallback():
    # "closely related" is a phrase; the separation word "clear" in the same clause must not overrule it
    text = "The mass is closely related to the duodenum, with a clear stomach wall."
    result = ReportParser(coding_defaults=False).parse(text, "pancreas").aspects["relationship"]
    assert result.values == ("close_unclear_boundary",) and result.confidence > 0.7


def test_a_lung_mass_is_solid_unless_stated_otherwise():
    parser = ReportParser(coding_defaults=False)
    assert parser.parse("An irregular mass in the left lower lobe.", "lung").aspects["density"].values == ("soft_tissue",)
    # the inference is no solid part: a ground-glass mass is ground glass, not mixed
    assert parser.parse("A 3.5 cm ground-glass mass in the right upper lobe.",
                        "lung").aspects["density"].values == ("ground_glass",)
