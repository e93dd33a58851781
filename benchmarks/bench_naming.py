"""Naming rules and seen penalties on reference lesions, one trained model, one forward pass per case.

    python benchmarks/bench_naming.py -m RESULTS/Dataset911_X/nnUNetTrainerMalenia_CPUDemo__nnUNetPlans__3d_cpu \\
        --set unseen RAW/Dataset921_DevUnseen/imagesTs RAW/Dataset921_DevUnseen/labelsTs \\
        --set seen RAW/Dataset922_DevSeen/imagesTs RAW/Dataset922_DevSeen/labelsTs \\
        --rules best_match likelihood --seen-penalty 0 0.75 1.25 [-f 0] [--out naming.md]

What `nnUNetv2_malenia_predict --describe-masks` scores as "disease identification", for every naming rule and seen
penalty G at once: each reference lesion (a connected component of a label map in the set's labels folder) is shown
to the model, every knowledge-table disease is a candidate, and the lesion is named by its top-ranked disease. The
rule and G change only the tokens' class logits, never what the network computes from the image, so each case is
run through the network once and re-scored for every (rule, G). A row gives, per set, the reference lesions named
right, and the named share per true disease.

With ``--location-maps`` each lesion's location is read from the set's organ maps (the folder beside LABELS whose
name has "labels" replaced by "locations", e.g. locationsTs, with its locations.json) and the diseases re-ranked by
it, as ``nnUNetv2_malenia_predict --location-maps`` does (floor ``--location-floor``).

Choose a rule and G here on held-out cases of your own (for the phantoms: the dev sets of bench_dev_ab.py), never on
a test set. The truth of a lesion is its label's name in the dataset.json beside the labels folder.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import SimpleITK as sitk
import torch

from nnunetv2_malenia.attributes.schema import read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems
from nnunetv2_malenia.evaluation.lesions import component_index_map, lesion_components
from nnunetv2_malenia.inference.lesion_description import RegionScores, region_scores
from nnunetv2_malenia.inference.location_map import (DEFAULT_LOCATION_FLOOR, LocationMaps, rank_by_location,
                                                     read_location_maps)
from nnunetv2_malenia.inference.predict import given_masks, input_cases
from nnunetv2_malenia.network.malenia_net import NAMING_RULES, seen_penalty_logits
from nnunetv2_malenia.utils.atomic_io import write_json_atomic, write_text_atomic


def reference_lesions(images: Path, labels: Path, location_names: Optional[Sequence[str]] = None
                      ) -> List[Tuple[List[str], Path, Dict[int, str], Optional[Tuple[LocationMaps, str]]]]:
    """Per case: (image files, label map, label value -> disease name, (the set's organ maps, case) or None), checked
    as ``--describe-masks`` checks them (every case needs a label map on its image's grid); the names come from the
    dataset.json beside LABELS. ``location_names``: the names an organ map may use (None: no organ maps)."""
    dataset_file = labels.parent / "dataset.json"
    dataset = read_json(dataset_file, "dataset.json of the label maps")
    ending = dataset.get("file_ending")
    if not isinstance(ending, str) or not isinstance(dataset.get("labels"), dict):
        raise MaleniaInputError(Problem(str(dataset_file), "file_ending" if not isinstance(ending, str) else "labels",
                                        "missing or malformed"))
    names = {int(v): k for k, v in dataset["labels"].items() if int(v) > 0}
    cases = input_cases(str(images), ending)
    masks = given_masks(cases, str(labels), ending)
    maps = None if location_names is None else read_location_maps(
        str(labels.parent / labels.name.replace("labels", "locations")), cases, ending, location_names)
    return [(files, masks[case], names, None if maps is None else (maps, case))
            for case, files in sorted(cases.items())]


def scored_case(reporter, network, files: List[str], label_file: Path, names: Dict[int, str],
                settings: Sequence[Tuple[str, float]], seen: torch.Tensor,
                location: Optional[Tuple[LocationMaps, str]] = None, floor: float = DEFAULT_LOCATION_FLOOR
                ) -> Dict[Tuple[str, float], List[Tuple[str, str]]]:
    """(rule, G) -> [(true disease, named disease)] for the case's reference lesions; with ``location`` (the set's
    organ maps and this case) the diseases are re-ranked by the case's organ map."""
    seg_img = sitk.ReadImage(str(label_file))
    seg = sitk.GetArrayFromImage(seg_img)                                        # [Z, Y, X]
    components = lesion_components(seg)
    if not components:
        return {s: [] for s in settings}
    unnamed = sorted({c.label for c in components} - set(names))
    if unnamed:
        raise MaleniaInputError(Problem(str(label_file), "labels", f"values {unnamed} have no name in the "
                                                                   f"dataset.json beside it"))
    ids = component_index_map(seg.shape, components)                            # lesion id + 1, 0 = none
    diseases = reporter.classes.diseases
    scores: Dict[Tuple[str, float], Dict[int, RegionScores]] = {s: {} for s in settings}
    for outputs, window_ids, values in reporter.window_outputs(files, ids, seg_img):
        embeddings, text = outputs["block_embeddings"][-1], outputs["text_embeddings"]   # [1, Q, E], [R+1, E]
        by_rule = {rule: network.class_logits(embeddings, text, rule=rule) for rule, _ in settings}   # [1, Q, K+1]
        for rule, penalty in settings:
            logits = by_rule[rule] if penalty == 0 else seen_penalty_logits(by_rule[rule], seen, penalty)
            named = dict(outputs, class_logits=logits)                                        # as the CLI's at G
            for value in values:
                a, d = region_scores(named, window_ids == value, reporter.rows)
                scores[(rule, penalty)].setdefault(value, RegionScores(reporter.rows)).add(a, d)
    where = None if location is None else location[0].read(location[1])                  # [Z, Y, X]

    def top(scores_of_lesion: RegionScores, comp) -> str:
        ranked = scores_of_lesion.ranked_diseases(diseases)
        if where is not None:
            ranked, _ = rank_by_location(ranked, where[comp.slices][comp.mask], location[0].names,
                                         reporter.predictor.knowledge_table, floor)
        return ranked[0][0]

    return {setting: [(names[c.label], top(per_lesion[c.id + 1], c)) for c in components if c.id + 1 in per_lesion]
            for setting, per_lesion in scores.items()}


def load_predictor(model: Path, folds):
    from nnunetv2_malenia.inference.lesion_report import LesionReporter
    from nnunetv2_malenia.inference.predictor import MaleniaPredictor
    from nnunetv2_malenia.trainer_path import SHIM_FOLDER

    os.environ.setdefault("nnUNet_extTrainer", str(SHIM_FOLDER))
    predictor = MaleniaPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                 perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), folds, "checkpoint_final.pth")
    predictor.prepare_zero_shot(device="cpu")
    network = predictor._bare_network()          # its own seen penalty stays 0: G is applied per setting below
    trained = set(predictor.block.classes.values())
    seen = torch.tensor([d in trained for d in predictor.classes.diseases], dtype=torch.bool)   # [K]
    return LesionReporter(predictor), network, seen


