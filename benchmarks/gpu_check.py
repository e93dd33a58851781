"""The prepared GPU check (issue 12 item 6): Malenia and supervised nnU-Net, each trained for a fixed wall-clock
budget on larger phantoms, zero-shot and naming evaluated, in the zero-shot benchmark's report format.

    python benchmarks/gpu_check.py --device cuda --budget-s 90 --work /tmp/gc --out $OUT/gpu_check

Meant for one device lease (one H200, 15 minutes of device time, start-up included): the whole run should end
within 8 minutes. It is bench_zero_shot.py's machinery (datasets A and C, phantoms, planning, the Malenia
predict/report/describe steps, scoring, report) with two arms and a clock instead of an epoch count:

    malenia     nnUNetTrainerMalenia_TimeBudget on A (seen split), zero-shot on C's test set, lesion reports, and
                C's reference lesions named (--describe-masks)
    supervised  nnUNetTrainer_TimeBudget on C (unseen split): the upper bound; also the cost baseline

Each arm's epoch loop runs for --budget-s seconds (MALENIA_TIME_BUDGET_S, see
nnunetv2_malenia/training/time_budget.py: epochs of 25 iterations, AdamW 1e-3, warm-up and cosine decay measured
against the budget). Set-up, nnU-Net's final validation, prediction and scoring come on top: budget the run as
2 x budget + the rest, which the report's wall-time table lists step by step.

--device cuda: 96^3 phantoms at 3.5 mm (lesion radius >= 3 voxels, 60 training cases per dataset, 16 unseen test
cases), nnU-Net's 3d_fullres plan, torch.compile off (nnUNet_compile=f unless set: compiling would spend the budget),
augmentation in worker processes. Also fwd+bwd time and peak GPU memory of both networks at the run's plan.
--device cpu: the smoke profile's tiny phantoms (32^3, 5 training cases) on the 3d_cpu plan with epochs of two
iterations: the code path only, for CI (tests/test_gpu_check.py); its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_zero_shot as bz  # noqa: E402  (beside this file)

PROFILES = {
    "cuda": bz.Profile(train_cases=60, seen_test_cases=1, unseen_train_cases=60, unseen_test_cases=16, size=96,
                       spacing=3.5, malenia_trainer="nnUNetTrainerMalenia_TimeBudget",
                       baseline_trainer="nnUNetTrainer_TimeBudget", device="cuda", per_class_arm=False, verify=False,
                       workers=8, min_lesion_radius=3.0, configuration="3d_fullres",
                       description="GPU check: 96^3 phantoms at 3.5 mm, 3d_fullres, a wall-clock budget per arm"),
    "cpu": replace(bz.PROFILES["smoke"], malenia_trainer="nnUNetTrainerMalenia_TimeBudget_2iters",
                   baseline_trainer="nnUNetTrainer_TimeBudget_2iters",
                   description="GPU check's CPU path: tiny phantoms, epochs of two iterations; the numbers mean "
                               "nothing"),
}
DEFAULT_BUDGET_S = 90.0


def device_environment(device: str) -> None:
    """Settings for the nnU-Net children (read by Bench through os.environ); values already set are kept."""
    if device == "cuda":
        os.environ.setdefault("nnUNet_compile", "f")
        # demo_env's default (0, augmentation in the main process) suits 2 CPU cores, not a GPU waiting for batches
        os.environ.setdefault("nnUNet_n_proc_DA", str(max(2, min(12, len(os.sched_getaffinity(0)) - 4))))


def budget_summary(model: Path, fold: str, budget_s: float) -> dict:
    """What the clock did: epochs run, the epoch loop's summed time against the budget, the learning rates."""
    import torch

    from nnunetv2_malenia.training.time_budget import epoch_durations

    log = torch.load(model / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu",
                     weights_only=False)["logging"]
    lrs = [float(v) for v in log["lrs"]]
    return {"budget_s": budget_s, "epochs": len(lrs), "epoch_loop_s": sum(epoch_durations(log)),
            "peak_lr": max(lrs), "last_lr": lrs[-1]}


def budget_notes(budget_s: float, budgets: dict, iterations: dict) -> list:
    rows = [f"| {arm} | `{b['trainer']}` | {b['budget_s']:.0f} | {b['epochs']} | {b['epochs'] * iterations[arm]} | "
            f"{b['epoch_loop_s']:.1f} | {b['peak_lr']:.2e} | {b['last_lr']:.2e} |" for arm, b in budgets.items()]
    return [f"Each arm trained for a wall-clock budget of {budget_s:.0f} s (`MALENIA_TIME_BUDGET_S`): the epoch loop "
            "stops when one more epoch would overrun it; AdamW's warm-up and cosine decay run against the budget "
            "(`nnunetv2_malenia/training/time_budget.py`). Two arms, no class-agnostic one: epoch and predict ratios "
            "below are against the supervised arm.", "",
            "| arm | trainer | budget s | epochs | iterations | epoch loop s | peak lr | last lr |",
            "|---|---|---|---|---|---|---|---|", *rows]


