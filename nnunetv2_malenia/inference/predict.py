"""``nnUNetv2_malenia_predict``: zero-shot lesion segmentation and per-lesion reports with a trained Malenia model.

    nnUNetv2_malenia_predict -i IMAGES -o OUT -m MODEL_FOLDER [-f 0 1 2 3 4] [--knowledge-table MY_TABLE.json]
    nnUNetv2_malenia_predict -i IMAGES -o OUT -d 901 -c 3d_fullres [-tr nnUNetTrainerMalenia] [--overlay]
                             [--naming-rule {best_match,aspect_vote}] [--seen-penalty G]

Writes OUT/CASE.nii.gz label maps whose labels are the knowledge table's diseases (OUT/dataset.json names them),
OUT/reports/CASE.json per case, with --overlay OUT/overlays/CASE_lesionN.png, and OUT/malenia_prediction.json: the
model folder and the classes it was trained on, which nnUNetv2_malenia_evaluate reads for its seen/unseen split.

    nnUNetv2_malenia_predict -i IMAGES -o OUT -m MODEL_FOLDER --describe-masks MASKS

segments nothing: it reports the lesions of the given masks (MASKS/CASE.nii.gz, on each image's grid; every
connected component of every nonzero label is a lesion), each named by the model's top-ranked disease.

    nnUNetv2_malenia_predict -i IMAGES -o OUT -m MODEL_FOLDER --location-maps LOCATIONS

reads each lesion's location from an organ map per case (LOCATIONS/CASE.nii.gz and LOCATIONS/locations.json,
see inference/location_map.py) instead of from the tokens, names each lesion (connected component) with it, and
writes the label maps with every lesion labelled by that name.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from nnunetv2_malenia.attributes.schema import read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.inference.location_map import DEFAULT_LOCATION_FLOOR
from nnunetv2_malenia.network.malenia_net import NAMING_RULES
from nnunetv2_malenia.utils.atomic_io import write_json_atomic
from nnunetv2_malenia.utils.cli import folder_problems, make_parser
from nnunetv2_malenia.trainer_path import SHIM_FOLDER

REPORTS_SUBFOLDER = "reports"
OVERLAYS_SUBFOLDER = "overlays"
# What made this folder's label maps. nnU-Net's own OUT/plans.json holds every configuration of the plans and
# OUT/dataset.json the zero-shot classes, so neither says which classes the model was trained on.
PREDICTION_RECORD = "malenia_prediction.json"
RECORD_FORMAT = 1


def finite_float(text: str) -> float:
    """argparse type of --seen-penalty: a finite number (argparse turns the errors into a usage error)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = make_parser("nnUNetv2_malenia_predict", __doc__)
    p.add_argument("-i", required=True, help="input folder of images named like nnU-Net's imagesTs (CASE_0000.nii.gz)")
    p.add_argument("-o", required=True, help="output folder")
    model = p.add_argument_group("model (either -m or -d/-c)")
    model.add_argument("-m", help="trained model folder (.../nnUNetTrainerMalenia__nnUNetPlans__3d_fullres)")
    model.add_argument("-d", help="dataset name or id, as nnUNetv2_predict")
    model.add_argument("-c", default="3d_fullres", help="configuration (default 3d_fullres)")
    model.add_argument("-tr", default="nnUNetTrainerMalenia", help="trainer (default nnUNetTrainerMalenia)")
    model.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("-f", nargs="+", default=None, help="folds (default: every fold with a checkpoint)")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name in each fold_X folder")
    p.add_argument("--knowledge-table", action="append", default=[], metavar="FILE",
                   help="extra knowledge table(s) merged over the model's (new diseases are segmented zero-shot)")
    p.add_argument("--diseases", nargs="+", help="restrict the output classes to these diseases")
    p.add_argument("--overlay", action="store_true", help="write a PNG of each lesion's central slice")
    p.add_argument("--no-reports", action="store_true", help="label maps only")
    p.add_argument("--naming-rule", choices=NAMING_RULES, default=None,
                   help="how a lesion token names its disease, for the label maps and the reports: best_match (mean "
                        "over aspects of the best similarity among the disease's accepted rows) or aspect_vote (the "
                        "paper: per aspect the best row, then the share of aspects whose row the disease accepts) or "
                        "likelihood (per aspect a softmax over its rows, then the sum over aspects of the log of the "
                        "mean probability of the disease's accepted values); lesion vs background is the same under "
                        "all three. Default: the rule the model was trained with")
    p.add_argument("--seen-penalty", type=finite_float, default=0.0, metavar="G",
                   help="lower the logits of the diseases the model was trained on by G when naming a lesion "
                        "(calibrated stacking for generalised zero-shot prediction; lesion vs background is "
                        "unchanged). A negative G raises them instead, for a model biased towards the unseen "
                        "diseases (single-positive alignment). Choose G on held-out cases of seen and unseen "
                        "diseases, never on the test set. Default 0")
    p.add_argument("--describe-masks", metavar="MASKS_DIR",
                   help="segment nothing; report the lesions of these masks (CASE.nii.gz per input case) instead")
    p.add_argument("--location-maps", metavar="LOCATIONS_DIR",
                   help="organ maps, one per input case (CASE.nii.gz on the image's grid) and locations.json "
                        "(location key or organ -> label value): each lesion's location is read from its map, and "
                        "the diseases that do not occur there keep only --location-floor of their score; every "
                        "lesion of a label map is then labelled with the disease its report names")
    p.add_argument("--location-floor", type=finite_float, default=DEFAULT_LOCATION_FLOOR, metavar="F",
                   help=f"with --location-maps: the share of its score a disease keeps where none of the lesion "
                        f"lies in its organ (default {DEFAULT_LOCATION_FLOOR})")
    p.add_argument("-step_size", type=float, default=0.5, help="sliding-window step as a fraction of the patch")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring (faster, slightly worse)")
    p.add_argument("--save_probabilities", action="store_true", help="also write the class probabilities (.npz)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases whose output exists")
    p.add_argument("-npp", type=int, default=3, help="preprocessing processes")
    p.add_argument("-nps", type=int, default=3, help="segmentation export processes")
    p.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"), help="device to predict on")
    return p


