"""Benchmark (not a test): MaleniaNet vs the plain nnU-Net network of the same plan.

Parameters, FLOPs of one training forward (torch.utils.flop_counter.FlopCounterMode; convs, matmuls, attention)
and CPU forward+backward time (median of a few repetitions, plain and Malenia interleaved so host noise hits both)
at the CPU regime's 3d_cpu plan (48^3, 16..128), the tiny 48^3 plan (32..256) and the 96^3 reference plan (6 stages,
32..320, PlainConvUNet; paper Table 9 setting). The token width follows the plan (MaleniaNet's token_dim_for).
Goal (issues 4 and 11): <= 15 % more parameters and fwd+bwd time than the plain network at every plan.

Run: python benchmarks/bench_network.py [--reps 3] [--skip-96] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2_malenia.network import build_malenia_network
from nnunetv2_malenia.network.example_plans import cpu_plan_48, reference_plan_96, tiny_plan_48
from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia

SIZES = {"num_bank_rows": 300, "text_dim": 384, "num_classes": 12}     # paper: 12 diseases, MiniLM 384-d
# The network the default trainer builds (mask pooling, the mask residual, the lesion heads, ...), not the bare class.
MALENIA = {**SIZES, **nnUNetTrainerMalenia.malenia_network_settings}


def plain_network(cm, num_classes):
    return get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                  cm.network_arch_init_kwargs_req_import, 1, num_classes + 1, allow_init=True,
                                  deep_supervision=True)


def malenia_network(pm, cm):
    net = build_malenia_network(pm, cm, 1, MALENIA["num_classes"] + 1, MALENIA)
    r = MALENIA["num_bank_rows"]
    net.set_text_bank(torch.nn.functional.normalize(torch.randn(r, MALENIA["text_dim"]), dim=1),
                      torch.arange(r) % 9)
    net.set_class_row_mask(torch.rand(MALENIA["num_classes"], r) < 0.05)
    return net


def scalar_loss(out):
    """Something that touches every output, as a training loss would."""
    if isinstance(out, dict):
        tensors = [t for v in out.values() for t in (v if isinstance(v, list) else [v])
                   if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    else:
        tensors = out if isinstance(out, (list, tuple)) else [out]
    return sum(t.float().mean() for t in tensors)


def train_step(net, x):
    net.zero_grad(set_to_none=True)
    scalar_loss(net(x)).backward()


def count_flops(net, x):
    with FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops()


def measure(name, pm, cm, batch, reps):
    torch.manual_seed(0)
    x = torch.randn(batch, 1, *cm.patch_size)
    plain, malenia = plain_network(cm, MALENIA["num_classes"]), malenia_network(pm, cm)
    plain.train(), malenia.train()
    params = [sum(p.numel() for p in n.parameters()) for n in (plain, malenia)]
    flops = [count_flops(n, x) for n in (plain, malenia)]
    times, cpu = ([], []), ([], [])
    for rep in range(reps + 1):                       # first round warms up allocator / kernels, not counted
        for i, net in enumerate((plain, malenia)):
            start, start_cpu = time.perf_counter(), time.process_time()
            train_step(net, x)
            if rep:
                times[i].append(time.perf_counter() - start)
                cpu[i].append(time.process_time() - start_cpu)
    return {"plan": name, "batch": batch, "token_dim": malenia.token_dim, "params": params, "flops": flops, "times": times, "cpu": cpu,
            "time": [statistics.median(t) for t in times], "cpu_time": [statistics.median(t) for t in cpu]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-96", action="store_true", help="tiny plan only (quick check)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core host, multi-threaded wall times of the "
                             "same step vary by 50 %%; CPU time of one thread is the steadier measure)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure("3d_cpu 48^3, 4 stages 16..128", *cpu_plan_48(), batch=2, reps=args.reps),
            measure("tiny 48^3, 4 stages 32..256", *tiny_plan_48(), batch=2, reps=args.reps)]
    if not args.skip_96:
        rows.append(measure("reference 96^3, 6 stages 32..320", *reference_plan_96(), batch=1, reps=args.reps))
    print(f"hardware: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
          f"usable cores={len(os.sched_getaffinity(0))}, torch threads={torch.get_num_threads()}; "
          f"torch {torch.__version__}; MaleniaNet as nnUNetTrainerMalenia builds it "
          f"({nnUNetTrainerMalenia.malenia_network_settings}), token_dim from the plan; "
          f"bank {SIZES['num_bank_rows']} rows x {SIZES['text_dim']}, {SIZES['num_classes']} classes; "
          f"load average at the end {os.getloadavg()[0]:.1f}; medians of {args.reps} fwd+bwd steps after one warm-up")
    print()
    print("| plan | batch | token dim | params plain | params Malenia | ratio | GFLOPs fwd plain | GFLOPs fwd Malenia | ratio "
          "| fwd+bwd wall s plain | Malenia | ratio | fwd+bwd CPU s plain | Malenia | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, f, t = r["params"], r["flops"], r["time"]
        print(f"| {r['plan']} | {r['batch']} | {r['token_dim']} | {p[0] / 1e6:.2f} M | {p[1] / 1e6:.2f} M | {p[1] / p[0]:.3f} "
              f"| {f[0] / 1e9:.1f} | {f[1] / 1e9:.1f} | {f[1] / f[0]:.3f} "
              f"| {t[0]:.2f} | {t[1]:.2f} | {t[1] / t[0]:.3f} "
              f"| {r['cpu_time'][0]:.2f} | {r['cpu_time'][1]:.2f} | {r['cpu_time'][1] / r['cpu_time'][0]:.3f} |")
    print()
    for r in rows:
        print(f"{r['plan']}: individual times plain {[round(v, 2) for v in r['times'][0]]}, "
              f"Malenia {[round(v, 2) for v in r['times'][1]]}")
    for r in rows:
        goal = r["params"][1] / r["params"][0] <= 1.15 and r["cpu_time"][1] / r["cpu_time"][0] <= 1.15
        print(f"goal <= +15 % params and fwd+bwd CPU time at {r['plan']}: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
