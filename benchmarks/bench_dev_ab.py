"""Seeded A/B of Malenia trainer variants on dev phantoms: how the CPU regime table's settings were chosen.

    python benchmarks/bench_dev_ab.py --work /tmp/dev_ab --trainers nnUNetTrainerMalenia_CPUDemo \\
        nnUNetTrainerMalenia_AppearanceSwap_CPUDemo [--seen-penalty 0 1.25] [--out dev_ab.md]

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

Choose settings here, never on the test sets. Data and finished trainings in ``--work`` are reused, so a second
variant costs one training (about 16-31 min on 2 CPU cores, host-dependent) plus about a minute of scoring per G.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_zero_shot as bz  # noqa: E402  (beside this file)

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
    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.phantoms.dataset import split_diseases, write_phantom_dataset
    from nnunetv2_malenia.phantoms.generator import PhantomConfig

    p, table = bench.profile, load_knowledge_table()
    sets = [(bz.SEEN_ID, "seen", p.train_cases, p.seen_test_cases, bz.SEEDS["phantoms_seen"], "seen")]
    # nnU-Net's dataset layout wants training cases; the dev sets are their test cases (imagesTs/labelsTs)
    sets += [(i, split, 5, DEV_CASES, seed, name.lower()) for i, (name, split, seed) in DEV_SETS.items()]
    for dataset_id, split, cases, test_cases, seed, prefix in sets:
        labelled, _ = split_diseases(table, split, False)
        config = PhantomConfig(size=(p.size,) * 3, spacing=(p.spacing,) * 3, labelled=labelled, seed=seed,
                               min_lesion_radius=p.min_lesion_radius, lesions_per_case=p.lesions_per_case)
        write_phantom_dataset(bench.dataset(dataset_id), table, config, cases, test_cases,
                              num_processes=p.workers, case_prefix=prefix)
    bench.step("text bank of the seen training set", "nnUNetv2_malenia_build_bank", str(bz.SEEN_ID))
    bz.plan_and_preprocess(bench, "seen training set", (bz.SEEN_ID,))


def train(bench: "bz.Bench", trainer: str) -> None:
    if (bench.model(bz.SEEN_ID, trainer) / "fold_0" / "checkpoint_final.pth").is_file():
        print(f"{trainer}: trained model found, reused", flush=True)
        return
    bench.step(f"train {trainer}", "nnUNetv2_train", str(bz.SEEN_ID), bench.profile.configuration, "0", "-tr",
               trainer, "-device", bench.profile.device)


def score(bench: "bz.Bench", trainer: str, penalty: float) -> dict:
    """One trainer at one G: the three predictions, then the figures of the module docstring."""
    unseen, seen = bench.dataset(DEV_UNSEEN_ID), bench.dataset(DEV_SEEN_ID)
    out = bench.work / "predictions" / f"{trainer}_G{penalty:g}"
    predict = ["nnUNetv2_malenia_predict", "-m", str(bench.model(bz.SEEN_ID, trainer)), "--seen-penalty",
               f"{penalty:g}"]
    common = bz.predict_args(bench.profile)
    bench.step(f"{trainer} G={penalty:g} unseen dev", *predict, "-i", str(unseen / "imagesTs"), "-o",
               str(out / "unseen"), "--no-reports", *common)
    bench.step(f"{trainer} G={penalty:g} seen dev", *predict, "-i", str(seen / "imagesTs"), "-o",
               str(out / "seen"), "--no-reports", *common)
    bench.step(f"{trainer} G={penalty:g} describe unseen dev", *predict, "-i", str(unseen / "imagesTs"), "-o",
               str(out / "described"), "-f", "0", "-device", bench.profile.device, "--describe-masks",
               str(unseen / "labelsTs"))
    bench.step(f"{trainer} G={penalty:g} describe seen dev", *predict, "-i", str(seen / "imagesTs"), "-o",
               str(out / "described_seen"), "-f", "0", "-device", bench.profile.device, "--describe-masks",
               str(seen / "labelsTs"))
    naming = bz.evaluate_naming(unseen, out / "described" / "reports")
    seen_naming = bz.evaluate_naming(seen, out / "described_seen" / "reports")
    agnostic = bz.class_agnostic_scores(unseen / "labelsTs", out / "unseen", bz.lesion_labels(unseen))
    return {"trainer": trainer, "seen_penalty": penalty,
            "finding": agnostic["lesion"]["dice"],
            "unseen": bz.evaluate(unseen / "labelsTs", out / "unseen", unseen)["summary"]["all"]["dice"],
            "seen": bz.evaluate(seen / "labelsTs", out / "seen", seen)["summary"]["all"]["dice"],
            "named": naming["disease_identification"]["correct"],
            "lesions": naming["disease_identification"]["matched"],
            **{aspect: naming["per_aspect"][aspect]["precision"] for aspect in NAMED_ASPECTS},
            "seen_location": seen_naming["per_aspect"]["location"]["precision"]}


def markdown(rows: Sequence[dict]) -> str:
    head = ("| trainer | G | finding | unseen | seen | named | location | density | enhancement | seen location |\n"
            + "|---" * 10 + "|\n")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    return head + "".join(
        f"| {r['trainer']} | {r['seen_penalty']:g} | {fmt(r['finding'])} | {fmt(r['unseen'])} | {fmt(r['seen'])} | "
        f"{r['named']}/{r['lesions']} | " + " | ".join(fmt(r[a]) for a in NAMED_ASPECTS)
        + f" | {fmt(r.get('seen_location'))} |\n" for r in rows)


def run(work: Path, trainers: Sequence[str], penalties: Sequence[float]) -> List[dict]:
    bench = bench_for(work)
    if not (bench.work / "nnUNet_preprocessed" / bench.dataset(bz.SEEN_ID).name).is_dir():
        write_data(bench)
    rows = []
    for trainer in trainers:
        train(bench, trainer)
        rows += [score(bench, trainer, g) for g in penalties]
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder (data and models are reused)")
    parser.add_argument("--trainers", nargs="+", required=True, help="Malenia trainer classes (CPU regime)")
    parser.add_argument("--seen-penalty", type=float, nargs="+", default=[0.0], help="G values to score")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and FILE.json here")
    args = parser.parse_args(argv)
    rows = run(args.work, args.trainers, args.seen_penalty)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
