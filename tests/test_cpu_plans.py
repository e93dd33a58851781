"""nnUNetv2_malenia_cpu_plans: the 3d_cpu configuration of the CPU regime, and its errors."""
from __future__ import annotations

import json

import pytest

from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.network.example_plans import tiny_plan_48
from nnunetv2_malenia.training.cpu_plans import CPU_CONFIGURATION, add_cpu_configuration


@pytest.mark.parametrize("planned_batch, cpu_batch", [(4, 2), (1, 1)])
def test_cpu_configuration_halves_widths_caps_batch_inherits_and_turns_batch_dice_on(tmp_path, planned_batch,
                                                                                      cpu_batch):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = tiny_plan_48()[0].plans
    plans["configurations"]["3d_fullres"]["batch_size"] = planned_batch
    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(plans))
    add_cpu_configuration(plans_file)
    add_cpu_configuration(plans_file)                       # running it again changes nothing
    written = json.loads(plans_file.read_text())
    cpu = PlansManager(written).get_configuration(CPU_CONFIGURATION)
    assert cpu.network_arch_init_kwargs["features_per_stage"] == [16, 32, 64, 128]
    assert cpu.batch_dice is True
    assert cpu.batch_size == cpu_batch                      # at most 2, never more than nnU-Net planned
    assert cpu.data_identifier == written["configurations"]["3d_fullres"]["data_identifier"]   # same data
    assert written["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] == \
        [32, 64, 128, 256]                                  # the parent is left as planned


@pytest.mark.parametrize("content, where", [(None, "no plans file"), ("{", "line 1"),
                                            ('{"configurations": {"2d": {}}}', "configurations.3d_fullres")])
def test_bad_plans_name_the_file_and_field(tmp_path, content, where):
    plans_file = tmp_path / "nnUNetPlans.json"
    if content is not None:
        plans_file.write_text(content)
    with pytest.raises(MaleniaInputError) as e:
        add_cpu_configuration(plans_file)
    assert str(plans_file) in str(e.value) and where in str(e.value)
    assert content is None or plans_file.read_text() == content      # nothing written
