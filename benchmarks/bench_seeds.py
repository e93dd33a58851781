"""Training-seed spread of the quick benchmark's arms: the same data, settings and test sets, other MALENIA_SEEDs.

    python benchmarks/bench_seeds.py --work /tmp/zs_quick --out docs/results/seeds_quick --seeds 1 \\
        [--arms malenia per_class supervised]

Builds on a finished quick-profile run of bench_zero_shot.py in ``--work`` (its seed, MALENIA_SEED=0 by default, is
the first column): each asked arm is trained again with each ``--seeds`` value into ``nnUNet_results_seed<S>`` beside
the quick run's models (same phantoms, plan, fold and trainer), predicted on the same test sets and scored as the
quick run scores it (a seed's finished training and predictions in ``--work`` are re-scored, not trained again):

    malenia     Malenia trained on A: seen Dice (mean over A's diseases, candidates restricted to them) on A's
                held-out test set, zero-shot Dice over C's diseases at G = 0, class-agnostic lesion Dice on C's
                test set, C's reference lesions named right (--describe-masks)
    per_class   nnU-Net trained on A: seen Dice on A's held-out test set
    supervised  nnU-Net trained on C (the zero-shot upper bound): mean Dice over the diseases of C's test set
    agnostic    nnU-Net trained on A with its lesion labels merged (B): class-agnostic lesion Dice on C's test
                set, what Malenia's finding is compared with

Why: at 2,000 CPU iterations two trainings of one setting differ by more than most settings do (README, CPU regime
table), so a ratio of one Malenia run to one nnU-Net run says little. The table gives every seed, the mean over seeds
and Malenia's seen Dice over per-class nnU-Net's per seed and of the means. Nothing is chosen on these test sets.
seeds.md / seeds.json are rewritten after every training.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_ablations as ba  # noqa: E402  (beside this file)
import bench_zero_shot as bz  # noqa: E402
from nnunetv2_malenia.training.seeding import SEED_VARIABLE  # noqa: E402

ARMS = ("malenia", "per_class", "supervised", "agnostic")


def dataset_of(arm: str) -> int:
    return {"supervised": bz.UNSEEN_ID, "agnostic": bz.MERGED_ID}.get(arm, bz.SEEN_ID)


def test_set_of(arm: str) -> int:
    """The dataset whose imagesTs/labelsTs the arm is scored on: C's for the arms that face unseen diseases."""
    return bz.UNSEEN_ID if arm in ("supervised", "agnostic") else bz.SEEN_ID


def trainer_of(bench: "bz.Bench", arm: str) -> str:
    return bench.profile.malenia_trainer if arm == "malenia" else bench.profile.baseline_trainer


def prediction_name(arm: str, seed: Optional[int]) -> str:
    """The quick run's folder names (seed None) and this script's: malenia (+ _seen, _reference_lesions),
    per_class_seen (A's test set), supervised and agnostic (C's)."""
    base = arm if seed is None else f"{arm}_seed{seed}"
    return f"{base}_seen" if arm == "per_class" else base


def seed_bench(work: Path, seed: int) -> "bz.Bench":
    """A Bench whose trainings run with MALENIA_SEED=seed into nnUNet_results_seed<seed>."""
    bench = bz.Bench(work, bz.PROFILES["quick"], folder_suffix=f"_seed{seed}",
                     results_folder=f"nnUNet_results_seed{seed}")
    bench.env[SEED_VARIABLE] = str(seed)
    return bench


def finished(bench: "bz.Bench", arm: str, seed: int) -> bool:
    """The arm's training for this seed and its predictions are in the work folder (a run cut short, or one with
    fewer arms): they are re-scored, not trained again."""
    name, pred = prediction_name(arm, seed), bench.work / "predictions"
    # label-map folders and the test set each must cover (a prediction cut short has fewer files)
    label_maps = {name: bz.UNSEEN_ID, f"{name}_seen": bz.SEEN_ID} if arm == "malenia" else {name: test_set_of(arm)}
    model = bench.model(dataset_of(arm), trainer_of(bench, arm)) / f"fold_{bench.profile.fold}"
    complete = all(len(list((pred / folder).glob("*.nii.gz")))
                   == len(list((bench.dataset(test_set) / "labelsTs").glob("*.nii.gz")))
                   for folder, test_set in label_maps.items())
    described = arm != "malenia" or (pred / f"{name}_reference_lesions" / "reports").is_dir()
    return (model / "checkpoint_final.pth").is_file() and complete and described


