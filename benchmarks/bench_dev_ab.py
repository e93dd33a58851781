"""Seeded A/B of Malenia trainer variants on dev phantoms: how the CPU regime table's settings were chosen.

    python benchmarks/bench_dev_ab.py --work /tmp/dev_ab --trainers nnUNetTrainerMalenia_CPUDemo \\
        nnUNetTrainerMalenia_AppearanceSwap_CPUDemo [--seen-penalty 0 1.25] [--location-maps] [--out dev_ab.md]

Every trainer is trained on the quick benchmark's seen training set (phantom seed 0, same geometry, plan and
MALENIA_SEED as bench_zero_shot.py's Malenia arm, fold 0) and scored on two dev sets that are no benchmark's test set:

    unseen dev   16 cases of the unseen split, phantom seed 5 (41 lesions)
    seen dev     16 cases of the seen split, phantom seed 7

with every knowledge-table disease a candidate (generalised zero-shot), at each ``--seen-penalty`` G:

    finding      class-agnostic lesion Dice on the unseen dev set
    unseen       mean Dice over the unseen diseases (zero-shot)
    seen         mean Dice over the seen diseases
    named        reference lesions of the unseen dev set named right when shown to the model (--describe-masks)
    loc/dens/enh attribute precision of those lesions' reports for location, density and enhancement
    seen loc     location precision of the seen dev set's reference lesions, described the same way: what the
                 tokens read on the diseases they were trained on, the ceiling for the unseen ones

With ``--location-maps`` every prediction reads each lesion's location from the set's organ maps (the phantoms'
locationsTs, as ``nnUNetv2_malenia_predict --location-maps``), so the table scores what the tokens read besides
location.

Choose settings here, never on the test sets. ``--test-sets`` scores the same figures on the quick benchmark's test
sets (A's seen test set, C's unseen one, same seeds and geometry as bench_zero_shot.py): once, for a setting and a G
already chosen here. Data and finished trainings in ``--work`` are reused, so a second
variant costs one training (about 16-31 min on 2 CPU cores, host-dependent) plus about a minute of scoring per G.

At this budget two trainings of one setting differ as much as settings do (README, CPU regime table), so compare
settings over several training seeds: ``MALENIA_SEED=1 python benchmarks/bench_dev_ab.py --work /tmp/dev_ab_seed1
...``. The seed is a column of the table; a finished model is reused only by a run of the seed it was trained with,
so each seed needs its own ``--work`` (nnUNet_raw and nnUNet_preprocessed can be copied from another).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_zero_shot as bz  # noqa: E402  (beside this file)
from nnunetv2_malenia.network.malenia_net import NAMING_RULES  # noqa: E402
from nnunetv2_malenia.training.seeding import SEED_VARIABLE  # noqa: E402

DEV_UNSEEN_ID, DEV_SEEN_ID = 921, 922
DEV_SETS = {DEV_UNSEEN_ID: ("DevUnseen", "unseen", 5), DEV_SEEN_ID: ("DevSeen", "seen", 7)}
DEV_CASES = 16
NAMED_ASPECTS = ("location", "density", "enhancement_status")


def bench_for(work: Path) -> "bz.Bench":
    for dataset_id, (name, _, _) in DEV_SETS.items():
        bz.NAMES[dataset_id] = name
    return bz.Bench(work, bz.PROFILES["quick"])


def write_data(bench: "bz.Bench") -> None:
    """The quick benchmark's seen training set (same seed and geometry), the two dev sets, bank, plan, preprocessing."""
    p = bench.profile
    bz.write_phantom_set(bench, bz.SEEN_ID, "seen", p.train_cases, p.seen_test_cases, bz.SEEDS["phantoms_seen"],
                         "seen")
    # nnU-Net's dataset layout wants training cases; the dev sets are their test cases (imagesTs/labelsTs)
    for dataset_id, (name, split, seed) in DEV_SETS.items():
        bz.write_phantom_set(bench, dataset_id, split, 5, DEV_CASES, seed, name.lower())
    bench.step("text bank of the seen training set", "nnUNetv2_malenia_build_bank", str(bz.SEEN_ID))
    bz.plan_and_preprocess(bench, "seen training set", (bz.SEEN_ID,))