def _device(name: str) -> torch.device:
    if name == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    elif name == "cuda":
        # as nnUNetv2_predict: the GPU does the work, more CPU threads only slow preprocessing workers down
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    return torch.device(name)


def _model_folder(args) -> str:
    if args.m:
        folder = Path(args.m)
    elif args.d:
        from nnunetv2.utilities.file_path_utilities import get_output_folder

        folder = Path(get_output_folder(args.d, args.tr, args.p, args.c))
    else:
        raise MaleniaInputError("give the model folder with -m, or -d (and -c/-tr/-p) as for nnUNetv2_predict")
    for required in ("plans.json", "dataset.json"):
        if not (folder / required).is_file():
            raise MaleniaInputError(f"{folder / required}: not found; is {folder} a trained model folder?")
    raise_if_problems(model_problems(folder, args.f, args.chk))
    return str(folder)


def model_problems(folder: Path, folds: Optional[Sequence[str]], checkpoint: str) -> List[Problem]:
    """What nnU-Net's predictor would crash on (a JSON traceback, ``UnboundLocalError`` for a fold without its
    checkpoint) or load wrongly (a model not trained with nnUNetTrainerMalenia), found before it loads anything."""
    problems: List[Problem] = []
    for check in (lambda: model_block(Path(folder)),
                  lambda: read_json(Path(folder) / "dataset.json", "model dataset.json")):
        try:
            check()
        except MaleniaInputError as e:
            problems += e.problems
    problems += _checkpoint_problems(folder, folds, checkpoint)
    return problems


