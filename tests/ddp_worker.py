"""One rank of the two-process DDP check in test_ddp.py (a module of its own: spawned children import it by name).

Each rank builds the same tiny MaleniaNet, wraps it in DistributedDataParallel exactly as nnU-Net does (default
``find_unused_parameters=False``, ``broadcast_buffers=True``), fills the dataset buffers in place after wrapping as
``nnUNetTrainerMalenia.initialize`` does, and runs one training step of the trainer's pieces (instance targets,
SlotAssigner, MaleniaCriterion, weighted total, backward) on its OWN batch: rank 0 has lesions, rank 1 an empty
patch, the case that hangs or fails DDP when a loss leaves parameters out of the graph. Everything a rank saw is
written to ``<out>/rank<k>.pt`` for the test to compare.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from nnunetv2_malenia.losses import HungarianMatcher, MaleniaCriterion, SlotAssigner, instances_from_segmentation
from nnunetv2_malenia.network import build_malenia_network
from nnunetv2_malenia.network.example_plans import unet_plans
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS
from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia

R, D, K = 20, 16, 2
PATCH = (16, 16, 16)


class Lookup:
    """Label 1 is a lesion described by bank rows 0-7 (one per aspect), label 2 by rows 8-15."""
    lesion_label_values = [1, 2]

    def positive_rows(self, case_id, value):
        return list(range(8 * (value - 1), 8 * value))

    def paragraph_row(self, case_id, value):
        return 16 + value - 1


def rank_batch(rank: int):
    """Rank 0: two lesions in sample 0, one in sample 1. Rank 1: no lesion anywhere (S_n = 0 on every sample)."""
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(2, 1, *PATCH, generator=g)                               # [B, 1, Z, Y, X]
    seg = torch.zeros(2, 1, *PATCH, dtype=torch.int16)                       # [B, 1, Z, Y, X]
    if rank == 0:
        seg[0, 0, 2:6, 2:6, 2:6] = 1
        seg[0, 0, 10:14, 10:14, 10:14] = 2
        seg[1, 0, 4:9, 4:9, 4:9] = 1
    return x, seg


def run(rank: int, world_size: int, init_file: str, out: str, settings: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)                                                    # same initial weights on each rank
        pm, cm = unet_plans(list(PATCH), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [4, 8, 8, 16])
        net = build_malenia_network(pm, cm, 1, K + 1, {"num_bank_rows": R, "text_dim": D, "num_classes": K,
                                                      "token_dim": 32, "num_heads": 4, **settings})
        model = DDP(net)
        # As initialize(): buffers filled in place after wrapping. Rank 1 gets a DIFFERENT bank on purpose: DDP
        # must broadcast rank 0's buffers at the first forward, so both ranks train against the same text space.
        bank = F.normalize(torch.randn(R, D, generator=torch.Generator().manual_seed(7 + rank)), dim=1)
        # rows 0-15: the eight aspects of labels 1 and 2, 16-17 their paragraphs, 18-19 organ rows
        row_aspect = torch.tensor([a % 8 for a in range(16)] + [BANK_ASPECTS.index("paragraph")] * 2
                                  + [BANK_ASPECTS.index("organ")] * 2)
        with torch.no_grad():
            net.bank_embeddings.copy_(bank)
            net.row_aspect.copy_(row_aspect)
            rows = torch.arange(R)
            net.class_row_mask.copy_(torch.stack([rows < 8, (rows >= 8) & (rows < 16)]))     # [K, R]: rows 0-7, 8-15

        x, seg = rank_batch(rank)
        targets = instances_from_segmentation(seg, ["case_a", "case_b"], Lookup(), max_instances=15, num_rows=R)
        matcher = HungarianMatcher(num_points=None)
        criterion = MaleniaCriterion(row_aspect, num_points=None)
        model.train()
        # Two steps: a parameter left out of the graph only fails DDP at the NEXT forward ("Expected to have
        # finished reduction in the prior iteration").
        for _ in range(2):
            net.zero_grad(set_to_none=True)
            assigner = SlotAssigner(matcher, targets, net.row_aspect)
            outputs = model(x, slot_assigner=assigner)
            losses = criterion(outputs, targets, assigner.indices)
            total = criterion.weighted_total(losses)
            total.backward()
        grads = torch.cat([p.grad.flatten() if p.grad is not None else torch.full((p.numel(),), float("nan"))
                           for p in net.parameters()])
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        mean_loss = nnUNetTrainerMalenia._mean_over_workers(_DDPStub(), [float(total.detach())])
        torch.save({"grads": grads, "missing": missing, "bank": net.bank_embeddings.clone(),
                    "losses": {k: float(v.detach()) for k, v in losses.items()}, "total": float(total.detach()),
                    "mean_loss": mean_loss, "instances": [int(t["masks"].shape[0]) for t in targets]},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


class _DDPStub:
    """The one attribute ``nnUNetTrainerMalenia._mean_over_workers`` reads."""
    is_ddp = True


if __name__ == "__main__":       # python ddp_worker.py RANK WORLD INIT_FILE OUT [ablation]
    rank, world, init_file, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ablation = sys.argv[5] if len(sys.argv) > 5 else "default"
    settings = {"default": {}, "mask_only": {"branches": "mask"}, "text_only": {"branches": "text"},
                "no_fusion": {"fusion": False}}[ablation]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(rank, world, init_file, out, settings)
