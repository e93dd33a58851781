"""CPU bf16 autocast of the CPU regime (training/cpu_bf16.py): the switch, the fp32 boundary, the matcher inside it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.losses import HungarianMatcher
from nnunetv2_malenia.training.cpu_bf16 import (CPU_BF16_VARIABLE, cpu_bf16_wanted, cpu_has_native_bf16,
                                                enable_cpu_bf16, to_fp32)


def test_switch_follows_the_variable_and_never_touches_a_gpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(CPU_BF16_VARIABLE, "0")
    assert not cpu_bf16_wanted(cpu)
    monkeypatch.setenv(CPU_BF16_VARIABLE, "on")
    assert cpu_bf16_wanted(cpu)
    assert not cpu_bf16_wanted(torch.device("cuda"))
    monkeypatch.delenv(CPU_BF16_VARIABLE)
    assert cpu_bf16_wanted(cpu) == cpu_has_native_bf16()          # auto
    monkeypatch.setenv(CPU_BF16_VARIABLE, "fast")
    with pytest.raises(MaleniaInputError, match=CPU_BF16_VARIABLE):
        cpu_bf16_wanted(cpu)


def test_to_fp32_walks_nested_outputs():
    out = to_fp32({"a": [torch.ones(2, dtype=torch.bfloat16), (torch.zeros(1, dtype=torch.long),)],
                   "b": torch.ones(1, dtype=torch.float16), "c": 3})
    assert out["a"][0].dtype == torch.float32 and isinstance(out["a"][1], tuple)
    assert out["a"][1][0].dtype == torch.long and out["b"].dtype == torch.float16 and out["c"] == 3


def test_wrapped_forward_runs_in_bf16_and_returns_fp32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 1))
    x = torch.randn(2, 1, 8, 8, 8)
    reference = net(x)
    keys = list(net.state_dict())
    seen = []
    net[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    enable_cpu_bf16(net)
    out = net(x)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    assert torch.allclose(out, reference, atol=0.05, rtol=0.05)      # bf16 keeps about three digits
    assert list(net.state_dict()) == keys
    out.sum().backward()                                               # gradients reach the fp32 weights
    assert net[0].weight.grad is not None and net[0].weight.grad.dtype == torch.float32


def test_matcher_inside_bf16_autocast_matches_in_fp32():
    # The network calls the matcher mid-forward, so under CPU bf16 autocast it receives bf16 masks; the cost matrix
    # must still be fp32 (scipy takes no bf16) and give the fp32 assignment.
    torch.manual_seed(0)
    S, Q = (6, 6, 6), 4
    gt = torch.zeros(3, *S, dtype=torch.bool)
    gt[0, :2], gt[1, 3:, :2], gt[2, 3:, 4:] = True, True, True
    target = {"masks": gt, "labels": torch.full((3,), 2), "positives": torch.zeros(3, 5, dtype=torch.bool),
              "paragraph": torch.full((3,), -1)}
    holder = torch.tensor([3, 0, 2])                                   # token holding instance i
    masks = torch.full((1, Q, *S), -4.0)
    masks[0, holder] = torch.where(gt, 4.0, -4.0)
    emb, text = F.normalize(torch.randn(1, Q, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    matcher = HungarianMatcher(5, 5, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (pred_idx, tgt_idx), = matcher(masks.bfloat16(), emb.bfloat16(), text, torch.tensor(14.0), [target])
    assert dict(zip(tgt_idx.tolist(), pred_idx.tolist())) == dict(enumerate(holder.tolist()))
    cost = matcher.cost_matrix(masks[0].bfloat16(), emb[0], text, torch.tensor(14.0), target, None)
    assert cost.dtype == torch.float32


@pytest.mark.parametrize("setting, wrapped", [("1", True), ("0", False)])
def test_scheduled_trainer_wraps_its_network_when_on(monkeypatch, setting, wrapped):
    """ScheduledTrainer.initialize (every arm of the CPU regime) puts the freshly built network under the switch."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_malenia.training.schedule import ScheduledTrainer

    net = torch.nn.Conv3d(1, 2, 1)
    monkeypatch.setattr(nnUNetTrainer, "initialize", lambda self: setattr(self, "network", net))
    monkeypatch.setenv(CPU_BF16_VARIABLE, setting)
    monkeypatch.delenv("MALENIA_SEED", raising=False)
    logged = []
    trainer = ScheduledTrainer.__new__(ScheduledTrainer)     # the hook alone; no plans needed
    trainer.local_rank, trainer.device = 0, torch.device("cpu")
    trainer.print_to_log_file = lambda *args, **kwargs: logged.append(" ".join(map(str, args)))
    trainer.initialize()
    assert ("forward" in vars(net)) == wrapped and any("bf16" in line for line in logged) == wrapped
    assert net(torch.randn(1, 1, 4, 4, 4)).dtype == torch.float32