def model_block(folder: Path):
    """The Malenia block of a trained model folder's plans.json, in the configuration the folder's name
    TRAINER__PLANS__CONFIGURATION names (the first one when the folder was renamed); MaleniaInputError naming
    plans.json and the field otherwise."""
    from nnunetv2_malenia.training.plans_block import read_block

    plans_file = Path(folder) / "plans.json"
    plans = read_json(plans_file, "model plans")
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or not configurations:
        raise MaleniaInputError(Problem(str(plans_file), "configurations",
                                        "missing or empty: not an nnU-Net plans file"))
    parts = Path(folder).name.split("__")
    if len(parts) == 3:
        name = parts[2]
    else:
        # a renamed or copied model folder: the configuration the trainer wrote its Malenia block into
        with_block = [n for n, c in configurations.items() if isinstance(c, dict) and "malenia" in c]
        name = with_block[0] if len(with_block) == 1 else next(iter(configurations))
    if name not in configurations:
        raise MaleniaInputError(Problem(str(plans_file), "configurations", f"no configuration {name!r} (the model "
                                        f"folder's name says so); it has {', '.join(configurations)}"))
    try:
        return read_block(_resolved(configurations, name), str(plans_file))
    except MaleniaInputError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:      # e.g. a class value that is not a number
        raise MaleniaInputError(Problem(str(plans_file), f"configurations.{name}",
                                        f"cannot be read ({type(e).__name__}: {e})"))


def _resolved(configurations: dict, name: str, depth: int = 0) -> dict:
    """A configuration with its ``inherits_from`` chain applied, as nnU-Net's PlansManager does (its
    ConfigurationManager would also rebuild the architecture, which this check does not need)."""
    own = configurations[name]
    parent = own.get("inherits_from")
    if parent is None or depth > len(configurations):
        return own
    return {**_resolved(configurations, parent, depth + 1), **own}


def _checkpoint_problems(folder: Path, folds: Optional[Sequence[str]], checkpoint: str) -> List[Problem]:
    present = sorted(str(p.relative_to(folder)) for p in folder.glob("fold_*/checkpoint*.pth"))
    hint = f"; this model folder has {', '.join(present)} (choose with -f and -chk)" if present else \
        "; this model folder has no checkpoint at all: is training finished?"
    if folds:
        return [Problem(str(folder / f"fold_{f}" / checkpoint), "-f/-chk", "not found" + hint)
                for f in folds if not (folder / f"fold_{f}" / checkpoint).is_file()]
    # nnU-Net's auto-detection (fold_all excluded) finds nothing and then fails with an UnboundLocalError
    if not [p for p in folder.glob(f"fold_*/{checkpoint}") if p.parent.name != "fold_all"]:
        return [Problem(str(folder), "-f/-chk", f"no fold_X/{checkpoint}" + hint)]
    return []


def input_cases(folder: str, file_ending: str) -> dict:
    """case id -> image files (all channels), the way nnU-Net lists an imagesTs folder."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder, \
        get_identifiers_from_splitted_dataset_folder

    ids = list(get_identifiers_from_splitted_dataset_folder(folder, file_ending))
    if not ids:
        raise MaleniaInputError(f"{folder}: no images ending in {file_ending} (expected CASE_0000{file_ending})")
    return dict(zip(ids, create_lists_from_splitted_dataset_folder(folder, file_ending, ids)))


def image_geometry(path: str) -> dict:
    """Size, spacing, origin and direction from the file header (as evaluate.read_label_map reports them)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return {"size": tuple(int(v) for v in reader.GetSize()), "spacing": reader.GetSpacing(),
            "origin": reader.GetOrigin(), "direction": reader.GetDirection()}