def train_and_predict(bench: "bz.Bench", arm: str, seed: int, common: Sequence[str]) -> None:
    p, name = bench.profile, prediction_name(arm, seed)
    if finished(bench, arm, seed):
        print(f"--- {arm}, seed {seed}: trained and predicted before in {bench.work}; re-scored", flush=True)
        return
    if arm == "malenia":                                  # zero-shot on C, reference lesions described, seen on A
        ba.train_and_predict(bench, name, trainer_of(bench, arm), common)
        return
    dataset_id = dataset_of(arm)
    bench.measured(f"train {name}", "nnUNetv2_train", str(dataset_id), p.configuration, p.fold, "-tr",
                   trainer_of(bench, arm), "-device", p.device)
    bench.measured(f"predict {name}", "nnUNetv2_predict", "-i", str(bench.dataset(test_set_of(arm)) / "imagesTs"),
                   "-o", str(bench.work / "predictions" / name), "-d", str(dataset_id), "-c", p.configuration, "-tr",
                   trainer_of(bench, arm), *common)


def score(bench: "bz.Bench", arm: str, seed: Optional[int]) -> dict:
    """One cell: the arm's figures for one training seed (None: the quick run's own models)."""
    name = prediction_name(arm, seed)
    if arm == "malenia":
        return ba.score(bench, name)
    dataset, prediction = bench.dataset(test_set_of(arm)), bench.work / "predictions" / name
    labels = list(bz.lesion_labels(dataset))
    if arm == "agnostic":                # names no disease: scored with every lesion label merged, as the report
        agnostic = bz.class_agnostic_scores(dataset / "labelsTs", prediction, bz.lesion_labels(dataset))
        return {"lesion_dice_unseen": agnostic["lesion"]["dice"]}
    per_disease = bz.evaluate(dataset / "labelsTs", prediction, dataset)["per_disease"]
    if arm == "supervised":              # C's means leave out the diseases its test references lack, as the report
        labels = [d for d in labels if per_disease[d]["detection"]["n_reference"]]
    return {"disease_dice": ba._disease_mean(per_disease, labels),
            "per_disease": {d: per_disease[d]["dice"] for d in labels}}


# each arm's main figure in its cells (score's keys)
HEADLINE = {"malenia": "seen_dice", "per_class": "disease_dice", "supervised": "disease_dice",
            "agnostic": "lesion_dice_unseen"}


def headline(arm: str, cell: dict) -> Optional[float]:
    return cell.get(HEADLINE[arm])


def summarise(result: dict) -> dict:
    """Mean over the seeds each arm has, and Malenia's seen Dice over per-class nnU-Net's (per seed, of the means)."""
    from zero_shot_report import _mean, _ratio

    means = {arm: _mean(headline(arm, c) for c in cells.values()) for arm, cells in result["arms"].items()}
    malenia, per_class = result["arms"].get("malenia", {}), result["arms"].get("per_class", {})
    ratios = {s: _ratio(headline("malenia", malenia[s]), headline("per_class", per_class[s]))
              for s in malenia if s in per_class}
    mean_ratio = _ratio(means.get("malenia"), means.get("per_class")) if malenia and per_class else None
    return {"mean_over_seeds": means, "seen_ratio_per_seed": ratios, "seen_ratio_of_means": mean_ratio}


