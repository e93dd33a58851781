"""What twice the iterations buy on the CPU regime's data: each arm at 2,000 and at 4,000 iterations (issue 11).

    python benchmarks/bench_budget.py --work /tmp/zs_quick --out docs/results/budget_quick [--arms ...]

Builds on a finished quick-profile run of bench_zero_shot.py in ``--work``: its phantoms, plans and its 2,000-
iteration arms (``_CPUDemo``) are reused and re-scored, and each arm asked for is trained again with ``_CPULong``
(the same AdamW 1e-3, warm-up then cosine, stretched over 160 epochs of 25 iterations instead of 80), on the same
data, fold and training seed (MALENIA_SEED), predicted on the same test sets and scored the same way:

    supervised  nnU-Net trained on C (the zero-shot upper bound): mean Dice over the diseases of C's test set,
                and class-agnostic lesion Dice (all labels merged)
    per_class   nnU-Net trained on A: mean Dice over A's diseases on A's held-out test set
    malenia     Malenia trained on A: seen Dice as per_class, zero-shot Dice over C's diseases (twelve
                candidates), class-agnostic lesion Dice on C's test set, naming of C's reference lesions

Each arm's validation pseudo-Dice (nnU-Net's EMA) is drawn against iterations for both budgets (budget.png): a
curve still rising at 2,000 says the budget limits that arm, a flat one says it does not. The test sets are only
scored, never used for a choice. One run per row. budget.md / budget.json are rewritten after every arm.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_ablations as ba  # noqa: E402  (beside this file)
import bench_zero_shot as bz  # noqa: E402

ARMS = ("supervised", "malenia", "per_class")
BUDGETS = {"CPUDemo": 2000, "CPULong": 4000}        # trainer suffix -> training iterations


def trainer_of(arm: str, suffix: str) -> str:
    return f"nnUNetTrainerMalenia_{suffix}" if arm == "malenia" else f"nnUNetTrainer_{suffix}"


def dataset_of(arm: str) -> int:
    return bz.UNSEEN_ID if arm == "supervised" else bz.SEEN_ID


def prediction_name(arm: str, suffix: str) -> str:
    """Where the quick run put the arm's predictions (2,000 iterations), and where this script puts the longer run's;
    for per_class that is A's test set (``*_seen``), as the quick run names it."""
    base = arm if suffix == "CPUDemo" else f"{arm}_long"
    return f"{base}_seen" if arm == "per_class" else base


def train_and_predict(bench: "bz.Bench", arm: str, common: Sequence[str]) -> None:
    p, pred = bench.profile, bench.work / "predictions"
    trainer = trainer_of(arm, "CPULong")
    if arm == "malenia":                              # zero-shot on C, reference lesions described, seen on A
        ba.train_and_predict(bench, prediction_name(arm, "CPULong"), trainer, common)
        return
    dataset_id = dataset_of(arm)
    test = bench.dataset(dataset_id) / "imagesTs"          # each nnU-Net arm is tested on its own dataset
    bench.measured(f"train {arm}_long", "nnUNetv2_train", str(dataset_id), p.configuration, p.fold, "-tr", trainer,
                   "-device", p.device)
    bench.measured(f"predict {arm}_long", "nnUNetv2_predict", "-i", str(test), "-o",
                   str(pred / prediction_name(arm, "CPULong")), "-d", str(dataset_id), "-c", p.configuration,
                   "-tr", trainer, *common)


def score(bench: "bz.Bench", arm: str, suffix: str) -> dict:
    """One cell of the table: the arm's figures at one budget, plus its training curve and epoch-loop time."""
    A, C, pred = bench.dataset(bz.SEEN_ID), bench.dataset(bz.UNSEEN_ID), bench.work / "predictions"
    log = bz.training_log(bench.model(dataset_of(arm), trainer_of(arm, suffix)), bench.profile.fold)
    curve = log["curves"]["ema_fg_dice"]
    row = {"iterations": BUDGETS[suffix], "train_s": float(sum(log["epoch_s"])), "final_ema_pseudo_dice": curve[-1],
           "ema_pseudo_dice": curve, "iterations_per_epoch": log["iterations_per_epoch"]}
    name = prediction_name(arm, suffix)
    if arm == "malenia":
        row.update(ba.score(bench, name))
    elif arm == "supervised":
        agnostic = bz.class_agnostic_scores(C / "labelsTs", pred / name, bz.lesion_labels(C))
        present = [d for d, n in agnostic["reference_cases_with"].items() if n]
        per_disease = bz.evaluate(C / "labelsTs", pred / name, C)["per_disease"]
        row.update(disease_dice=ba._disease_mean(per_disease, present), lesion_dice_unseen=agnostic["lesion"]["dice"],
                   per_disease={d: per_disease[d]["dice"] for d in present})
    else:
        per_disease = bz.evaluate(A / "labelsTs", pred / name, A)["per_disease"]
        row.update(seen_dice=ba._disease_mean(per_disease, list(bz.lesion_labels(A))),
                   per_disease={d: per_disease[d]["dice"] for d in bz.lesion_labels(A)})
    return row