def given_label_maps(cases: dict, folder: str, file_ending: str, option: str,
                     check: Optional[Callable[[Path, np.ndarray], List[Problem]]] = None) -> Dict[str, Path]:
    """case -> FOLDER/CASE{file_ending}, a label map on the grid of the case's first image, for every input case
    (what ``option`` reads); every problem (missing, unreadable, misaligned, and what ``check(file, array)`` finds)
    is raised at once, before any work."""
    from nnunetv2_malenia.evaluation.evaluate import geometry_problems, read_label_map

    problems: List[Problem] = []
    maps = {}
    for case, files in sorted(cases.items()):
        file = Path(folder) / f"{case}{file_ending}"
        if not file.is_file():
            problems.append(Problem(str(file), "", f"not found: {option} needs a map for every input case ({case})"))
            continue
        array, geometry = read_label_map(str(file), problems)
        if geometry is not None:
            problems += geometry_problems(files[0], image_geometry(files[0]), str(file), geometry)
        if array is not None and check is not None:
            problems += check(file, array)
        maps[case] = file
    raise_if_problems(problems)
    return maps


def given_masks(cases: dict, folder: str, file_ending: str) -> Dict[str, Path]:
    """case -> the mask --describe-masks reports on; every case needs one, on the grid of its first image."""
    return given_label_maps(cases, folder, file_ending, "--describe-masks")


def prediction_record(model_folder: str, trained_classes: Mapping[int, str], diseases: Sequence[str],
                      folds: Optional[Sequence], checkpoint: str, knowledge_tables: Sequence[str],
                      described_masks: Optional[str], naming_rule: Optional[str] = None,
                      seen_penalty: float = 0.0, location_maps: Optional[str] = None,
                      location_floor: Optional[float] = None) -> dict:
    """The content of OUT/malenia_prediction.json (read back by :func:`read_trained_classes`)."""
    from nnunetv2_malenia import __version__

    return {"format_version": RECORD_FORMAT, "written_by": f"nnUNetv2_malenia_predict {__version__}",
            "model_folder": str(Path(model_folder).resolve()), "folds": list(folds) if folds else None,
            "checkpoint": checkpoint,
            # label value -> name of the training dataset: the seen classes ("classes" of the plans' Malenia block)
            "trained_classes": {str(v): n for v, n in sorted(trained_classes.items())},
            "predicted_diseases": list(diseases), "knowledge_tables": [str(t) for t in knowledge_tables],
            "described_masks": str(described_masks) if described_masks else None,
            # which rule named the lesions (--naming-rule, else the model's): evaluations of two rules stay apart
            "naming_rule": naming_rule,
            # --seen-penalty: how much the trained diseases' logits were lowered when naming (0: not at all)
            "seen_penalty": float(seen_penalty),
            # --location-maps: lesions named with the location read from these organ maps (None: by the tokens)
            "location_maps": str(location_maps) if location_maps else None,
            "location_floor": float(location_floor) if location_maps else None}


def read_trained_classes(record_file: Path | str) -> Dict[int, str]:
    """Label value -> name of the classes the model was trained on, from a prediction record; MaleniaInputError
    naming the file and the field when it is not one this package wrote."""
    record_file = str(record_file)
    raw = read_json(record_file, "prediction record")
    if raw.get("format_version") != RECORD_FORMAT:
        raise MaleniaInputError(Problem(record_file, "format_version", f"unsupported {raw.get('format_version')!r}; "
                                                                      f"this package reads {RECORD_FORMAT}"))
    classes = raw.get("trained_classes")
    if not isinstance(classes, dict) or not classes:
        raise MaleniaInputError(Problem(record_file, "trained_classes", "missing, empty or not an object of label "
                                                                       "value -> name"))
    problems = [Problem(record_file, f"trained_classes.{v}", f"expected label value (integer) -> name, got "
                                                             f"{v!r}: {n!r}")
                for v, n in classes.items() if not (str(v).isdigit() and isinstance(n, str) and n)]
    raise_if_problems(problems)
    return {int(v): n for v, n in classes.items()}


