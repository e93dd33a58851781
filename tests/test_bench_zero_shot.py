"""Smoke run of benchmarks/bench_zero_shot.py (profile ``smoke``): the whole comparison through nnU-Net's real
CLIs on tiny phantoms (a few minutes on 2 CPU cores). Checks that the report is complete, not what the numbers are:
five epochs of four iterations teach nothing."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_zero_shot.py"
ZERO_SHOT_ARMS = ("malenia", "agnostic", "supervised")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_zero_shot")
    out = root / "report"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--profile", "smoke", "--work", str(root / "work"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=root)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


@pytest.mark.slow
def test_report_files_are_written(report):
    for name in ("benchmark.md", "benchmark.json", "dsc_unseen.png", "cost.png", "learning_curves.png",
                 "user_disease.md", "user_disease.json"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    assert (report / "dsc_unseen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_every_arm_has_numbers(report):
    r = json.loads((report / "benchmark.json").read_text())
    assert set(r["arms"]) == set(ZERO_SHOT_ARMS)
    q, c = r["quality"], r["cost"]
    assert q["unseen_per_disease"], "no unseen disease scored"
    for disease, row in q["unseen_per_disease"].items():
        # Dice is null only when reference and prediction are both empty in every case; the reference has the
        # disease in the test set (the phantom renders every labelled disease), so each arm must give a number
        for arm in ZERO_SHOT_ARMS:
            assert set(row[arm]) == {"dice", "nsd"}, (disease, arm)
    for arm in ZERO_SHOT_ARMS:
        assert _is_number(q["class_agnostic_lesion"][arm]["dice"]), arm
        assert _is_number(q["unseen_mean"][arm]["dice"]), arm
        assert _is_number(c["train"][arm]["median_epoch_s"]) and c["train"][arm]["epochs"] == 2, arm
        assert _is_number(c["train"][arm]["peak_rss_mib"]) and c["train"][arm]["peak_rss_mib"] > 100, arm
        assert _is_number(c["predict_unseen"][arm]["wall_s"]), arm
        curves = c["train"][arm]["curves"]
        assert len(curves["mean_fg_dice"]) == len(curves["train_losses"]) == 2, arm
    assert set(c["train"]["malenia"]["curves"]) >= {"malenia/loss_bce", "malenia/loss_dice", "malenia/loss_sim_0"}
    assert _is_number(c["train"]["malenia"]["epoch_time_ratio_vs_baseline"])
    assert _is_number(c["predict_unseen"]["malenia"]["lesion_reports_wall_s"])
    reports = q["lesion_reports"]["malenia"]
    assert set(reports["per_aspect"]) == {"enhancement_status", "location", "shape", "density", "density_variation",
                                          "surface", "relationship", "specific_features"}
    assert "accuracy" in reports["disease_identification"]
    # naming the reference lesions: every reference lesion is described and matched (its own mask)
    naming = q["naming_reference_lesions"]["malenia"]
    assert naming["n_predicted_lesions"] == naming["n_reference_lesions"] > 0
    assert naming["disease_identification"]["matched"] == naming["n_reference_lesions"]
    # generalised zero-shot at the profile's --seen-penalty: both test sets and the reference lesions scored
    cal = q["calibrated"]
    assert cal["seen_penalty"] == 1.25 and set(cal["unseen_per_disease"]) == set(q["unseen_mean"]["diseases"])
    assert _is_number(cal["unseen_mean"]["dice"]) and _is_number(cal["seen_mean"]["dice"])
    assert "accuracy" in cal["lesion_reports"]["disease_identification"]
    assert cal["naming_reference_lesions"]["n_predicted_lesions"] == naming["n_reference_lesions"]
    # the disease defined only in attribute_tables/user_disease_example.json, predicted without retraining
    user = json.loads((report / "user_disease.json").read_text())
    assert list(user["segmentation"]) == ["calcified liver granuloma"] and user["num_candidates"] == 13
    assert _is_number(user["class_agnostic"]["lesion"]["dice"])
    assert user["naming_reference"]["disease_identification"]["matched"] == len(user["rank_of_true_disease"]) > 0
    n = c["network_96"]
    assert n["patch_size"] == [96, 96, 96] and n["malenia"]["params"] > n["plain"]["params"] > 0
    assert n["malenia"]["flops"] > n["plain"]["flops"] > 0
    assert r["hardware"]["cpu"] and r["versions"]["nnunetv2"] and r["versions"]["torch"]
    assert all(_is_number(v) for v in r["wall_times_s"].values())


@pytest.mark.slow
def test_markdown_tables_have_a_row_per_arm(report):
    text = (report / "benchmark.md").read_text()
    for title in ("Malenia zero-shot (A)", "nnU-Net class-agnostic (B)", "nnU-Net supervised (C, upper bound)"):
        row = next((l for l in text.splitlines() if l.startswith(f"| {title} |")), None)
        assert row is not None, title
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        assert any(c.replace(".", "", 1).isdigit() for c in cells), row
    assert "### Generalised zero-shot with calibrated stacking (`--seen-penalty 1.25`)" in text
    assert "### Generalised zero-shot with location maps (`--location-maps` and `--seen-penalty 1`)" in text
    assert "## Cost" in text and "## Wall time per step" in text and "![dsc_unseen.png](dsc_unseen.png)" in text


@pytest.mark.parametrize("setting", ["calibrated", "located"])
def test_generalised_sections_set_both_splits_beside_the_plain_rows(setting):
    sys.path.insert(0, str(SCRIPT.parent))
    from zero_shot_report import _clean, calibrated_lines, generalised_quality, located_lines

    def evaluation(dice):
        return {"per_disease": {d: {"dice": v, "nsd": v} for d, v in dice.items()},
                "lesion_reports": {"disease_identification": {"accuracy": 0.5, "correct": 1, "matched": 2},
                                   "n_predicted_lesions": 2, "n_reference_lesions": 3}}

    naming = {"disease_identification": {"accuracy": 1.0, "correct": 3, "matched": 3}, "n_predicted_lesions": 3,
              "n_reference_lesions": 3}
    options = {"seen_penalty": 1.25} if setting == "calibrated" else {"location_maps": "locationsTs",
                                                                      "seen_penalty": 1.0}
    result = {**options, "unseen": evaluation({"liver cyst": 0.4, "kidney stone": 0.0}),
              "seen": evaluation({"gallstone": 0.9, "lung tumor": float("nan")}), "naming": naming}
    # as assemble() stores it: NaN (both masks empty) becomes None
    cal = _clean(generalised_quality(result, present=["liver cyst", "kidney stone"],
                                     A_labels=["gallstone", "lung tumor"]))
    assert cal["unseen_mean"]["dice"] == pytest.approx(0.2) and cal["seen_mean"]["dice"] == pytest.approx(0.9)
    assert all(cal[k] == v for k, v in options.items())
    q = {setting: cal,
         "unseen_per_disease": {d: {"malenia": {"dice": 0.0}, "supervised": {"dice": 0.8}}
                                for d in ("liver cyst", "kidney stone")},
         "unseen_mean": {"malenia": {"dice": 0.0}, "supervised": {"dice": 0.8}},
         "seen_per_disease": {"gallstone": {"malenia": {"dice": 0.95}}, "lung tumor": {"malenia": {"dice": 0.5}}}}
    text = "\n".join(calibrated_lines(q) if setting == "calibrated" else located_lines(q))
    assert "| liver cyst | 0.000 | 0.400 | 0.400 | 0.800 |" in text
    assert "| **mean** | 0.000 | 0.200 | 0.200 | 0.800 |" in text
    assert "| gallstone | 0.950 | 0.900 | 0.900 |" in text and "| lung tumor | 0.500 | – | – |" in text
    assert "Disease identification accuracy: 1.000 (3/3 matched" in text


def test_seen_table_says_how_many_lesions_each_disease_mean_rests_on():
    sys.path.insert(0, str(SCRIPT.parent))
    from zero_shot_report import seen_lines

    q = {"seen_per_disease": {"gallstone": {"malenia": {"dice": 0.9, "nsd": 0.8},
                                            "per_class": {"dice": 0.7, "nsd": 0.6}},
                              "pancreas tumor": {"malenia": {"dice": 0.1, "nsd": 0.1},
                                                 "per_class": {"dice": None, "nsd": None}}},
         "seen_reference_lesions": {"gallstone": 20, "pancreas tumor": 1}}
    text = "\n".join(seen_lines(q))
    assert "| disease | test lesions | Malenia zero-shot (A) DSC |" in text
    assert "| gallstone | 20 | 0.900 | 0.800 | 0.700 | 0.600 |" in text
    assert "| pancreas tumor | 1 | 0.100 | 0.100 | – | – |" in text
    assert "| **mean** |  | 0.500 | 0.450 | 0.700 | 0.600 |" in text
    # a report written before the counts were recorded still renders
    assert "| gallstone | – |" in "\n".join(seen_lines({"seen_per_disease": q["seen_per_disease"]}))
