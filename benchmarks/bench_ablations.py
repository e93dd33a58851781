"""The paper's ablations (Tables 3-4) on the CPU regime, one table (issue 12 item 4).

    python benchmarks/bench_ablations.py --work /tmp/zs_quick --out docs/results/ablations_quick [--variants ...]

Builds on a finished quick-profile run of bench_zero_shot.py in ``--work``: its phantoms (A seen, C unseen), plans
and its default Malenia arm are reused, so every row shares data, plan, schedule (``_CPUDemo``: 2,000 iterations,
AdamW 1e-3) and training seed (MALENIA_SEED, 0 unless set) with the default and differs in the one setting its
name says. Each variant ``nnUNetTrainerMalenia_<V>_CPUDemo`` is trained on A (fold 0), predicted zero-shot on C's
test set with lesion reports, shown C's reference lesions (``--describe-masks``) and predicted on A's held-out test
set, then scored as bench_zero_shot.py scores its Malenia arm:

    finding     class-agnostic lesion Dice on C's test set (all labels merged)
    zero-shot   mean Dice over the unseen diseases in C's test references (twelve candidates)
    seen        mean Dice over A's diseases on A's held-out test set (candidates: A's diseases)
    naming      disease identification of C's reference lesions, and attribute precision of location, density
                and enhancement on them (masks given: naming apart from finding)

One run per row: a row's difference from the default is that setting at this seed and budget, not a paper-scale
effect. ablations.md / ablations.json are rewritten after every variant, so an interrupted run keeps what finished;
``--resume`` then keeps those rows (same profile and seed only) and trains the variants still missing.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_zero_shot as bz  # noqa: E402  (beside this file)

# what each row changes, for the table (paper Tables 3-4 first, then this implementation's additions switched off,
# then settings that are off by default switched on)
WHAT = {
    "SingleScaleAlignment": "MP-NCE on the last decoder block only (Table 3)",
    "SinglePositive": "one positive per lesion: its eight descriptions as one paragraph (Table 3)",
    "NoFusion": "CMKI without deep fusion (Table 4, no DF)",
    "MaskBranchOnly": "final masks from the mask-token branch only (Table 4, MT)",
    "TextBranchOnly": "final masks from the text-embedding branch only (Table 4, TE)",
    "UnusedRowsAsNegatives": "descriptions only unseen diseases use stay negatives (issue 12 B undone)",
    "NoOtherLesionLoss": "without loss_others",
    "NoLesionLoss": "without the decoder supervision loss_lesion",
    "NoMaskPooling": "token embeddings without mask pooling",
    "NoMaskResidual": "fused mask without the last block's mask added",
    "NoMaskedAttention": "token decoder without masked attention (every block attends over the whole volume)",
    "ContextLocation": "location/organ rows matched against the 2-voxel shell around the mask (off by default)",
    "AppearanceSwap": "half the training lesions repainted with another disease's intensities and density texts "
                      "(off by default)",
    "AspectNegatives": "MP-NCE negatives of a description's own aspect only (off by default)",
}
PAPER_VARIANTS = ("SingleScaleAlignment", "SinglePositive", "NoFusion", "MaskBranchOnly", "TextBranchOnly")
NAMED_ASPECTS = ("location", "density", "enhancement_status")


def trainer_of(variant: str) -> str:
    return f"nnUNetTrainerMalenia_{variant}_CPUDemo"


def check_work_folder(bench: "bz.Bench") -> None:
    """The quick run's default arm and predictions must be there: the rows are only comparable to it."""
    p = bench.profile
    needed = [bench.model(bz.SEEN_ID, p.malenia_trainer) / f"fold_{p.fold}" / "checkpoint_final.pth"]
    needed += [bench.work / "predictions" / name for name in ("malenia", "malenia_seen", "malenia_reference_lesions")]
    missing = [str(n) for n in needed if not n.exists()]
    if missing:
        sys.exit(f"{bench.work}: not the work folder of a finished `bench_zero_shot.py --profile quick` run; missing "
                 + ", ".join(missing))


def train_and_predict(bench: "bz.Bench", arm: str, trainer: str, common: Sequence[str]) -> None:
    p, A, pred = bench.profile, bench.dataset(bz.SEEN_ID), bench.work / "predictions"
    bench.measured(f"train {arm}", "nnUNetv2_train", str(bz.SEEN_ID), p.configuration, p.fold, "-tr", trainer,
                   "-device", p.device)
    bz.predict_zero_shot(bench, arm, trainer, common)
    bench.measured(f"predict {arm} on A test", "nnUNetv2_malenia_predict", "-i", str(A / "imagesTs"), "-o",
                   str(pred / f"{arm}_seen"), "-m", str(bench.model(bz.SEEN_ID, trainer)),
                   "--diseases", *bz.lesion_labels(A), "--no-reports", *common)


def epoch_seconds(bench: "bz.Bench", trainer: str) -> float:
    """The epoch loop's time from nnU-Net's checkpoint log (set-up and final validation left out), for every row."""
    return float(sum(bz.training_log(bench.model(bz.SEEN_ID, trainer), bench.profile.fold)["epoch_s"]))


def _disease_mean(per_disease: Dict[str, dict], diseases: Sequence[str]) -> Optional[float]:
    from zero_shot_report import _mean

    return _mean(per_disease[d]["dice"] for d in diseases)


