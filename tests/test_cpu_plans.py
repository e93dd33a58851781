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


def test_ct_window_replaces_the_normalization_of_every_configuration_and_keeps_the_fingerprint(tmp_path):
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    import numpy as np

    plans = tiny_plan_48()[0].plans
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["CTNormalization"]
    fingerprint = {"mean": 100.0, "std": 444.0, "percentile_00_5": -702.0, "percentile_99_5": 826.0}
    plans["foreground_intensity_properties_per_channel"] = {"0": dict(fingerprint)}
    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(plans))
    add_cpu_configuration(plans_file, (-160, 240))
    add_cpu_configuration(plans_file, (-160, 240))          # again: the recorded fingerprint stays the first one
    written = json.loads(plans_file.read_text())
    assert written["malenia_ct_window"] == {"window_hu": [-160.0, 240.0], "fingerprint_properties": {"0": fingerprint}}
    props = PlansManager(written).foreground_intensity_properties_per_channel["0"]
    # nnU-Net's own CT normalization with these properties maps the window to [-2, 2] and clips outside it
    norm = CTNormalization(use_mask_for_norm=False, intensityproperties=props)
    hu = np.array([[[-1000.0, -160.0, 40.0, 85.0, 240.0, 800.0]]])
    assert np.allclose(norm.run(hu.copy()), [[[-2.0, -2.0, 0.0, 0.45, 2.0, 2.0]]])


@pytest.mark.parametrize("window, schemes, where", [((240, -160), ["CTNormalization"], "--ct-window"),
                                                     ((-160, 240), ["ZScoreNormalization"], "normalization_schemes")])
def test_bad_ct_window_or_a_plan_without_ct_is_refused_and_nothing_written(tmp_path, window, schemes, where):
    plans = tiny_plan_48()[0].plans
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = schemes
    plans["foreground_intensity_properties_per_channel"] = {"0": {"mean": 0.0, "std": 1.0, "percentile_00_5": -1.0,
                                                                  "percentile_99_5": 1.0}}
    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(plans))
    before = plans_file.read_text()
    with pytest.raises(MaleniaInputError) as e:
        add_cpu_configuration(plans_file, window)
    assert str(plans_file) in str(e.value) and where in str(e.value)
    assert plans_file.read_text() == before