def run(device: str, budget_s: float, work: Path, out: Path) -> dict:
    started = time.time()
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device here; use --device cpu for the code path")
    p = PROFILES[device]
    device_environment(device)
    bz.fresh_work_folder(work, "benchmarks/gpu_check.py")
    bench = bz.Bench(work, p)
    bench.env["MALENIA_TIME_BUDGET_S"] = str(budget_s)
    A, C = bench.dataset(bz.SEEN_ID), bench.dataset(bz.UNSEEN_ID)
    bench.timed("phantoms A (seen) and C (unseen)", bz.write_phantoms, bench)
    bench.step("text bank of A", "nnUNetv2_malenia_build_bank", str(bz.SEEN_ID))
    bz.plan_and_preprocess(bench, "A, C", (bz.SEEN_ID, bz.UNSEEN_ID))

    arms = {"malenia": (bz.SEEN_ID, p.malenia_trainer), "supervised": (bz.UNSEEN_ID, p.baseline_trainer)}
    for arm, (dataset_id, trainer) in arms.items():
        bench.measured(f"train {arm}", "nnUNetv2_train", str(dataset_id), p.configuration, p.fold, "-tr", trainer,
                       "-device", p.device)
    common = ["-f", p.fold, "-device", p.device, "-npp", str(p.workers), "-nps", str(p.workers),
              *([] if p.tta else ["--disable_tta"])]
    pred = work / "predictions"
    bz.predict_zero_shot(bench, "malenia", p.malenia_trainer, common)
    bench.measured("predict supervised on C test", "nnUNetv2_predict", "-i", str(C / "imagesTs"), "-o",
                   str(pred / "supervised"), "-d", str(bz.UNSEEN_ID), "-c", p.configuration, "-tr",
                   p.baseline_trainer, *common)

    def score():
        ev = {arm: bz.evaluate(C / "labelsTs", pred / arm, C, reports=arm == "malenia") for arm in arms}
        agnostic = {arm: bz.class_agnostic_scores(C / "labelsTs", pred / arm, bz.lesion_labels(C)) for arm in arms}
        naming = {"malenia": bz.evaluate_naming(C, pred / "malenia_reference_lesions" / "reports")}
        return ev, agnostic, naming

    evaluations, agnostic, naming = bench.timed("evaluate", score)
    epochs = {arm: bz.training_log(bench.model(d, t), p.fold) for arm, (d, t) in arms.items()}
    budgets = {arm: dict(budget_summary(bench.model(d, t), p.fold, budget_s), trainer=t)
               for arm, (d, t) in arms.items()}
    gpu = bench.timed("GPU train steps in-process", bz.gpu_step_cost, bench.model(bz.SEEN_ID, p.malenia_trainer),
                      p.configuration) if device == "cuda" else None

    from zero_shot_report import assemble, write_report

    command = f"benchmarks/gpu_check.py --device {device} --budget-s {budget_s:g}"
    result = assemble(profile_name=f"gpu_check_{device}", profile=asdict(p), arms=arms, names=bz.NAMES,
                      C_labels=bz.lesion_labels(C), A_labels=bz.lesion_labels(A), evaluations=evaluations,
                      agnostic=agnostic, seen={}, naming=naming, epochs=epochs, gpu=gpu, rss=bench.rss,
                      times=bench.times, size96=None, hardware=bz.hardware(), versions=bz.versions(),
                      seeds=bz.run_seeds(bench.env),
                      nsd_tolerance_mm=bz.NSD_TOLERANCE_MM, total_s=time.time() - started, work=str(work),
                      baseline="supervised", generated_by=command,
                      notes=budget_notes(budget_s, budgets, {a: epochs[a]["iterations_per_epoch"] for a in arms}))
    result["time_budget"] = budgets
    write_report(result, out)
    total = time.time() - started
    print(f"\nwrote {out / 'benchmark.md'} and {out / 'benchmark.json'}\ntotal run time {total:.0f} s "
          f"({total / 60:.1f} min; training budget {budget_s:.0f} s per arm)", flush=True)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=sorted(PROFILES), default="cuda")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"wall-clock seconds of each arm's epoch loop (default {DEFAULT_BUDGET_S:g})")
    parser.add_argument("--work", required=True, help="work folder (deleted and rewritten)")
    parser.add_argument("--out", required=True, help="report folder (benchmark.md, benchmark.json, *.png)")
    args = parser.parse_args(argv)
    if not args.budget_s > 0:
        parser.error("--budget-s must be > 0")
    run(args.device, args.budget_s, Path(args.work).resolve(), Path(args.out).resolve())


if __name__ == "__main__":
    main()
