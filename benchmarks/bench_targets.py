"""Benchmark (not a test): what Malenia adds to one training iteration besides the network, per batch.

    python benchmarks/bench_targets.py [--patch 128 128 128] [--batch 2] [--lesions 10] [--reps 3] [-device cpu]

Three parts, each the median of ``--reps`` runs on a synthetic batch (``--lesions`` spheres of random label per
sample, 16 tokens, 3 decoder blocks, a 95-row bank as in the demo):
    targets   instances_from_segmentation: connected components + per-instance masks and positive rows
    matching  HungarianMatcher over the 3 blocks (SlotAssigner: once per block per step)
    losses    MaleniaCriterion forward + backward on the matched tokens (the network's own backward not included)
for the default (every voxel) and for point sampling (``--points``, Mask2Former's 112^2 = 12544 by default).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nnunetv2_malenia.losses import HungarianMatcher, MaleniaCriterion, instances_from_segmentation
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS

Q, L, C, R = 16, 3, 192, 95


class SyntheticLookup:
    """Labels 1..3 are lesions; each has one bank row per aspect (rows 8(v-1) .. 8v-1)."""
    lesion_label_values = [1, 2, 3]

    def positive_rows(self, case_id, value):
        return list(range(8 * (value - 1), 8 * value))

    def paragraph_row(self, case_id, value):
        return None


def synthetic_seg(batch: int, patch: Sequence[int], lesions: int, rng: np.random.Generator) -> torch.Tensor:
    seg = np.zeros((batch, 1, *patch), dtype=np.int16)                       # [B, 1, Z, Y, X]
    grid = np.indices(patch)                                                  # [3, Z, Y, X]
    for b in range(batch):
        for _ in range(lesions):
            centre = [rng.integers(8, s - 8) for s in patch]
            radius = rng.uniform(2, 6)
            inside = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2
            seg[b, 0][inside] = rng.integers(1, 4)
    return torch.from_numpy(seg)


def median_time(fn, reps: int, sync) -> float:
    times = []
    for _ in range(reps + 1):                                                 # the first run warms up
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patch", type=int, nargs=3, default=[128, 128, 128])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lesions", type=int, default=10)
    p.add_argument("--points", type=int, default=12544)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("-device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    seg = synthetic_seg(args.batch, args.patch, args.lesions, np.random.default_rng(0))
    lookup = SyntheticLookup()
    row_aspect = (torch.arange(R) % len(BANK_ASPECTS)).to(device)

    def targets():
        out = instances_from_segmentation(seg, ["c"] * args.batch, lookup, max_instances=Q - 1, num_rows=R)
        return [{k: v.to(device) for k, v in t.items()} for t in out]

    t_targets = median_time(targets, args.reps, sync)
    tg = targets()
    print(f"patch {args.patch}, batch {args.batch}, {args.lesions} lesions per sample "
          f"({[int(t['masks'].shape[0]) for t in tg]} instances), {device}, median of {args.reps}")
    print(f"  targets (connected components, masks, positives)   {1000 * t_targets:8.1f} ms")

    def outputs():
        leaf = lambda *shape: torch.randn(*shape, device=device).requires_grad_(True)   # noqa: E731
        return {"block_masks": [leaf(args.batch, Q, *args.patch) for _ in range(L)],
                "block_embeddings": [F.normalize(leaf(args.batch, Q, C), dim=-1) for _ in range(L)],
                "text_embeddings": F.normalize(leaf(R + 1, C), dim=-1),
                "logit_scale": torch.tensor(1 / 0.07, device=device), "pred_masks": leaf(args.batch, Q, *args.patch)}

    out = outputs()
    for name, points in (("every voxel", None), (f"{args.points} points", args.points)):
        matcher = HungarianMatcher(num_points=points, row_aspect=row_aspect)
        criterion = MaleniaCriterion(row_aspect, num_points=points)

        def match():
            return [matcher(m, e, out["text_embeddings"], out["logit_scale"], tg)
                    for m, e in zip(out["block_masks"], out["block_embeddings"])]

        indices = match()

        def losses():
            total = criterion.weighted_total(criterion(out, tg, indices))
            total.backward(retain_graph=True)

        t_match, t_loss = median_time(match, args.reps, sync), median_time(losses, args.reps, sync)
        print(f"  {name:>13}: matching (3 blocks) {1000 * t_match:8.1f} ms   losses fwd+bwd {1000 * t_loss:8.1f} ms")


if __name__ == "__main__":
    main()