def predict(args) -> List[dict]:
    from nnunetv2_malenia.inference.lesion_report import LesionReporter
    from nnunetv2_malenia.inference.predictor import MaleniaPredictor

    # Inputs first (cheap, and a mistake should not wait for the model to load).
    model_folder = _model_folder(args)
    file_ending = read_json(Path(model_folder) / "dataset.json", "model dataset.json")["file_ending"]
    raise_if_problems(folder_problems(args.o, "-o"))     # not after the whole prediction
    cases = input_cases(args.i, file_ending)
    masks = given_masks(cases, args.describe_masks, file_ending) if args.describe_masks else None
    if args.location_maps and args.no_reports:
        raise MaleniaInputError(Problem("", "--location-maps", "names each lesion from its report; it cannot be "
                                                               "combined with --no-reports"))
    if not 0.0 <= args.location_floor <= 1.0:
        raise MaleniaInputError(Problem("", "--location-floor", f"must lie in [0, 1], got {args.location_floor}"))

    # nnU-Net resolves the checkpoint's trainer by name: make the shim folder visible without asking the user.
    os.environ.setdefault("nnUNet_extTrainer", str(SHIM_FOLDER))
    device = _device(args.device)
    predictor = MaleniaPredictor(tile_step_size=args.step_size, use_gaussian=True, use_mirroring=not args.disable_tta,
                                 perform_everything_on_device=device.type == "cuda", device=device,
                                 allow_tqdm=True)
    folds = [f if f == "all" else int(f) for f in args.f] if args.f else None
    predictor.initialize_from_trained_model_folder(model_folder, folds, args.chk)
    naming_rule = predictor.use_naming_rule(args.naming_rule)
    classes = predictor.prepare_zero_shot(args.knowledge_table, args.diseases, device="cpu")
    predictor.use_seen_penalty(args.seen_penalty)
    print(f"zero-shot classes ({len(classes.diseases)}): {', '.join(classes.diseases)}; naming rule {naming_rule}"
          + (f"; seen penalty {args.seen_penalty:g}" if args.seen_penalty else "")
          + (f"; location from {args.location_maps}" if args.location_maps else ""))
    locations = None
    if args.location_maps:
        from nnunetv2_malenia.attributes.schema import load_vocabulary
        from nnunetv2_malenia.inference.location_map import read_location_maps

        organs = sorted({d.organ for d in predictor.knowledge_table.diseases.values()})
        allowed = list(load_vocabulary().values["location"]) + organs
        locations = read_location_maps(args.location_maps, cases, file_ending, allowed)

    out = Path(args.o)
    # before any label map: the record names the model that writes them
    write_json_atomic(prediction_record(model_folder, predictor.block.classes, classes.diseases, folds, args.chk,
                                        args.knowledge_table, args.describe_masks, naming_rule,
                                        args.seen_penalty, args.location_maps, args.location_floor),
                      out / PREDICTION_RECORD)
    if masks is not None:
        lesion_maps, naming = masks, "model"
    else:
        predictor.predict_from_files(args.i, str(out), save_probabilities=args.save_probabilities,
                                     overwrite=not args.continue_prediction, num_processes_preprocessing=args.npp,
                                     num_processes_segmentation_export=args.nps)
        if args.no_reports:
            return []
        lesion_maps, naming = {case: out / f"{case}{file_ending}" for case in cases}, "label"
    reporter = LesionReporter(predictor, out / OVERLAYS_SUBFOLDER if args.overlay else None, locations,
                              args.location_floor)
    reports = []
    for case, files in tqdm(sorted(cases.items()), desc="lesion reports"):
        reports.append(reporter.write(case, files, str(lesion_maps[case]), out / REPORTS_SUBFOLDER / f"{case}.json",
                                      naming))
    n_lesions = sum(len(r["lesions"]) for r in reports)
    print(f"{len(reports)} case(s), {n_lesions} lesion(s); reports in {out / REPORTS_SUBFOLDER}")
    return reports


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parser().parse_args(argv)
    try:
        predict(args)
    except MaleniaInputError as e:
        exit_with_problems(e)


if __name__ == "__main__":
    main()