def markdown(result: dict) -> str:
    from zero_shot_report import _f

    s = result["summary"]
    seeds = sorted({seed for cells in result["arms"].values() for seed in cells}, key=int)
    lines = ["Training-seed spread of the quick benchmark's arms (same data, settings and test sets).", "",
             f"Generated by `{result['generated_by']}`; seed {result['seed']} is the quick run's own models, "
             "re-scored; every other seed trained by this run.", "",
             f"- Hardware: {result['hardware']['cpu']}, {result['hardware']['cores']}; GPU: none",
             "- main figure: malenia and per_class: mean Dice over A's diseases on A's held-out test set (Malenia's "
             "candidates restricted to A's diseases); supervised: mean Dice over the diseases of C's test set; "
             "agnostic: class-agnostic lesion Dice on C's test set",
             "- malenia also: zero-shot Dice over C's diseases (G = 0, twelve candidates), class-agnostic lesion "
             "Dice on C's test set (the agnostic arm's figure), C's reference lesions named right", "",
             "| arm | " + " | ".join(f"seed {t}" for t in seeds) + " | mean |",
             "|---|" + "---|" * (len(seeds) + 1)]
    for arm, cells in result["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(_f(headline(arm, cells[t])) if t in cells else "–" for t in seeds)
                     + f" | {_f(s['mean_over_seeds'][arm])} |")
    if s["seen_ratio_per_seed"]:
        lines.append("| malenia / per_class (seen) | " + " | ".join(
            _f(s["seen_ratio_per_seed"].get(t)) for t in seeds) + f" | {_f(s['seen_ratio_of_means'])} |")
    malenia = result["arms"].get("malenia", {})
    if malenia:
        lines += ["", "| Malenia, seed | zero-shot (G = 0) | lesion Dice (C test) | named |", "|---|---|---|---|"]
        for t in seeds:
            if t in malenia:
                c = malenia[t]
                lines.append(f"| {t} | {_f(c['zero_shot_dice'])} | {_f(c['lesion_dice_unseen'])} | "
                             f"{c['identification']['correct']}/{c['identification']['matched']} |")
    per = [(arm, cells) for arm, cells in result["arms"].items() if "per_disease" in next(iter(cells.values()))]
    if per:
        lines += ["", "nnU-Net arms per disease:", "", "| arm | disease | " + " | ".join(f"seed {t}" for t in seeds)
                  + " |", "|---|---|" + "---|" * len(seeds)]
        for arm, cells in per:
            for disease in next(iter(cells.values()))["per_disease"]:
                lines.append(f"| {arm} | {disease} | " + " | ".join(
                    _f(cells[t]["per_disease"].get(disease)) if t in cells else "–" for t in seeds) + " |")
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> None:
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic, write_text_atomic

    result["summary"] = summarise(result)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, out / "seeds.json")
    write_text_atomic(markdown(result), out / "seeds.md")


def check_work_folder(bench: "bz.Bench", arms: Sequence[str]) -> None:
    """The quick run's models and predictions of the asked arms must be there: they are the first column."""
    needed = [bench.model(dataset_of(a), trainer_of(bench, a)) / f"fold_{bench.profile.fold}" / "checkpoint_final.pth"
              for a in arms]
    needed += [bench.work / "predictions" / prediction_name(a, None) for a in arms]
    missing = [str(n) for n in needed if not n.exists()]
    if missing:
        sys.exit(f"{bench.work}: not the work folder of a finished `bench_zero_shot.py --profile quick` run; missing "
                 + ", ".join(missing))


def run(work: Path, out: Path, seeds: Sequence[int], arms: Sequence[str]) -> dict:
    base = bz.Bench(work, bz.PROFILES["quick"], folder_suffix="_seeds")
    check_work_folder(base, arms)
    quick_seed = base.env[SEED_VARIABLE]
    if str(quick_seed) in {str(s) for s in seeds}:
        sys.exit(f"seed {quick_seed} is the quick run's own (its models are the first column); ask for other seeds")
    common = bz.predict_args(base.profile)
    result = dict(bz.later_run_header(base, "benchmarks/bench_seeds.py --seeds " + " ".join(map(str, seeds))
                                      + " --arms " + " ".join(arms)), arms={})
    result["arms"] = {arm: {str(quick_seed): score(base, arm, None)} for arm in arms}
    write(result, out)
    for seed in seeds:
        bench = seed_bench(work, seed)
        for arm in arms:
            train_and_predict(bench, arm, seed, common)
            result["arms"][arm][str(seed)] = score(bench, arm, seed)
            write(result, out)
            print(f"--- {arm}, seed {seed}: {out / 'seeds.md'} updated", flush=True)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = bz.later_run_parser(__doc__)
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="training seeds besides the quick run's")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    args = parser.parse_args(argv)
    run(args.work, args.out, args.seeds, args.arms)


if __name__ == "__main__":
    main()
