"""Diagnostic (not a test): can a trainer's network fit a handful of training cases? Minutes on a CPU.

    python benchmarks/overfit_check.py -d 901 -tr nnUNetTrainerMalenia [--cases 2] [--steps 150] [--every 25]

Builds the trainer exactly as nnUNetv2_train does (plans and dataset.json of nnUNet_preprocessed/<dataset>, fold 0),
then repeats ``trainer.train_step`` on ONE fixed batch of the first ``--cases`` preprocessed training cases (whole
volumes, no augmentation), and every ``--every`` steps runs the network in eval mode on that batch as nnU-Net's
predictor would (dense logits, argmax) and prints per-label Dice and the predicted foreground share. A model that
cannot fit two cases it sees hundreds of times has a bug; one that can, but scores nothing after a short schedule
on held-out cases, is short of training. Reference: ``-tr nnUNetTrainerNoDeepSupervision`` (nnU-Net's own network
and loss, same batch; deep supervision off so the batch needs no multi-scale targets).

The trainer writes its usual output folder; point nnUNet_results somewhere disposable (default: a temp folder).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from nnunetv2_malenia.evaluation.metrics import dice


def load_batch(preprocessed: Path, data_identifier: str, cases: int):
    """[B, C, *S] float32 data, [B, 1, *S] int16 segmentation and the case ids of the first ``cases`` cases,
    read with nnU-Net's own dataset class (blosc2 or numpy, whichever the preprocessing wrote). All cases must share
    one shape (whole phantom volumes do)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = str(preprocessed / data_identifier)
    dataset = infer_dataset_class(folder)(folder)
    ids = dataset.identifiers[:cases]
    loaded = [dataset.load_case(c)[:2] for c in ids]                            # (data, seg) per case
    data = np.stack([np.asarray(d) for d, _ in loaded]).astype(np.float32)
    seg = np.stack([np.asarray(g) for _, g in loaded]).astype(np.int16)
    return torch.from_numpy(data), torch.from_numpy(seg), np.array(ids)


@torch.no_grad()
def evaluate(trainer, data: torch.Tensor, seg: torch.Tensor) -> dict:
    network = trainer.network
    network.eval()
    logits = network(data.to(trainer.device))                       # [B, K+1, *S] (plain U-Net: the same)
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    network.train()
    pred = logits.argmax(1).cpu().numpy()                           # [B, *S]
    target = seg[:, 0].numpy()                                       # [B, *S]
    # per label present in the reference or the prediction
    dice_of = {int(v): dice(target == v, pred == v) for v in np.union1d(np.unique(target), np.unique(pred)) if v > 0}
    return {"dice": dice_of, "foreground_share": float((pred > 0).mean()),
            "reference_share": float((target > 0).mean())}


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", required=True, help="dataset name or id (planned and preprocessed)")
    p.add_argument("-tr", default="nnUNetTrainerMalenia")
    p.add_argument("-c", default="3d_fullres")
    p.add_argument("--cases", type=int, default=2)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("-device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, help="write the curve as JSON here")
    args = p.parse_args(argv)

    os.environ.setdefault("nnUNet_results", tempfile.mkdtemp(prefix="overfit_check_"))
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_malenia.paths import nnunet_folder
    from nnunetv2_malenia.trainer_path import SHIM_FOLDER

    os.environ["nnUNet_extTrainer"] = os.pathsep.join(filter(None, [str(SHIM_FOLDER),
                                                                    os.environ.get("nnUNet_extTrainer")]))
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    name = maybe_convert_to_dataset_name(args.d)
    preprocessed = nnunet_folder("nnUNet_preprocessed") / name
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    plans["continue_training"] = False         # nnUNetTrainer.__init__ pops it (run_training.py sets it)
    trainer_class = recursive_find_trainer_class_by_name(args.tr)
    trainer = trainer_class(plans, args.c, 0, dataset_json, torch.device(args.device))
    trainer.initialize()
    data, seg, keys = load_batch(preprocessed, trainer.configuration_manager.data_identifier, args.cases)
    batch = {"data": data, "target": seg, "keys": keys}
    print(f"{args.tr} on {name}: cases {', '.join(keys)}, batch {tuple(data.shape)}, "
          f"reference foreground {float((seg > 0).float().mean()):.4f} of the voxels", flush=True)
    curve = []
    start = time.time()
    for step in range(1, args.steps + 1):
        loss = float(np.asarray(trainer.train_step(batch)["loss"]))
        if step % args.every == 0 or step == args.steps:
            ev = evaluate(trainer, data, seg)
            curve.append({"step": step, "loss": loss, "seconds": time.time() - start, **ev})
            dice = " ".join(f"{v}:{d:.3f}" for v, d in ev["dice"].items())
            print(f"step {step:4d}  loss {loss:8.4f}  foreground {ev['foreground_share']:.4f}  Dice {dice}",
                  flush=True)
    if args.out:
        from nnunetv2_malenia.utils.atomic_io import write_json_atomic

        write_json_atomic({"trainer": args.tr, "dataset": name, "cases": list(keys), "curve": curve}, args.out)


if __name__ == "__main__":
    sys.exit(main())