def table(rows: List[dict], set_names: Sequence[str]) -> str:
    head = "| rule | G | " + " | ".join(f"{s}: named" for s in set_names) + " |"
    lines = [head, "|" + "---|" * (2 + len(set_names))]
    for r in rows:
        cells = [f"{r['sets'][s]['correct']}/{r['sets'][s]['lesions']}" for s in set_names]
        lines.append(f"| {r['rule']} | {r['seen_penalty']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def misnamed(named_as: Dict[str, int]) -> str:
    """' (as liver cyst 3, gallstone 1)': what the lesions named wrong were named, most frequent first."""
    if not named_as:
        return ""
    ordered = sorted(named_as.items(), key=lambda kv: (-kv[1], kv[0]))
    return " (as " + ", ".join(f"{d} {n}" for d, n in ordered) + ")"


def per_disease(rows: List[dict], set_names: Sequence[str]) -> str:
    lines = []
    for r in rows:
        for s in set_names:
            counts = sorted(r["sets"][s]["per_disease"].items())
            parts = ", ".join(f"{d} {v['correct']}/{v['lesions']}" + misnamed(v["named_as"])
                              for d, v in counts)
            lines.append(f"- {r['rule']}, G={r['seen_penalty']:g}, {s}: {parts}")
    return "\n".join(lines)


def settings_of(args) -> List[Tuple[str, float]]:
    """Every (naming rule, G) pair the command line asks for."""
    return [(rule, float(g)) for rule in args.rules for g in args.seen_penalty]


def collect(args) -> Dict[str, Dict[Tuple[str, float], list]]:
    """set name -> (rule, G) -> [(true disease, named disease)]; every set is checked before the model loads."""
    location_names = None
    if args.location_maps:
        from nnunetv2_malenia.attributes import load_knowledge_table
        from nnunetv2_malenia.attributes.schema import load_vocabulary

        organs = {d.organ for d in load_knowledge_table().diseases.values()}
        location_names = list(load_vocabulary().values["location"]) + sorted(organs)
    sets = [(name, reference_lesions(Path(images), Path(labels), location_names)) for name, images, labels in args.set]
    folds = [f if f == "all" else int(f) for f in args.f]
    reporter, network, seen = load_predictor(args.m, folds)
    settings = settings_of(args)
    pairs = {}
    for name, cases in sets:
        collected = defaultdict(list)
        for files, label_file, names, location in cases:
            for setting, named in scored_case(reporter, network, files, label_file, names, settings, seen, location,
                                              args.location_floor).items():
                collected[setting].extend(named)
        pairs[name] = collected
    return pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", type=Path, required=True, help="trained model folder (TRAINER__PLANS__CONFIGURATION)")
    parser.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "IMAGES", "LABELS"),
                        help="a named set of cases: images folder and label maps (dataset.json beside LABELS)")
    parser.add_argument("--rules", nargs="+", choices=NAMING_RULES, default=list(NAMING_RULES))
    parser.add_argument("--seen-penalty", type=float, nargs="+", default=[0.0])
    parser.add_argument("--location-maps", action="store_true",
                        help="re-rank with each set's organ maps (LABELS with 'labels' -> 'locations', "
                             "e.g. locationsTs)")
    parser.add_argument("--location-floor", type=float, default=DEFAULT_LOCATION_FLOOR)
    parser.add_argument("-f", nargs="+", default=["0"], help="folds (default 0)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and FILE.json here")
    args = parser.parse_args(argv)
    try:
        pairs = collect(args)
    except MaleniaInputError as e:
        exit_with_problems(e)
    rows = []
    for rule, penalty in settings_of(args):
        sets = {}
        for name, collected in pairs.items():
            named = collected[(rule, penalty)]
            by_disease: Dict[str, Counter] = defaultdict(Counter)
            wrong: Dict[str, Counter] = defaultdict(Counter)
            for truth, guess in named:
                by_disease[truth]["lesions"] += 1
                by_disease[truth]["correct"] += int(truth == guess)
                if truth != guess:
                    wrong[truth][guess] += 1
            sets[name] = {"correct": sum(t == g for t, g in named), "lesions": len(named),
                          "per_disease": {d: {**c, "named_as": dict(wrong[d])} for d, c in by_disease.items()}}
        rows.append({"rule": rule, "seen_penalty": penalty, "sets": sets})
    set_names = [s[0] for s in args.set]
    where = f"; location from organ maps, floor {args.location_floor:g}" if args.location_maps else ""
    text = f"Model: `{args.m}` (folds {args.f}{where})\n\n{table(rows, set_names)}\n\n{per_disease(rows, set_names)}\n"
    print(text)
    if args.out:
        write_text_atomic(text, args.out)
        write_json_atomic({"model": str(args.m), "folds": args.f, "rows": rows}, args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
