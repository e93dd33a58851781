"""nnU-Net finds the Malenia trainers through nnUNet_extTrainer (modelled on nnunetv2's tests/test_find_objects.py)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from unittest.mock import patch

import pytest
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunetv2_malenia.trainer_path import SHIM_FOLDER
from nnunetv2_malenia.training import variants
from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia

NAMES = ["nnUNetTrainerMalenia"] + [n for n in dir(variants) if n.startswith("nnUNetTrainerMalenia_")]


@pytest.mark.parametrize("name", NAMES)
def test_every_trainer_resolves_through_the_shim_folder(name):
    with patch.dict(os.environ, {"nnUNet_extTrainer": str(SHIM_FOLDER)}):
        cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name and issubclass(cls, nnUNetTrainerMalenia)
    # The shim module is dropped from sys.modules after the lookup; the class must still pickle (spawn, DDP).
    assert cls.__module__.startswith("nnunetv2_malenia.training.")
    assert pickle.loads(pickle.dumps(cls)) is cls


def test_without_the_variable_nnunet_says_where_it_looked():
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    with patch.dict(os.environ, env, clear=True), pytest.raises(RuntimeError, match="nnUNet_extTrainer"):
        recursive_find_trainer_class_by_name("nnUNetTrainerMalenia")


def test_trainer_path_command_prints_the_shim_folder():
    out = subprocess.run([sys.executable, "-m", "nnunetv2_malenia.trainer_path"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(SHIM_FOLDER) and (SHIM_FOLDER / "malenia_trainers.py").is_file()


def _extended_ablation(name: str) -> type:
    """The trainer an ablation changes one setting of: the class its schedule-free form (``_X`` for ``_X_CPUDemo``
    and ``_X_250epochs``) extends, so ``_TissueContext`` is measured against ``_ContextLocation``."""
    stem = name.removesuffix("_CPUDemo").removesuffix("_250epochs")
    ablation = getattr(variants, stem, nnUNetTrainerMalenia)
    return ablation.__bases__[-1] if ablation is not nnUNetTrainerMalenia else nnUNetTrainerMalenia


def test_ablation_variants_change_exactly_one_setting():
    for name in NAMES[1:]:
        cls, reference = getattr(variants, name), _extended_ablation(name)
        base_net, base_loss = reference.malenia_network_settings, reference.malenia_loss_settings
        assert set(cls.malenia_network_settings) == set(base_net), name    # a new key belongs in the default too
        changed = {k for k, v in cls.malenia_network_settings.items() if base_net[k] != v}
        changed |= {k for k, v in cls.malenia_loss_settings.items() if base_loss[k] != v}
        changed |= {"appearance_swap"} if cls.appearance_swap != reference.appearance_swap else set()
        assert len(changed) <= 1, (name, reference.__name__, changed)


def test_no_lesion_heads_means_no_lesion_loss():
    # one network setting switches the heads and their loss off (the criterion would refuse a loss without heads)
    def loss_weight(cls):
        return nnUNetTrainerMalenia._loss_settings(cls)["weight_lesion"]     # class attributes only

    assert loss_weight(nnUNetTrainerMalenia) > 0
    assert loss_weight(variants.nnUNetTrainerMalenia_NoLesionLoss) == 0
    assert loss_weight(variants.nnUNetTrainerMalenia_NoLesionLoss_CPUDemo) == 0


def test_appearance_swap_cannot_train_single_positive():
    from nnunetv2_malenia.errors import MaleniaInputError

    variants.nnUNetTrainerMalenia_AppearanceSwap_CPUDemo.check_settings()
    both = type("Both", (variants.nnUNetTrainerMalenia_SinglePositive,),
                {"appearance_swap": variants.nnUNetTrainerMalenia_AppearanceSwap.appearance_swap})
    with pytest.raises(MaleniaInputError, match="appearance_swap.*single-positive"):
        both.check_settings()