def training_seed(bench: "bz.Bench") -> int:
    """MALENIA_SEED of this run's trainings (demo_env makes it 0 when unset)."""
    return bz.run_seeds(bench.env)["training"]


def trained_seed(fold: Path) -> Optional[int]:
    """The MALENIA_SEED a finished training ran with, from the trainer's line in nnU-Net's training logs (the last
    log that has one: a continued training writes a second log); None when no log names one."""
    seeds = [m.group(1) for log in sorted(fold.glob("training_log_*.txt"))
             for m in re.finditer(rf"{SEED_VARIABLE}=(\d+):", log.read_text(errors="replace"))]
    return int(seeds[-1]) if seeds else None


def train(bench: "bz.Bench", trainer: str) -> None:
    fold = bench.model(bz.SEEN_ID, trainer) / "fold_0"
    if (fold / "checkpoint_final.pth").is_file():
        found, wanted = trained_seed(fold), training_seed(bench)
        if found != wanted:     # a row labelled with one seed must not score a model of another
            trained = "without a seed in its training log" if found is None else f"with {SEED_VARIABLE}={found}"
            sys.exit(f"{fold}: trained {trained}, this run asks for {wanted}; give each training "
                     f"seed its own --work (copy nnUNet_raw and nnUNet_preprocessed to skip writing the data again)")
        print(f"{trainer}: trained model found ({SEED_VARIABLE}={found}), reused", flush=True)
        return
    bench.step(f"train {trainer}", "nnUNetv2_train", str(bz.SEEN_ID), bench.profile.configuration, "0", "-tr",
               trainer, "-device", bench.profile.device)


def scored_sets(test_sets: bool) -> Tuple[int, int, str]:
    """(unseen dataset id, seen dataset id, predictions folder name): the dev sets, or with ``test_sets`` the quick
    benchmark's C and A test sets (bench_zero_shot.py's seeds and geometry, so the same cases)."""
    if test_sets:
        return bz.UNSEEN_ID, bz.SEEN_ID, "test_predictions"
    return DEV_UNSEEN_ID, DEV_SEEN_ID, "predictions"


def score(bench: "bz.Bench", trainer: str, penalty: float, test_sets: bool = False,
          naming_rule: Optional[str] = None, location_maps: bool = False) -> dict:
    """One trainer at one G: the four predictions, then the figures of the module docstring. ``naming_rule``
    overrides the model's own (``--naming-rule``; None: the rule it was trained with); ``location_maps`` reads each
    lesion's location from the set's organ maps (predict's ``--location-maps SET/locationsTs``)."""
    unseen_id, seen_id, folder = scored_sets(test_sets)
    unseen, seen = bench.dataset(unseen_id), bench.dataset(seen_id)
    out = bench.work / folder / (f"{trainer}_G{penalty:g}" + (f"_{naming_rule}" if naming_rule else "")
                                 + ("_located" if location_maps else ""))
    predict = ["nnUNetv2_malenia_predict", "-m", str(bench.model(bz.SEEN_ID, trainer)), "--seen-penalty",
               f"{penalty:g}", *(["--naming-rule", naming_rule] if naming_rule else [])]
    maps = lambda dataset: ["--location-maps", str(dataset / "locationsTs")] if location_maps else []
    # maps name whole lesions from their reports, so those predictions keep them
    no_reports = [] if location_maps else ["--no-reports"]
    common = bz.predict_args(bench.profile)
    setting = f"{trainer} G={penalty:g}{' with maps' if location_maps else ''}"
    bench.step(f"{setting} unseen dev", *predict, *maps(unseen), "-i", str(unseen / "imagesTs"), "-o",
               str(out / "unseen"), *no_reports, *common)
    bench.step(f"{setting} seen dev", *predict, *maps(seen), "-i", str(seen / "imagesTs"), "-o",
               str(out / "seen"), *no_reports, *common)
    bench.step(f"{setting} describe unseen dev", *predict, *maps(unseen), "-i", str(unseen / "imagesTs"), "-o",
               str(out / "described"), "-f", "0", "-device", bench.profile.device, "--describe-masks",
               str(unseen / "labelsTs"))
    bench.step(f"{setting} describe seen dev", *predict, *maps(seen), "-i", str(seen / "imagesTs"), "-o",
               str(out / "described_seen"), "-f", "0", "-device", bench.profile.device, "--describe-masks",
               str(seen / "labelsTs"))
    naming = bz.evaluate_naming(unseen, out / "described" / "reports")
    seen_naming = bz.evaluate_naming(seen, out / "described_seen" / "reports")
    agnostic = bz.class_agnostic_scores(unseen / "labelsTs", out / "unseen", bz.lesion_labels(unseen))
    return {"trainer": trainer, "seed": training_seed(bench), "seen_penalty": penalty, "naming_rule": naming_rule,
            "location_maps": location_maps,
            "finding": agnostic["lesion"]["dice"],
            "unseen": bz.evaluate(unseen / "labelsTs", out / "unseen", unseen)["summary"]["all"]["dice"],
            "seen": bz.evaluate(seen / "labelsTs", out / "seen", seen)["summary"]["all"]["dice"],
            "named": naming["disease_identification"]["correct"],
            "lesions": naming["disease_identification"]["matched"],
            **{aspect: naming["per_aspect"][aspect]["precision"] for aspect in NAMED_ASPECTS},
            "seen_location": seen_naming["per_aspect"]["location"]["precision"]}