def markdown(result: dict) -> str:
    from zero_shot_report import _f

    lines = ["What twice the iterations buy on the CPU regime (quick profile's data).", "",
             f"Generated by `{result['generated_by']}`; every number below comes from that run and the quick run it "
             "builds on (its 2,000-iteration models, re-scored).", "",
             f"- Hardware: {result['hardware']['cpu']}, {result['hardware']['cores']}; GPU: none",
             f"- Training seed (MALENIA_SEED): {result['seed']}; one run per row; both budgets share data, plan, "
             "fold, optimizer (AdamW 1e-3, warm-up then cosine over the whole run) and test sets",
             "- disease Dice: mean over the diseases of the arm's test set (supervised: C's; per_class and Malenia "
             "seen: A's held-out); lesion Dice: class-agnostic on C's test set; EMA: nnU-Net's validation "
             "pseudo-Dice at the last epoch (fold 0)", "",
             "| arm | iterations | disease Dice | zero-shot | lesion Dice (C test) | named | final EMA "
             "| epochs s |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, cells in result["arms"].items():
        for cell in cells.values():
            dice = cell.get("disease_dice", cell.get("seen_dice"))
            named = f"{cell['identification']['correct']}/{cell['identification']['matched']}" \
                if "identification" in cell else "–"
            lines.append(f"| {arm} | {cell['iterations']:,} | {_f(dice)} | {_f(cell.get('zero_shot_dice'))} | "
                         f"{_f(cell.get('lesion_dice_unseen'))} | {named} | {_f(cell['final_ema_pseudo_dice'])} | "
                         f"{cell['train_s']:.0f} |")
    lines += ["", "Per disease:", "", "| arm | disease | " + " | ".join(f"{n:,}" for n in BUDGETS.values()) + " |",
              "|---|---|" + "---|" * len(BUDGETS)]
    for arm, cells in result["arms"].items():
        first = next(iter(cells.values()))
        if "per_disease" not in first:                    # Malenia: its disease figures are in the table above
            continue
        for disease in first["per_disease"]:
            lines.append(f"| {arm} | {disease} | " + " | ".join(_f(c["per_disease"].get(disease)) for c in cells.values())
                         + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> None:
    """EMA validation pseudo-Dice against iterations, one panel per arm, one line per budget."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    arms = list(result["arms"])
    fig, axes = plt.subplots(1, len(arms), figsize=(4.5 * len(arms), 3.6), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        for suffix, cell in result["arms"][arm].items():
            step = cell["iterations_per_epoch"]
            ax.plot([step * (i + 1) for i in range(len(cell["ema_pseudo_dice"]))], cell["ema_pseudo_dice"],
                    label=f"{cell['iterations']:,} iterations (_{suffix})")
        ax.set(title=arm, xlabel="iteration", ylim=(0, 1))
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("validation pseudo-Dice (EMA)")
    fig.tight_layout()
    tmp = out / ".budget.png.tmp"
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(out / "budget.png")


def write(result: dict, out: Path) -> None:
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, out / "budget.json")
    write_text_atomic(markdown(result), out / "budget.md")
    plot(result, out)


def check_work_folder(bench: "bz.Bench", arms: Sequence[str]) -> None:
    """The quick run's 2,000-iteration models of the asked arms must be there: the longer runs are read against them."""
    needed = [bench.model(dataset_of(a), trainer_of(a, "CPUDemo")) / f"fold_{bench.profile.fold}"
              / "checkpoint_final.pth" for a in arms]
    needed += [bench.work / "predictions" / prediction_name(a, "CPUDemo") for a in arms]
    missing = [str(n) for n in needed if not n.exists()]
    if missing:
        sys.exit(f"{bench.work}: not the work folder of a finished `bench_zero_shot.py --profile quick` run; missing "
                 + ", ".join(missing))


def run(work: Path, out: Path, arms: Sequence[str]) -> dict:
    bench = bz.Bench(work, bz.PROFILES["quick"], folder_suffix="_budget")
    check_work_folder(bench, arms)
    common = bz.predict_args(bench.profile)
    result = dict(bz.later_run_header(bench, "benchmarks/bench_budget.py --arms " + " ".join(arms)), arms={})
    for arm in arms:
        train_and_predict(bench, arm, common)
        result["arms"][arm] = {suffix: score(bench, arm, suffix) for suffix in BUDGETS}
        write(result, out)
        print(f"--- {arm}: {out / 'budget.md'} updated", flush=True)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = bz.later_run_parser(__doc__)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    args = parser.parse_args(argv)
    run(args.work, args.out, args.arms)


if __name__ == "__main__":
    main()
