"""The demo's step runner (the main command's plumbing); the pipeline itself is covered by test_trainer_e2e.py."""
from __future__ import annotations

import os
import sys

import pytest

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