def markdown(rows: Sequence[dict]) -> str:
    head = ("| trainer | seed | G | rule | finding | unseen | seen | named | location | density | enhancement "
            "| seen location |\n" + "|---" * 12 + "|\n")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    return head + "".join(
        f"| {r['trainer']} | {r.get('seed', '–')} | {r['seen_penalty']:g}{' + maps' * bool(r.get('location_maps'))} "
        f"| {r.get('naming_rule') or 'model'} | "
        f"{fmt(r['finding'])} | "
        f"{fmt(r['unseen'])} | {fmt(r['seen'])} | {r['named']}/{r['lesions']} | "
        + " | ".join(fmt(r[a]) for a in NAMED_ASPECTS) + f" | {fmt(r.get('seen_location'))} |\n" for r in rows)


def run(work: Path, trainers: Sequence[str], penalties: Sequence[float], test_sets: bool = False,
        naming_rule: Optional[str] = None, location_maps: bool = False) -> List[dict]:
    bench = bench_for(work)
    if not (bench.work / "nnUNet_preprocessed" / bench.dataset(bz.SEEN_ID).name).is_dir():
        write_data(bench)
    if test_sets and not (bench.dataset(bz.UNSEEN_ID) / "labelsTs").is_dir():
        bz.write_unseen_phantoms(bench)
    rows = []
    for trainer in trainers:
        train(bench, trainer)
        rows += [score(bench, trainer, g, test_sets, naming_rule, location_maps) for g in penalties]
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder (data and models are reused)")
    parser.add_argument("--trainers", nargs="+", required=True, help="Malenia trainer classes (CPU regime)")
    parser.add_argument("--seen-penalty", type=float, nargs="+", default=[0.0], help="G values to score")
    parser.add_argument("--naming-rule", choices=NAMING_RULES,
                        help="score with this naming rule instead of the model's own (predict's --naming-rule)")
    parser.add_argument("--location-maps", action="store_true",
                        help="read each lesion's location from the sets' organ maps (locationsTs; predict's "
                             "--location-maps), G marked '+ maps' in the table")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and FILE.json here")
    parser.add_argument("--test-sets", action="store_true",
                        help="score on the quick benchmark's test sets (A's seen, C's unseen) instead of the dev sets: "
                             "once, for a setting and G already chosen on the dev sets")
    args = parser.parse_args(argv)
    rows = run(args.work, args.trainers, args.seen_penalty, args.test_sets, args.naming_rule, args.location_maps)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