def score(bench: "bz.Bench", arm: str) -> dict:
    """One row: finding, zero-shot and seen Dice, naming of the reference lesions (module docstring)."""
    A, C, pred = bench.dataset(bz.SEEN_ID), bench.dataset(bz.UNSEEN_ID), bench.work / "predictions"
    agnostic = bz.class_agnostic_scores(C / "labelsTs", pred / arm, bz.lesion_labels(C))
    present = [d for d, n in agnostic["reference_cases_with"].items() if n]
    zero_shot = bz.evaluate(C / "labelsTs", pred / arm, C)
    seen = bz.evaluate(A / "labelsTs", pred / f"{arm}_seen", A)
    naming = bz.evaluate_naming(C, pred / f"{arm}_reference_lesions" / "reports")
    return {"lesion_dice_unseen": agnostic["lesion"]["dice"],
            "zero_shot_dice": _disease_mean(zero_shot["per_disease"], present),
            "seen_dice": _disease_mean(seen["per_disease"], list(bz.lesion_labels(A))),
            "identification": naming["disease_identification"],
            "precision": {a: naming["per_aspect"][a]["precision"] for a in NAMED_ASPECTS}}


def markdown(result: dict) -> str:
    from zero_shot_report import _f

    lines = [f"Ablations on the CPU regime ({result['profile']} profile's data).", "",
             f"Generated by `{result['generated_by']}`; every number below comes from that run"
             + (f" and, for {', '.join(result['resumed_rows'])}, from the earlier run it resumed (same work folder, "
                "data, plan and seed)." if result.get("resumed_rows") else "."), "",
             f"- Hardware: {result['hardware']['cpu']}, {result['hardware']['cores']}; GPU: none",
             f"- Training seed (MALENIA_SEED): {result['seed']}; one run per row, same data, plan and schedule",
             "- finding: class-agnostic lesion Dice on the unseen test set; zero-shot: mean Dice over its diseases "
             "(twelve candidates); seen: mean Dice on the held-out seen test set; naming: the model shown the "
             "unseen reference lesions (`--describe-masks`): disease identified, attribute precision", "",
             "| variant | changes | finding | zero-shot | seen | identified | location | density | enhancement "
             "| epochs s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        ident = row["identification"]
        lines.append(f"| {name} | {row['what']} | {_f(row['lesion_dice_unseen'])} | {_f(row['zero_shot_dice'])} | "
                     f"{_f(row['seen_dice'])} | {ident['correct']}/{ident['matched']} | "
                     + " | ".join(_f(row["precision"][a], 2) for a in NAMED_ASPECTS)
                     + f" | {row['train_s']:.0f} |")
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> None:
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, out / "ablations.json")
    write_text_atomic(markdown(result), out / "ablations.md")


def finished_rows(out: Path, profile_name: str, seed: Optional[str]) -> Dict[str, dict]:
    """Rows of an earlier (interrupted) run in ``out`` that a resumed run may keep: same profile and seed only,
    since a row is only comparable to a default trained on the same data with the same seed."""
    path = out / "ablations.json"
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text())
        rows, same = earlier["rows"], (earlier["profile"], earlier["seed"]) == (profile_name, seed)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        sys.exit(f"{path}: cannot resume from it ({type(e).__name__}: {e}); remove it or drop --resume")
    if not same:
        sys.exit(f"{path}: profile/seed {earlier['profile']}/{earlier['seed']} differ from this run's "
                 f"{profile_name}/{seed}; its rows are not comparable, remove it or drop --resume")
    return {name: row for name, row in rows.items() if name != "default"}


def run(work: Path, out: Path, variants: Sequence[str], profile_name: str = "quick", resume: bool = False) -> dict:
    bench = bz.Bench(work, bz.PROFILES[profile_name], folder_suffix="_ablations")
    check_work_folder(bench)
    p, common = bench.profile, bz.predict_args(bench.profile)
    result = bz.later_run_header(bench, "benchmarks/bench_ablations.py --variants " + " ".join(variants)
                                 + (" --resume" if resume else ""))
    kept = finished_rows(out, profile_name, result["seed"]) if resume else {}
    result.update(rows={}, resumed_rows=[v for v in variants if v in kept])
    result["rows"]["default"] = dict(score(bench, "malenia"), what=f"`{p.malenia_trainer}`",
                                     train_s=epoch_seconds(bench, p.malenia_trainer))
    # kept rows first, in the order the variants were asked for, so a resumed table reads like an uninterrupted one
    result["rows"].update({v: kept[v] for v in variants if v in kept})
    write(result, out)
    for variant in (v for v in variants if v not in kept):
        arm, started = variant, time.time()
        train_and_predict(bench, arm, trainer_of(variant), common)
        result["rows"][variant] = dict(score(bench, arm), what=WHAT[variant],
                                       train_s=epoch_seconds(bench, trainer_of(variant)))
        write(result, out)
        print(f"--- {variant}: {(time.time() - started) / 60:.1f} min; {out / 'ablations.md'} updated", flush=True)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = bz.later_run_parser(__doc__)
    parser.add_argument("--variants", nargs="+", choices=sorted(WHAT), default=list(PAPER_VARIANTS))
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows an interrupted run left in OUT/ablations.json (same profile and seed) "
                             "and train only the variants still missing")
    args = parser.parse_args(argv)
    run(args.work, args.out, args.variants, resume=args.resume)


if __name__ == "__main__":
    main()
