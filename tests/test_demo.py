"""The demo's step runner (the main command's plumbing); the pipeline itself is covered by test_trainer_e2e.py."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from nnunetv2_malenia import demo
from nnunetv2_malenia.demo import PROFILES, Step, demo_env


def test_step_tees_output_to_console_and_log(tmp_path, capsys):
    step = Step(dict(os.environ), tmp_path)
    step("say hello", sys.executable, "-c", "print('epoch 1'); print('epoch 2')")
    out = capsys.readouterr().out
    assert "epoch 1" in out and "epoch 2" in out and "say hello" in out
    log = next(tmp_path.glob("00_*.log")).read_text()
    assert "epoch 1\nepoch 2" in log and step.times["say hello"] >= 0


def test_failing_step_stops_with_its_exit_code(tmp_path, capsys):
    step = Step(dict(os.environ), tmp_path)
    with pytest.raises(SystemExit) as e:
        step("broken", sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)")
    assert e.value.code == 3 and "full output in" in capsys.readouterr().err


def test_demo_environment_and_profiles(tmp_path):
    env = demo_env(tmp_path)
    assert env["nnUNet_raw"] == str(tmp_path / "nnUNet_raw") and env["nnUNet_extTrainer"].endswith("nnunet_shims")
    assert PROFILES["cpu"].device == "cpu" and PROFILES["cpu"].trainer == "nnUNetTrainerMalenia_CPUDemo"


def _recorded_commands(monkeypatch, tmp_path, profile):
    """run_demo's command lines, with every step recorded instead of run."""
    commands = []
    monkeypatch.setattr(demo.Step, "__call__", lambda self, title, *cmd: commands.append((title, cmd)))
    monkeypatch.setattr(demo, "print_summary", lambda *args: None)
    monkeypatch.setattr(demo, "lesion_to_show", lambda *args: None)
    monkeypatch.setattr(demo.json, "loads", lambda text: {"labels": {"background": 0, "liver cyst": 1}})
    monkeypatch.setattr(demo.Path, "read_text", lambda self: "{}")
    demo.run_demo(tmp_path, profile, fresh=False)
    return commands


def test_cpu_demo_scores_both_test_sets_at_the_same_seen_penalty(monkeypatch, tmp_path):
    commands = _recorded_commands(monkeypatch, tmp_path, PROFILES["cpu"])
    penalised = [cmd for _, cmd in commands if "--seen-penalty" in cmd and "--location-maps" not in cmd]
    assert len(penalised) == 3 and all(cmd[cmd.index("--seen-penalty") + 1] == "1.25" for cmd in penalised)
    images = {cmd[cmd.index("-i") + 1].split("/")[-2] for cmd in penalised}
    assert images == {"Dataset901_MaleniaSeen", "Dataset902_MaleniaUnseen"}
    outputs = {cmd[cmd.index("-o") + 1].split("/")[-1] for _, cmd in commands if "nnUNetv2_malenia_evaluate" in cmd}
    assert {"evaluation_calibrated.json", "evaluation_seen_calibrated.json",
            "evaluation_naming_calibrated.json"} <= outputs
    # every evaluation the summary reads is written by a step
    assert {name for name, _, _ in demo.summary_sections(1.25)} <= outputs


def test_gpu_demo_has_no_calibrated_rows(monkeypatch, tmp_path):
    commands = _recorded_commands(monkeypatch, tmp_path, PROFILES["gpu"])
    assert not any("--seen-penalty" in cmd and "--location-maps" not in cmd for _, cmd in commands)
    assert [name for name, _, _ in demo.summary_sections(0.0)] == [
        "evaluation.json", "evaluation_test_diseases.json", "evaluation_seen.json", "evaluation_naming.json",
        "evaluation_located.json", "evaluation_seen_located.json", "evaluation_naming_located.json"]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_demo_reads_location_from_each_test_sets_own_organ_maps(monkeypatch, tmp_path, profile):
    commands = _recorded_commands(monkeypatch, tmp_path, PROFILES[profile])
    located = [cmd for _, cmd in commands if "--location-maps" in cmd]
    assert len(located) == 3
    for cmd in located:       # the maps of the images predicted: same dataset folder
        images, maps = cmd[cmd.index("-i") + 1], cmd[cmd.index("--location-maps") + 1]
        assert images.endswith("/imagesTs") and maps == images[:-len("imagesTs")] + "locationsTs"
        assert cmd[cmd.index("--seen-penalty") + 1] == f"{PROFILES[profile].located_seen_penalty:g}"
        assert "--no-reports" not in cmd


def test_results_markdown_keeps_captions_tables_and_times(tmp_path):
    demo.write_results_markdown(tmp_path / "results.md", [("Caption A:", "table a"), ("Caption B:", "table b")],
                                {"train": 60.0})
    text = (tmp_path / "results.md").read_text()
    assert text.index("Caption A:\n\n```\ntable a\n```") < text.index("Caption B:\n\n```\ntable b\n```")
    assert "| train | 60 s |" in text and "| total | 1.0 min |" in text


def _write_case(folder, name, array):
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(folder / f"{name}.nii.gz"))


def _report(folder, name, lesions):
    (folder / "reports").mkdir(parents=True, exist_ok=True)
    (folder / "reports" / f"{name}.json").write_text(json.dumps({"case": name, "lesions": lesions}))


def test_the_demo_shows_a_predicted_lesion_named_as_its_reference(tmp_path):
    reference = np.zeros((8, 8, 8))
    reference[1:3, 1:3, 1:3] = 1                                   # liver cyst
    reference[5:7, 5:7, 5:7] = 2                                   # kidney stone
    _write_case(tmp_path / "ref", "case_0", reference)
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "liver cyst": 1, "kidney stone": 2},
                                        "file_ending": ".nii.gz"}))
    # first folder: both lesions found, both named wrong; second: the stone named right (its label 1 = component 0)
    wrong, right = tmp_path / "wrong", tmp_path / "right"
    _write_case(wrong, "case_0", (reference > 0) * 1)
    _report(wrong, "case_0", [{"id": 0, "label": 1, "disease": "gallstone"}, {"id": 1, "label": 1,
                                                                             "disease": "gallstone"}])
    _write_case(right, "case_0", (reference == 2) * 1)
    _report(right, "case_0", [{"id": 0, "label": 1, "disease": "kidney stone"}])
    path, report, what = demo.lesion_to_show([wrong, right], tmp_path / "described", tmp_path / "ref", dataset_json)
    assert path.parent.parent == right and report["lesions"] == [{"id": 0, "label": 1, "disease": "kidney stone"}]
    assert "named as its reference" in what
    # nothing named right: the first predicted lesion; nothing predicted: a described reference lesion
    path, report, what = demo.lesion_to_show([wrong], tmp_path / "described", tmp_path / "ref", dataset_json)
    assert path.parent.parent == wrong and len(report["lesions"]) == 1 and what == "a predicted lesion"
    _report(tmp_path / "described", "case_0", [{"id": 0, "label": 1, "disease": "liver tumor"}])
    _, _, what = demo.lesion_to_show([tmp_path / "none"], tmp_path / "described", tmp_path / "ref", dataset_json)
    assert what.startswith("no lesion was predicted")
