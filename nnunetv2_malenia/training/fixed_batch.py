"""Fit one fixed batch with a trainer's own ``train_step``: the setup check behind ``benchmarks/overfit_check.py``
and the learning test (tests/test_learning.py).

The trainer is built exactly as ``nnUNetv2_train`` builds it (plans and dataset.json of
``nnUNet_preprocessed/<dataset>``), the batch is whole preprocessed cases read with nnU-Net's own dataset class (no
augmentation), and the evaluation runs the network as nnU-Net's predictor does (eval mode, dense logits, argmax).
A network that cannot fit two cases it sees a hundred times has a bug; one that can, but scores nothing on
held-out cases after a short schedule, is short of training or data.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from nnunetv2_malenia.evaluation.metrics import dice


def build_trainer(dataset: str, trainer_name: str, configuration: str = "3d_fullres", fold: int = 0,
                  device: str = "cpu", plans_identifier: str = "nnUNetPlans"):
    """An initialized trainer as nnUNetv2_train makes it, with the optimizer held at the schedule's peak learning
    rate (a fixed-batch fit runs no epochs, so the warm-up or poly decay would never be stepped) and nnU-Net's deep
    supervision off."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_malenia.paths import nnunet_folder
    from nnunetv2_malenia.trainer_path import SHIM_FOLDER

    os.environ["nnUNet_extTrainer"] = os.pathsep.join(
        dict.fromkeys(filter(None, [str(SHIM_FOLDER), os.environ.get("nnUNet_extTrainer")])))
    preprocessed = nnunet_folder("nnUNet_preprocessed") / maybe_convert_to_dataset_name(dataset)
    plans = json.loads((preprocessed / f"{plans_identifier}.json").read_text())
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    plans["continue_training"] = False         # nnUNetTrainer.__init__ pops it (run_training.py sets it)
    trainer_class = recursive_find_trainer_class_by_name(trainer_name)
    trainer = trainer_class(plans, configuration, fold, dataset_json, torch.device(device))
    trainer.initialize()
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    if isinstance(trainer.loss, DeepSupervisionWrapper):
        # plain nnU-Net: one full-resolution output and loss, so whole cases need no multi-scale targets
        trainer.set_deep_supervision_enabled(False)
        trainer.loss = trainer.loss.loss
    adamw = getattr(trainer, "adamw", None)
    peak = adamw["lr"] if adamw else trainer.initial_lr
    for group in trainer.optimizer.param_groups:
        group["lr"] = peak
    return trainer


def load_fixed_batch(trainer, cases: int) -> Dict[str, object]:
    """The trainer's batch format for the first ``cases`` preprocessed training cases: ``data`` [B, C, *S] float32,
    ``target`` [B, 1, *S] int16, ``keys`` [B]. All cases must share one shape (whole phantom volumes do)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = str(Path(trainer.preprocessed_dataset_folder))
    dataset = infer_dataset_class(folder)(folder)
    ids = dataset.identifiers[:cases]
    loaded = [dataset.load_case(c)[:2] for c in ids]                            # (data, seg) per case
    data = np.stack([np.asarray(d) for d, _ in loaded]).astype(np.float32)      # [B, C, *S]
    seg = np.stack([np.asarray(g) for _, g in loaded]).astype(np.int16)         # [B, 1, *S]
    return {"data": torch.from_numpy(data), "target": torch.from_numpy(seg), "keys": np.array(ids)}


@torch.no_grad()
def evaluate_fixed_batch(trainer, batch: Dict[str, object]) -> dict:
    """Per-label Dice (labels in the reference or the prediction), class-agnostic lesion Dice (finding apart from
    naming) and the predicted / reference foreground share, from eval-mode dense logits as the predictor sees them."""
    network = trainer.network
    network.eval()
    logits = network(batch["data"].to(trainer.device))                 # [B, K+1, *S] (plain U-Net: the same)
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    network.train()
    pred = logits.argmax(1).cpu().numpy()                               # [B, *S]
    target = batch["target"][:, 0].numpy()                              # [B, *S]
    labels = np.union1d(np.unique(target), np.unique(pred))
    return {"dice": {int(v): dice(target == v, pred == v) for v in labels if v > 0},
            "lesion_dice": dice(target > 0, pred > 0),
            "foreground_share": float((pred > 0).mean()), "reference_share": float((target > 0).mean())}


def fit_fixed_batch(trainer, batch: Dict[str, object], steps: int, every: int, log=None) -> Tuple[list, float]:
    """``steps`` train_steps on ``batch``; every ``every`` steps (and at the end) an evaluation. Returns the curve
    (dicts with step, loss, seconds since the start and evaluate_fixed_batch's fields) and the last loss."""
    curve, loss, start = [], float("nan"), time.time()
    for step in range(1, steps + 1):
        loss = float(np.asarray(trainer.train_step(batch)["loss"]))
        if step % every == 0 or step == steps:
            point = {"step": step, "loss": loss, "seconds": time.time() - start,
                     **evaluate_fixed_batch(trainer, batch)}
            curve.append(point)
            if log is not None:
                log(point)
    return curve, loss
