"""DDP safety of the network and losses, with real torch.distributed (gloo, two CPU processes).

nnU-Net's ``-num_gpus`` path needs CUDA (NCCL, one GPU per rank), which CI never has. What can break Malenia under
DDP is ours, and this test runs it for real: DDP with nnU-Net's settings, ranks with different lesion counts
(rank 1 has none), in-place buffer filling after wrapping, the all-reduced instance count and the epoch-mean of the
named losses. See ddp_worker.py for what one rank does.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def run_two_ranks(tmp_path: Path, ablation: str) -> list:
    out = tmp_path / ablation
    out.mkdir()
    init_file = tmp_path / f"init_{ablation}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(WORKER.parent)] + sys.path))
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(rank), "2", str(init_file), str(out), ablation],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"DDP ranks hung (a parameter outside the graph, or a collective only one rank reached)")
    for rank, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log}"
    return [torch.load(out / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.parametrize("ablation", ["default", "mask_only"])
def test_two_ranks_one_with_no_lesion_train_in_step(tmp_path, ablation):
    r0, r1 = run_two_ranks(tmp_path, ablation)
    assert r0["instances"] == [2, 1] and r1["instances"] == [0, 0]
    # every parameter got a gradient on both ranks, and DDP averaged them into the same values
    assert r0["missing"] == [] and r1["missing"] == []
    assert torch.isfinite(r0["grads"]).all()
    torch.testing.assert_close(r0["grads"], r1["grads"])
    # rank 1's own bank was replaced by rank 0's broadcast buffers before its forward
    torch.testing.assert_close(r0["bank"], r1["bank"])
    # mask losses: rank 0 sums over 3 matched lesions and divides by the all-reduced mean count (3 + 0) / 2
    assert r0["losses"]["loss_dice"] > 0 and r1["losses"]["loss_dice"] == 0.0
    # the epoch-mean of a named loss gathers every rank's values
    assert r0["mean_loss"] == pytest.approx((r0["total"] + r1["total"]) / 2)
    assert r1["mean_loss"] == pytest.approx(r0["mean_loss"])
