"""Diagnostic (not a test): can a trainer's network fit a handful of training cases? Minutes on a CPU.

    python benchmarks/overfit_check.py -d 901 -c 3d_cpu -tr nnUNetTrainerMalenia_CPUDemo [--cases 2] [--steps 300]
        [--every 50] [--out curve.json]

Repeats ``trainer.train_step`` on ONE fixed batch of the first ``--cases`` preprocessed training cases (whole
volumes, no augmentation) at the schedule's peak learning rate, and every ``--every`` steps prints per-label Dice,
the class-agnostic lesion Dice (finding apart from naming) and the predicted foreground share, from the network in
eval mode as nnU-Net's predictor runs it (nnunetv2_malenia/training/fixed_batch.py). Reference: ``-tr
nnUNetTrainer_CPUDemo`` (nnU-Net's own network and loss, same batch, same optimizer; nnU-Net's deep supervision is switched off
for the fit, so the batch needs no multi-scale targets).

The trainer writes its usual output folder; point nnUNet_results somewhere disposable (default: a temp folder).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch


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
    from nnunetv2_malenia.training.fixed_batch import build_trainer, fit_fixed_batch, load_fixed_batch

    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    trainer = build_trainer(args.d, args.tr, args.c, device=args.device)
    batch = load_fixed_batch(trainer, args.cases)
    print(f"{args.tr} on {trainer.plans_manager.dataset_name} ({args.c}): cases {', '.join(batch['keys'])}, batch "
          f"{tuple(batch['data'].shape)}, reference foreground {float((batch['target'] > 0).float().mean()):.4f} "
          f"of the voxels, lr {trainer.optimizer.param_groups[0]['lr']:g}", flush=True)

    def log(point):
        per_label = " ".join(f"{v}:{d:.3f}" for v, d in point["dice"].items())
        print(f"step {point['step']:4d}  {point['seconds']:6.0f} s  loss {point['loss']:8.4f}  foreground "
              f"{point['foreground_share']:.4f}  lesion Dice {point['lesion_dice']:.3f}  per label {per_label}",
              flush=True)

    curve, _ = fit_fixed_batch(trainer, batch, args.steps, args.every, log)
    if args.out:
        from nnunetv2_malenia.utils.atomic_io import write_json_atomic

        write_json_atomic({"trainer": args.tr, "configuration": args.c, "dataset": trainer.plans_manager.dataset_name,
                           "cases": list(batch["keys"]), "lr": trainer.optimizer.param_groups[0]["lr"],
                           "curve": curve}, args.out)


if __name__ == "__main__":
    sys.exit(main())
