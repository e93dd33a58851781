"""End to end through nnU-Net's real CLI on a tiny phantom dataset (CPU, a few minutes).

plan/preprocess -> nnUNetv2_train -tr nnUNetTrainerMalenia_5epochs_4iters -> --c resume -> nnUNetv2_predict ->
nnUNetv2_malenia_predict with an extended knowledge table -> report schema -> export/import zip -> predict again.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
import torch

from nnunetv2_malenia.attributes.schema import ASPECTS
from nnunetv2_malenia.trainer_path import SHIM_FOLDER

pytestmark = pytest.mark.slow

TRAINER = "nnUNetTrainerMalenia_5epochs_4iters"
DATASET = "Dataset990_MaleniaTiny"
BIN = Path(sys.executable).parent

# A disease no training label has, with one description the bank has never seen: segmented and named zero-shot.
SPLENIC_CYST = {"format_version": 1, "diseases": {"splenic cyst": {
    "organ": "spleen", "source": "test",
    "attributes": {"enhancement_status": ["contrast_enhanced"], "location": ["spleen"], "shape": ["round_like"],
                   "density": ["hypodense"], "density_variation": ["homogeneous"], "surface": ["well_defined"],
                   "relationship": ["not_close"], "specific_features": ["thin walled water density splenic lesion"]}}}}


def run_cli(env: dict, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    exe = str(BIN / args[0]) if (BIN / args[0]).exists() else args[0]
    proc = subprocess.run([exe, *args[1:]], env=env, capture_output=True, text=True, timeout=900)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.phantoms.dataset import split_diseases, write_phantom_dataset
    from nnunetv2_malenia.phantoms.generator import PhantomConfig

    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
               nnUNet_results=str(root / "results"), nnUNet_extTrainer=str(SHIM_FOLDER),
               nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", OMP_NUM_THREADS="2", MPLBACKEND="agg")
    table = load_knowledge_table()
    labelled, _ = split_diseases(table, "seen", False)
    config = PhantomConfig(size=(32, 32, 32), spacing=(10.0, 10.0, 10.0), labelled=labelled, seed=3)
    write_phantom_dataset(root / "raw" / DATASET, table, config, num_cases=6, num_test_cases=2, num_processes=1)
    unseen, _ = split_diseases(table, "unseen", False)
    write_phantom_dataset(root / "unseen", table, PhantomConfig(size=(32, 32, 32), spacing=(10.0, 10.0, 10.0),
                                                                labelled=unseen, seed=4),
                          num_cases=1, num_test_cases=2, num_processes=1, case_prefix="unseen")
    (root / "splenic_cyst.json").write_text(json.dumps(SPLENIC_CYST))
    # nnUNet_n_proc_DA=0 (single-threaded augmentation) is for training only: the planner passes it to
    # torch.set_num_threads, which refuses 0
    plan_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}
    run_cli(plan_env, "nnUNetv2_plan_and_preprocess", "-d", "990", "-c", "3d_fullres", "-npfp", "1", "-np", "1",
            "--verify_dataset_integrity")
    return root, env


def model_folder(root: Path) -> Path:
    return root / "results" / DATASET / f"{TRAINER}__nnUNetPlans__3d_fullres"


@pytest.fixture(scope="module")
def trained(workspace):
    root, env = workspace
    run_cli(env, "nnUNetv2_train", "990", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu")
    return root, env


def test_training_writes_malenia_plans_checkpoint_and_named_losses(trained):
    root, _ = trained
    folder = model_folder(root)
    plans = json.loads((folder / "plans.json").read_text())
    block = plans["configurations"]["3d_fullres"]["malenia"]
    assert block["network"]["num_classes"] == 6 and len(block["bank"]["texts"]) == block["network"]["num_bank_rows"]
    ckpt = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["trainer_name"] == TRAINER and ckpt["current_epoch"] == 5
    assert ckpt["network_weights"]["bank_embeddings"].shape[0] == block["network"]["num_bank_rows"]
    logged = ckpt["logging"]
    for key in ("malenia/loss_sim_0", "malenia/loss_deep_2", "malenia/loss_bce", "malenia/loss_dice"):
        assert len(logged[key]) == 5 and all(torch.isfinite(torch.tensor(v)) for v in logged[key])
    assert (folder / "fold_0" / "progress.png").is_file()
    assert (folder / "fold_0" / "validation" / "summary.json").is_file()


def test_resume_continues_from_the_final_checkpoint(trained):
    root, env = trained
    proc = run_cli(env, "nnUNetv2_train", "990", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu", "--c")
    # nnU-Net's resume of a finished run loads checkpoint_final and has nothing left to train
    assert "final" in (proc.stdout + proc.stderr).lower()


def test_nnunet_predict_gives_training_labels(trained):
    root, env = trained
    out = root / "pred_nnunet"
    run_cli(env, "nnUNetv2_predict", "-i", str(root / "raw" / DATASET / "imagesTs"), "-o", str(out), "-d", "990",
            "-c", "3d_fullres", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1")
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(sorted(out.glob("*.nii.gz"))[0])))
    assert seg.shape == (32, 32, 32) and seg.max() <= 6


def test_zero_shot_predict_with_extended_table_and_reports(trained):
    root, env = trained
    out = root / "pred_zero_shot"
    run_cli(env, "nnUNetv2_malenia_predict", "-i", str(root / "unseen" / "imagesTs"), "-o", str(out), "-m",
            str(model_folder(root)), "-f", "0", "--knowledge-table", str(root / "splenic_cyst.json"),
            "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1", "--overlay")
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert len(labels) == 1 + 13 and "splenic cyst" in labels and "kidney stone" in labels
    reports = sorted((out / "reports").glob("*.json"))
    assert len(reports) == 2
    for path in reports:
        report = json.loads(path.read_text())
        assert report["case"] == path.stem and "enhancement_status" in report["scan"]
        for lesion in report["lesions"]:
            assert lesion["volume_ml"] > 0 and len(lesion["centroid_mm"]) == 3
            assert set(lesion["attributes"]) <= set(ASPECTS)
            scores = [d["score"] for d in lesion["diseases"]]
            assert scores == sorted(scores, reverse=True) and len(scores) == 13


def test_missing_encoder_for_new_descriptions_is_a_clear_error(trained, tmp_path):
    root, env = trained
    folder = tmp_path / "model"
    shutil.copytree(model_folder(root), folder)
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["malenia"]["bank"]["encoder_id"] = str(tmp_path / "no_such_encoder")
    (folder / "plans.json").write_text(json.dumps(plans))
    proc = run_cli(env, "nnUNetv2_malenia_predict", "-i", str(root / "unseen" / "imagesTs"), "-o",
                   str(tmp_path / "out"), "-m", str(folder), "-f", "0", "--knowledge-table",
                   str(root / "splenic_cyst.json"), "-device", "cpu", expect_ok=False)
    assert proc.returncode == 2
    assert "thin walled water density splenic lesion" in proc.stderr and "no_such_encoder" in proc.stderr


def test_export_and_install_zip_then_predict_elsewhere(trained, tmp_path):
    root, env = trained
    zip_file = tmp_path / "model.zip"
    run_cli(env, "nnUNetv2_export_model_to_zip", "-d", "990", "-o", str(zip_file), "-c", "3d_fullres", "-tr",
            TRAINER, "-f", "0", "--not_strict")
    other = dict(env, nnUNet_results=str(tmp_path / "results_elsewhere"), nnUNet_raw=str(tmp_path / "no_raw"))
    run_cli(other, "nnUNetv2_install_pretrained_model_from_zip", str(zip_file))
    out = tmp_path / "pred"
    # no raw dataset, no bank files on this "machine": everything comes from the installed model folder
    run_cli(other, "nnUNetv2_malenia_predict", "-i", str(root / "unseen" / "imagesTs"), "-o", str(out), "-d", "990",
            "-c", "3d_fullres", "-tr", TRAINER, "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1",
            "-nps", "1")
    assert len(list((out / "reports").glob("*.json"))) == 2


def test_lesion_reports_describe_every_lesion_of_a_label_map(trained, tmp_path, monkeypatch):
    """The trained tiny model may predict no lesion at all: describe the reference lesions instead, so the report
    path (nnU-Net preprocessing of the id map, shared patch windows, fold averaging, world geometry) always runs."""
    import numpy as np

    from nnunetv2_malenia.evaluation.lesions import lesion_components
    from nnunetv2_malenia.inference.lesion_report import LesionReporter
    from nnunetv2_malenia.inference.predictor import MaleniaPredictor

    root, _ = trained
    monkeypatch.setenv("nnUNet_extTrainer", str(SHIM_FOLDER))
    predictor = MaleniaPredictor(device=torch.device("cpu"), use_mirroring=False)
    predictor.initialize_from_trained_model_folder(str(model_folder(root)), [0])
    classes = predictor.prepare_zero_shot()
    unseen = root / "unseen"
    names = {v: k for k, v in json.loads((unseen / "dataset.json").read_text())["labels"].items()}
    case = "unseen_00001"
    ref = sitk.ReadImage(str(unseen / "labelsTs" / f"{case}.nii.gz"))
    ref_arr = sitk.GetArrayFromImage(ref)
    remapped = np.zeros_like(ref_arr)
    for value in np.unique(ref_arr)[1:]:
        remapped[ref_arr == value] = classes.labels[names[int(value)]]     # reference label -> zero-shot class
    seg = sitk.GetImageFromArray(remapped)
    seg.CopyInformation(ref)
    sitk.WriteImage(seg, str(tmp_path / "seg.nii.gz"))
    report = LesionReporter(predictor, tmp_path / "overlays").write(
        case, [str(unseen / "imagesTs" / f"{case}_0000.nii.gz")], str(tmp_path / "seg.nii.gz"),
        tmp_path / "report.json")
    components = lesion_components(remapped)
    assert len(report["lesions"]) == len(components) > 0
    spacing = np.prod(ref.GetSpacing())
    for lesion, comp in zip(report["lesions"], components):
        assert lesion["disease"] == classes.diseases[comp.label - 1]
        assert abs(lesion["volume_ml"] - comp.num_voxels * spacing / 1000) < 1e-3
        assert set(lesion["attributes"]) == set(ASPECTS)
        assert all(0 <= a["score"] <= 1 and a["description"] for a in lesion["attributes"].values())
        assert len(lesion["diseases"]) == 12 and abs(sum(d["score"] for d in lesion["diseases"]) - 1) < 1e-3
    assert report["scan"]["enhancement_status"]["description"]
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert len(list((tmp_path / "overlays").glob("*.png"))) == len(components)


def test_describe_given_masks_names_each_lesion_by_the_model(trained, tmp_path):
    """--describe-masks: the reference lesions of the unseen test set are reported, none segmented; each lesion is
    named by its top-ranked disease. A missing or misaligned mask is an error naming the file, before any work."""
    import numpy as np

    from nnunetv2_malenia.evaluation.lesions import lesion_components

    root, env = trained
    unseen = root / "unseen"
    out = tmp_path / "described"
    run_cli(env, "nnUNetv2_malenia_predict", "-i", str(unseen / "imagesTs"), "-o", str(out), "-m",
            str(model_folder(root)), "-f", "0", "-device", "cpu", "--disable_tta", "--describe-masks",
            str(unseen / "labelsTs"))
    assert not list(out.glob("*.nii.gz")), "--describe-masks must not segment"
    for mask in sorted((unseen / "labelsTs").glob("*.nii.gz")):
        report = json.loads((out / "reports" / f"{mask.name[:-len('.nii.gz')]}.json").read_text())
        components = lesion_components(sitk.GetArrayFromImage(sitk.ReadImage(str(mask))))
        assert report["lesions_from"] == "given mask" and len(report["lesions"]) == len(components)
        for lesion, comp in zip(report["lesions"], components):
            assert lesion["label"] == comp.label and lesion["disease"] == lesion["diseases"][0]["name"]
            assert set(lesion["attributes"]) == set(ASPECTS)

    # benchmarks/bench_naming.py re-scores one forward per case for every (rule, G): with the model's own rule and
    # no penalty it names each lesion as the CLI's reports do
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_naming

    labels = {v: k for k, v in json.loads((unseen / "dataset.json").read_text())["labels"].items()}
    named = [(labels[lesion["label"]], lesion["disease"]) for report in sorted((out / "reports").glob("*.json"))
             for lesion in json.loads(report.read_text())["lesions"]]
    bench_naming.main(["-m", str(model_folder(root)), "--set", "unseen", str(unseen / "imagesTs"),
                       str(unseen / "labelsTs"), "--rules", "best_match", "likelihood", "--seen-penalty", "0", "2",
                       "--out", str(tmp_path / "naming.md")])
    rows = json.loads((tmp_path / "naming.json").read_text())["rows"]
    assert [(r["rule"], r["seen_penalty"]) for r in rows] == [("best_match", 0.0), ("best_match", 2.0),
                                                             ("likelihood", 0.0), ("likelihood", 2.0)]
    expected = {}
    for truth, guess in named:     # and what a misnamed lesion was named is the CLI's name for it
        counts = expected.setdefault(truth, {"lesions": 0, "correct": 0, "named_as": {}})
        counts["lesions"] += 1
        counts["correct"] += int(truth == guess)
        if truth != guess:
            counts["named_as"][guess] = counts["named_as"].get(guess, 0) + 1
    assert rows[0]["sets"]["unseen"] == {"correct": sum(t == g for t, g in named), "lesions": len(named),
                                         "per_disease": expected}

    masks = tmp_path / "masks"
    shutil.copytree(unseen / "labelsTs", masks)
    first, second = sorted(masks.glob("*.nii.gz"))
    first.unlink()
    shifted = sitk.ReadImage(str(second))
    shifted.SetOrigin(tuple(np.array(shifted.GetOrigin()) + 5.0))
    sitk.WriteImage(shifted, str(second))
    proc = run_cli(env, "nnUNetv2_malenia_predict", "-i", str(unseen / "imagesTs"), "-o", str(tmp_path / "bad"),
                   "-m", str(model_folder(root)), "-f", "0", "-device", "cpu", "--describe-masks", str(masks),
                   expect_ok=False)
    assert proc.returncode == 2 and not (tmp_path / "bad").exists()
    assert f"{first}: not found" in proc.stderr and f"{second}: origin" in proc.stderr


def test_location_maps_name_every_lesion_where_it_lies(trained, tmp_path):
    """--location-maps: each lesion's location comes from the case's organ map; with --location-floor 0 no lesion is
    named a disease that does not occur where it lies, the label maps carry the reports' names, and described
    reference lesions are named the same way. A folder without a map for a case is refused before any output."""
    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.evaluation.lesions import lesion_components
    from nnunetv2_malenia.inference.location_map import location_shares, read_location_names
    from nnunetv2_malenia.phantoms.anatomy import LOCATION_KEYS

    root, env = trained
    unseen, table = root / "unseen", load_knowledge_table()
    names = read_location_names(unseen / "locationsTs", LOCATION_KEYS)
    for mode, extra in (("predicted", []), ("described", ["--describe-masks", str(unseen / "labelsTs")])):
        out = tmp_path / mode
        run_cli(env, "nnUNetv2_malenia_predict", "-i", str(unseen / "imagesTs"), "-o", str(out), "-m",
                str(model_folder(root)), "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1",
                "--location-maps", str(unseen / "locationsTs"), "--location-floor", "0", *extra)
        record = json.loads((out / "malenia_prediction.json").read_text())
        assert record["location_maps"] == str(unseen / "locationsTs") and record["location_floor"] == 0.0
        for report_file in sorted((out / "reports").glob("*.json")):
            report = json.loads(report_file.read_text())
            assert report["location_from"] == "location map"
            seg_file = out / f"{report['case']}.nii.gz" if mode == "predicted" else \
                unseen / "labelsTs" / f"{report['case']}.nii.gz"
            seg = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_file)))
            where = sitk.GetArrayFromImage(sitk.ReadImage(str(unseen / "locationsTs" / f"{report['case']}.nii.gz")))
            for lesion, comp in zip(report["lesions"], lesion_components(seg)):
                shares = location_shares(where[comp.slices][comp.mask], names)
                assert lesion["location_shares"] == pytest.approx(shares, abs=1e-4)
                if mode == "predicted":          # the rewritten label map carries the report's name
                    assert comp.label == lesion["label"]
                if shares and lesion["diseases"]:
                    assert lesion["attributes"]["location"]["value"] == next(iter(shares))
                    named = table[lesion["disease"]]
                    if any(set(shares) & set(table[d["name"]].value_keys["location"]) for d in lesion["diseases"]):
                        assert set(shares) & set(named.value_keys["location"]), (lesion["disease"], shares)

    maps = tmp_path / "maps"
    shutil.copytree(unseen / "locationsTs", maps)
    missing = sorted(maps.glob("*.nii.gz"))[0]
    missing.unlink()
    proc = run_cli(env, "nnUNetv2_malenia_predict", "-i", str(unseen / "imagesTs"), "-o", str(tmp_path / "bad"),
                   "-m", str(model_folder(root)), "-f", "0", "-device", "cpu", "--location-maps", str(maps),
                   expect_ok=False)
    assert proc.returncode == 2 and not (tmp_path / "bad").exists() and f"{missing}: not found" in proc.stderr


def test_val_npz_and_ensemble(trained, tmp_path):
    root, env = trained
    run_cli(env, "nnUNetv2_train", "990", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu", "--val", "--npz")
    validation = model_folder(root) / "fold_0" / "validation"
    assert list(validation.glob("*.npz")), "--npz must keep the softmax of the validation cases"
    # nnUNetv2_find_best_configuration is not run here: with a 20-iteration model every validation Dice is NaN
    # (nothing predicted, or both empty) and nnU-Net's selection then fails for any trainer (best_keys is empty).
    # nnUNetv2_ensemble averages the saved probabilities of predictions (folders with dataset.json + plans.json, as
    # nnUNetv2_predict writes them): two copies of one prediction
    pred = tmp_path / "p0"
    run_cli(env, "nnUNetv2_predict", "-i", str(root / "raw" / DATASET / "imagesTs"), "-o", str(pred), "-d", "990",
            "-c", "3d_fullres", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--disable_tta", "-npp", "1", "-nps",
            "1", "--save_probabilities")
    shutil.copytree(pred, tmp_path / "p1")
    run_cli(env, "nnUNetv2_ensemble", "-i", str(pred), str(tmp_path / "p1"), "-o", str(tmp_path / "ensemble"),
            "-np", "1")
    assert len(list((tmp_path / "ensemble").glob("*.nii.gz"))) == len(list(pred.glob("*.npz"))) == 2
