"""The test that fails when learning breaks: the Malenia trainer must segment and name a large phantom lesion.

Two 32^3 phantom cases with liver tumours of radius >= 4 voxels, planned and preprocessed by nnU-Net, the CPU
regime's ``3d_cpu`` configuration and trainer (``nnUNetTrainerMalenia_CPUDemo``: AdamW 1e-3); the trainer's own
``train_step`` runs on the fixed batch of both cases, and the network, in eval mode as nnU-Net's predictor runs it,
must reach Dice > 0.5 on the tumour label. It checks network, losses, matcher, optimizer and the dense inference
rule together; any of them broken (a detached loss, a wrong sign, masks that never leave zero, a class rule that
sends found lesions to background) keeps the Dice at 0. Asserts Dice, not time (about a minute on 2 cores).
"""
from __future__ import annotations

import pytest

from nnunetv2_malenia.phantoms.generator import PhantomConfig

DATASET_ID = 997
LESION = "liver tumor"
STEPS = 150


@pytest.fixture(scope="module")
def tiny_regime(tmp_path_factory, monkeypatch_module):
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                       preprocess)

    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.phantoms.dataset import write_phantom_dataset
    from nnunetv2_malenia.training.cpu_plans import add_cpu_configuration

    root = tmp_path_factory.mktemp("learning")
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch_module.setenv(name, str(root / name))
    config = PhantomConfig(size=(32, 32, 32), spacing=(10.0, 10.0, 10.0), labelled=(LESION,), seed=5,
                           min_lesion_radius=4.0)
    write_phantom_dataset(root / "nnUNet_raw" / f"Dataset{DATASET_ID}_LearningCheck", load_knowledge_table(),
                          config, num_cases=2, num_processes=1)
    extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=False, verbose=False)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("3d_fullres",), num_processes=(1,), verbose=False)
    add_cpu_configuration(root / "nnUNet_preprocessed" / f"Dataset{DATASET_ID}_LearningCheck" / "nnUNetPlans.json")
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_malenia_trainer_fits_a_large_lesion(tiny_regime):
    import torch

    from nnunetv2_malenia.training.fixed_batch import build_trainer, fit_fixed_batch, load_fixed_batch

    torch.manual_seed(0)
    trainer = build_trainer(str(DATASET_ID), "nnUNetTrainerMalenia_CPUDemo", "3d_cpu")
    batch = load_fixed_batch(trainer, cases=2)
    assert int((batch["target"] > 0).sum()) > 2 * 200, "the phantom should hold large lesions"
    curve, loss = fit_fixed_batch(trainer, batch, STEPS, every=STEPS // 3)
    last = curve[-1]
    history = [(p["step"], round(p["lesion_dice"], 3), {k: round(v, 3) for k, v in p["dice"].items()}) for p in curve]
    assert last["lesion_dice"] > 0.5, f"lesions not found after {STEPS} steps: {history}"
    assert last["dice"].get(1, 0.0) > 0.5, f"{LESION} not segmented and named after {STEPS} steps: {history}"
