"""``nnUNetv2_malenia_evaluate``: per-disease Dice / NSD, lesion detection, and (with lesion reports) the paper's
Table-8 lesion-attribute matching and disease identification accuracy.

Diseases are label names. The reference label of disease X (named in the reference dataset.json, by default
``LABELS_DIR/../dataset.json``) is compared with the predicted label of the same name (named in the prediction's
dataset.json, by default ``PRED_DIR/dataset.json``; the zero-shot predictor writes disease names there). A
reference disease the prediction has no label for is scored against an empty prediction. Labels that the
``--attributes`` file describes as organs (non-lesion labels) are not evaluated.

Conventions (see metrics.py, lesions.py and attribute_matching.py for the reasons):

- Dice / NSD: both masks empty -> NaN (``null`` in the JSON), the case is left out of that disease's mean, as in
  nnU-Net's evaluator; one of them empty -> 0. NSD uses MONAI's ``compute_surface_dice`` in world units (voxel
  spacing from the reference image), tolerance ``--nsd-tolerance`` mm (default 2.0). Masks with a singleton axis
  (a 2D slice stored as 3D) are scored as 2D.
- Lesions are connected components (full connectivity) per label; detection = at least one voxel of overlap with
  a lesion of the same disease. Counts are summed over cases before precision / recall / F1.
- Per-disease means are over cases; the summaries ("all", "seen", "unseen") average the per-disease means of the
  diseases with at least one scored case, so each disease weighs the same and their ``n`` counts only those.
- Seen / unseen is what the model was trained on: a reference disease is seen when its label name (or its
  ``--attributes`` disease) is one of the model's trained classes (the ``classes`` of the Malenia block in the model
  folder's plans.json). They come from ``-m MODEL_FOLDER``, or from ``PRED_DIR/malenia_prediction.json``, which
  nnUNetv2_malenia_predict writes. Without either the split is unknown (``?``) and only "all" is summarised; the
  knowledge table's ``paper_split`` is kept in the result for reference, but a model need not have been trained on
  the paper's split.

Lesion report schema (``REPORTS_DIR/CASE.json``, written by the zero-shot predictor)::

    {"case": str,
     "lesions_from": "prediction" | "given mask",   # the label map, or the --describe-masks mask
     "scan": {"enhancement_status": {"value": key|null, "description": str, "score": float}},
     "lesions": [{"id": int,            # index in lesion_components(predicted label map)
                  "label": int,         # its label value
                  "disease": str,       # the label's disease; for a given mask the top-ranked one
                  "num_voxels": int, "volume_ml": float,
                  "centroid_mm": [x, y, z], "bbox_mm": {"min": [..], "max": [..]},
                  "attributes": {ASPECT: {"value": key|null, "description": str, "score": float}},  # 8 aspects
                  "diseases": [{"name": str, "score": float}, ...]}]}                              # ranked
"""
from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from nnunetv2_malenia.attributes.dataset_attributes import foreground_labels
from nnunetv2_malenia.attributes.schema import ASPECTS, load_vocabulary, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.utils.cli import file_problems, make_parser
from nnunetv2_malenia.evaluation.attribute_matching import (AttributeCounts, ValueCanon, best_reference_match,
                                                            load_report, score_case)
from nnunetv2_malenia.evaluation.lesions import (DetectionCounts, component_index_map, detection_counts,
                                                 lesion_components, overlap_counts)
from nnunetv2_malenia.evaluation.metrics import dice, nanmean, surface_dice

# Geometry tolerances: headers written by different tools round spacing/origin differently (float32 NIfTI
# fields), so exact equality would reject identical grids; 1e-3 mm is far below any voxel size.
_MM_TOL = 1e-3
_DIRECTION_TOL = 1e-4


@dataclass(frozen=True)
class EvalLabel:
    name: str                       # disease = label name
    reference_value: int
    prediction_value: Optional[int]  # None: the prediction has no label of that name (scored as empty)
    paper_split: Optional[str]       # 'seen' / 'unseen' from the knowledge table, None when unknown
    split: Optional[str] = None      # 'seen' / 'unseen': among the model's trained classes; None when unknown


@dataclass(frozen=True)
class _CaseJob:
    case: str
    reference_file: str
    prediction_file: str
    labels: Tuple[EvalLabel, ...]
    tolerance_mm: float
    use_subvoxels: bool
    report_file: Optional[str]
    # label name -> aspect -> canonical reference values of this case (None: no --attributes)
    reference_values: Optional[Mapping[str, Mapping[str, FrozenSet[str]]]]
    prediction_values: FrozenSet[int] = frozenset()   # values the prediction's dataset.json names (0 included)
    prediction_dataset_json: str = ""


# ----------------------------------------------------------------------------------------------------------- input
def read_label_map(path: str, problems: List[Problem]) -> Tuple[Optional[np.ndarray], Optional[dict]]:
    """Integer label array (array axis order, i.e. [Z, Y, X] for 3D) and its geometry, read with SimpleITK."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        problems.append(Problem(str(path), "", f"cannot be read with SimpleITK: {str(e).strip().splitlines()[-1]}"))
        return None, None
    if image.GetNumberOfComponentsPerPixel() != 1:
        problems.append(Problem(str(path), "pixel type", "a label map must have one component per voxel, got "
                                                         f"{image.GetNumberOfComponentsPerPixel()}"))
        return None, None
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.all(array == np.rint(array)):
            problems.append(Problem(str(path), "voxel values", f"a label map must hold integers, got {array.dtype} "
                                                               "values with a fractional part"))
            return None, None
        array = array.astype(np.int64)
    geometry = {"size": tuple(int(s) for s in image.GetSize()), "spacing": tuple(image.GetSpacing()),
                "origin": tuple(image.GetOrigin()), "direction": tuple(image.GetDirection())}
    return array, geometry


def geometry_problems(reference_file: str, reference: dict, prediction_file: str, prediction: dict) -> List[Problem]:
    """One Problem per differing field, naming the prediction file and the field."""
    out = []
    checks = (("size", 0.0), ("spacing", _MM_TOL), ("origin", _MM_TOL), ("direction", _DIRECTION_TOL))
    for name, tol in checks:
        a, b = reference[name], prediction[name]
        if len(a) != len(b) or not np.allclose(a, b, rtol=0.0, atol=tol):
            label = "shape (image size x,y,z)" if name == "size" else name
            out.append(Problem(prediction_file, label, f"{tuple(b)} differs from the reference's {tuple(a)} "
                                                       f"in {reference_file}"))
    return out


def _squeeze_singletons(reference: np.ndarray, prediction: np.ndarray, spacing_xyz: Sequence[float]):
    """Drop axes of size 1 so a 2D slice stored as a 3D volume gets 2D surfaces (a one-slice volume would
    otherwise have its whole top and bottom face counted as boundary)."""
    spacing = list(spacing_xyz)[::-1]                         # SimpleITK (x, y, z) -> array order (z, y, x)
    keep = [i for i, n in enumerate(reference.shape) if n > 1] or [0]
    shape = tuple(reference.shape[i] for i in keep)
    return reference.reshape(shape), prediction.reshape(shape), [spacing[i] for i in keep]


# --------------------------------------------------------------------------------------------------------- per case
def evaluate_case(job: _CaseJob) -> dict:
    """All per-case numbers of one case; geometry or report problems are returned, not raised, so that the
    caller can report every case's problems at once."""
    problems: List[Problem] = []
    ref, ref_geo = read_label_map(job.reference_file, problems)
    pred, pred_geo = read_label_map(job.prediction_file, problems)
    if ref is not None and pred is not None:
        problems += geometry_problems(job.reference_file, ref_geo, job.prediction_file, pred_geo)
        unknown = sorted(set(np.unique(pred).tolist()) - job.prediction_values)
        if unknown:
            # a value no label names would otherwise be scored as nothing: a wrong -djfile, or a wrong folder
            problems.append(Problem(job.prediction_file, "voxel values", f"{unknown[:10]} are not label values of "
                                    f"{job.prediction_dataset_json} (it has {sorted(job.prediction_values)})"))
    if problems:
        return {"case": job.case, "problems": problems}
    ref, pred, spacing = _squeeze_singletons(ref, pred, ref_geo["spacing"])

    # lesion ids: the reference's evaluated labels; the prediction's ALL labels, exactly as the predictor numbers
    # the lesions of its report
    ref_components = lesion_components(ref, [l.reference_value for l in job.labels])
    pred_components = lesion_components(pred)
    overlaps = overlap_counts(component_index_map(ref.shape, ref_components),
                              component_index_map(pred.shape, pred_components))

    metrics: Dict[str, dict] = {}
    for label in job.labels:
        ref_mask = ref == label.reference_value
        pred_mask = (pred == label.prediction_value) if label.prediction_value is not None \
            else np.zeros(ref.shape, dtype=bool)
        det = detection_counts([c.id for c in ref_components if c.label == label.reference_value],
                               [c.id for c in pred_components if c.label == label.prediction_value], overlaps)
        metrics[label.name] = {"dice": _finite_or_none(dice(ref_mask, pred_mask)),
                               "nsd": _finite_or_none(surface_dice(ref_mask, pred_mask, spacing, job.tolerance_mm,
                                                                   job.use_subvoxels)),
                               "reference_voxels": int(ref_mask.sum()), "predicted_voxels": int(pred_mask.sum()),
                               "lesions": vars(det)}
    out = {"case": job.case, "problems": [], "metrics": metrics}
    if job.report_file is not None:
        out["attribute_counts"] = _score_report(job, ref_components, pred_components, overlaps, problems)
        out["problems"] = problems
    return out


def _score_report(job: _CaseJob, ref_components, pred_components, overlaps, problems: List[Problem]
                  ) -> Optional[AttributeCounts]:
    lesions = load_report(job.report_file, ValueCanon(load_vocabulary()), problems)
    n_before = len(problems)
    for i, lesion in enumerate(lesions):
        if lesion.id >= len(pred_components):
            problems.append(Problem(job.report_file, f"lesions[{i}].id",
                                    f"lesion {lesion.id} does not exist: {job.prediction_file} has "
                                    f"{len(pred_components)} connected components (ids follow lesion_components)"))
        elif pred_components[lesion.id].label != lesion.label:
            problems.append(Problem(job.report_file, f"lesions[{i}].label",
                                    f"lesion {lesion.id} has label {pred_components[lesion.id].label} in "
                                    f"{job.prediction_file}, the report says {lesion.label}"))
    if len(problems) > n_before:
        return None
    name_of = {l.reference_value: l.name for l in job.labels}
    reference = {c.id: (name_of[c.label], (job.reference_values or {}).get(name_of[c.label], {}))
                 for c in ref_components}
    return score_case(lesions, best_reference_match(overlaps), reference)


def _finite_or_none(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------------------ whole run
def evaluate_folders(reference_dir: Path | str, prediction_dir: Path | str, output_file: Path | str | None = None,
                     attributes_file: Path | str | None = None, reports_dir: Path | str | None = None,
                     knowledge_tables: Sequence[Path | str] = (), prediction_dataset_json: Path | str | None = None,
                     reference_dataset_json: Path | str | None = None, nsd_tolerance_mm: float = 2.0,
                     num_processes: int = 1, use_subvoxels: bool = False, progress: bool = True,
                     label_map: Mapping[str, str] | None = None, model_folder: Path | str | None = None) -> dict:
    """Evaluate every reference case of ``reference_dir`` against the same file name in ``prediction_dir``.

    ``label_map``: prediction label name -> reference label name, for predictions whose dataset.json names the
    diseases differently (e.g. plain ``nnUNetv2_predict`` output with a training dataset's MSD-style names).
    ``model_folder``: the trained model whose classes are "seen" (see :func:`trained_classes`).

    Returns the result dict (also written atomically to ``output_file`` when given). Raises MaleniaInputError with
    every problem found (missing files, label maps on different grids, bad reports, no label name shared by
    prediction and reference) before writing anything.
    """
    from nnunetv2_malenia.attributes import load_knowledge_table

    reference_dir, prediction_dir = Path(reference_dir), Path(prediction_dir)
    problems: List[Problem] = []
    for folder, flag in ((reference_dir, "-ref"), (prediction_dir, "-pred")):
        if not folder.is_dir():
            problems.append(Problem(str(folder), flag, "folder not found"))
    if reports_dir is not None and not Path(reports_dir).is_dir():
        problems.append(Problem(str(reports_dir), "--reports", "folder not found"))
    if not (math.isfinite(nsd_tolerance_mm) and nsd_tolerance_mm >= 0):
        problems.append(Problem("", "--nsd-tolerance", f"must be a number >= 0 (mm), got {nsd_tolerance_mm}"))
    if model_folder is not None and not Path(model_folder).is_dir():
        problems.append(Problem(str(model_folder), "-m", "folder not found"))
    if output_file is not None:
        problems += file_problems(output_file, "-o")     # before the scoring, not after it
    raise_if_problems(problems)
    trained, split_source = trained_classes(prediction_dir, model_folder)

    ref_dj_file = Path(reference_dataset_json or reference_dir.parent / "dataset.json")
    pred_dj_file = Path(prediction_dataset_json or prediction_dir / "dataset.json")
    ref_dj = read_json(ref_dj_file, "reference dataset.json (give it with --ref-dataset-json)")
    pred_dj = read_json(pred_dj_file, "prediction dataset.json (give it with -djfile)")
    ref_labels = foreground_labels(ref_dj, str(ref_dj_file), problems)
    pred_labels = foreground_labels(pred_dj, str(pred_dj_file), problems)
    raise_if_problems(problems)
    prediction_values = frozenset([0, *pred_labels.values()])
    pred_labels = _renamed(pred_labels, dict(label_map or {}), ref_labels, str(pred_dj_file))

    table = load_knowledge_table(list(knowledge_tables))
    attributes = None
    if attributes_file is not None:
        from nnunetv2_malenia.attributes.dataset_attributes import parse_dataset_attributes

        attributes = parse_dataset_attributes(read_json(attributes_file, "attribute file"), ref_dj,
                                              str(attributes_file), None, str(ref_dj_file))

    def disease_of(name: str) -> str:
        if attributes is not None and attributes.labels[name].disease:
            return attributes.labels[name].disease
        return name

    def paper_split(name: str) -> Optional[str]:
        for t in (table, attributes.knowledge_table if attributes is not None else None):
            if t is not None and disease_of(name) in t:
                return t[disease_of(name)].paper_split
        return None

    def split(name: str) -> Optional[str]:
        if trained is None:
            return None
        return "seen" if {name, disease_of(name)} & set(trained.values()) else "unseen"

    organ_labels = [n for n in ref_labels if attributes is not None and not attributes.labels[n].is_lesion]
    labels = tuple(EvalLabel(n, v, pred_labels.get(n), paper_split(n), split(n)) for n, v in ref_labels.items()
                   if n not in organ_labels)
    if not labels:
        raise MaleniaInputError(Problem(str(ref_dj_file), "labels", "no lesion label to evaluate"))
    if not any(l.prediction_value is not None for l in labels):
        # every disease would score 0 against an empty prediction: almost surely a naming mismatch, not a result
        raise MaleniaInputError(Problem(str(pred_dj_file), "labels", (
            f"no label name in common with the reference: the prediction has {sorted(pred_labels)}, the reference "
            f"({ref_dj_file}) has {[l.name for l in labels]}. Name the prediction's labels with "
            f"--label-map PRED_NAME=REF_NAME (repeatable)")))

    ending = ref_dj.get("file_ending", ".nii.gz")
    cases = sorted(p.name[:-len(ending)] for p in reference_dir.iterdir()
                   if p.is_file() and p.name.endswith(ending) and not p.name.startswith("."))
    if not cases:
        raise MaleniaInputError(Problem(str(reference_dir), "-ref", f"no reference label maps ending in {ending!r}"))
    missing = [c for c in cases if not (prediction_dir / f"{c}{ending}").is_file()]
    if missing:
        raise MaleniaInputError([Problem(str(prediction_dir / f"{c}{ending}"), "", "prediction missing for reference "
                                         f"case {c}") for c in missing])
    extra = sorted(p.name for p in prediction_dir.iterdir()
                   if p.is_file() and p.name.endswith(ending) and p.name[:-len(ending)] not in set(cases))

    # the attribute file was validated against the default vocabulary, so its texts map back to those keys
    canon = ValueCanon(load_vocabulary()) if attributes is not None else None
    jobs = []
    for case in cases:
        ref_values = None
        if attributes is not None:
            ref_values = {l.name: canon.reference_values(attributes.descriptions_for(case, l.name)) for l in labels}
        jobs.append(_CaseJob(case, str(reference_dir / f"{case}{ending}"), str(prediction_dir / f"{case}{ending}"),
                             labels, float(nsd_tolerance_mm), use_subvoxels,
                             str(Path(reports_dir) / f"{case}.json") if reports_dir is not None else None,
                             ref_values, prediction_values, str(pred_dj_file)))

    bar = dict(total=len(jobs), desc="evaluate", disable=not progress)
    if num_processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(num_processes, len(jobs))) as pool:
            case_results = list(tqdm(pool.map(evaluate_case, jobs), **bar))
    else:
        case_results = [evaluate_case(j) for j in tqdm(jobs, **bar)]
    raise_if_problems(p for r in case_results for p in r["problems"])

    result = _aggregate(case_results, labels, attributes is not None, reports_dir is not None)
    result["settings"] = {
        "reference": str(reference_dir), "prediction": str(prediction_dir),
        "reference_dataset_json": str(ref_dj_file), "prediction_dataset_json": str(pred_dj_file),
        "attributes": str(attributes_file) if attributes_file else None,
        "reports": str(reports_dir) if reports_dir else None, "knowledge_tables": list(table.files),
        "label_map": dict(label_map or {}),
        "nsd_tolerance_mm": float(nsd_tolerance_mm), "nsd_implementation": "monai.metrics.compute_surface_dice",
        "nsd_use_subvoxels": use_subvoxels,
        "empty_convention": "both empty: Dice/NSD null, case left out of the mean; one empty: 0",
        "detection_criterion": "overlap >= 1 voxel with a lesion of the same disease",
        "summary_mean": "mean of per-disease means over the diseases with a scored case (each weighs the same)",
        "split": {"source": split_source, "trained_classes": sorted(trained.values()) if trained is not None else None,
                  "rule": "seen: the reference label's name (or its --attributes disease) is a trained class"},
    }
    result["labels"] = {l.name: {"reference_value": l.reference_value, "prediction_value": l.prediction_value,
                                 "split": l.split, "paper_split": l.paper_split} for l in labels}
    result["not_evaluated"] = {"organ_labels": organ_labels,
                               "prediction_only_labels": sorted(set(pred_labels) - set(ref_labels)),
                               "prediction_files_without_reference": extra}
    if output_file is not None:
        from nnunetv2_malenia.utils.atomic_io import write_json_atomic

        write_json_atomic(result, output_file)
    return result


def trained_classes(prediction_dir: Path, model_folder: Path | str | None = None
                    ) -> Tuple[Optional[Dict[int, str]], Optional[str]]:
    """(label value -> name of the classes the model was trained on, the file that says so), or (None, None).

    From ``model_folder``'s plans.json (its Malenia block's ``classes``), else from the record
    nnUNetv2_malenia_predict leaves in ``prediction_dir``. With both, they must agree: a record naming other
    classes means these label maps were made by another model than ``-m``."""
    from nnunetv2_malenia.inference.predict import PREDICTION_RECORD, model_block, read_trained_classes

    record = prediction_dir / PREDICTION_RECORD
    recorded = read_trained_classes(record) if record.is_file() else None
    if model_folder is None:
        return recorded, (str(record) if recorded is not None else None)
    model_classes = dict(model_block(Path(model_folder)).classes)
    if recorded is not None and recorded != model_classes:
        raise MaleniaInputError(Problem(str(record), "trained_classes", (
            f"{_names(recorded)} differ from the classes of -m {model_folder} ({_names(model_classes)}): these "
            f"label maps were predicted by another model")))
    return model_classes, str(Path(model_folder) / "plans.json")


def _names(classes: Mapping[int, str]) -> str:
    return ", ".join(f"{v}: {n}" for v, n in sorted(classes.items()))


def _renamed(pred_labels: Dict[str, int], label_map: Mapping[str, str], ref_labels: Mapping[str, int],
             pred_dj_file: str) -> Dict[str, int]:
    """Prediction label name -> value, with --label-map applied; every name in the map must exist on its side."""
    problems = [Problem("", "--label-map", f"{p}={r}: {p!r} is not a label of {pred_dj_file} "
                                           f"({', '.join(sorted(pred_labels))})")
                for p, r in label_map.items() if p not in pred_labels]
    problems += [Problem("", "--label-map", f"{p}={r}: {r!r} is not a reference label ({', '.join(ref_labels)})")
                 for p, r in label_map.items() if r not in ref_labels]
    raise_if_problems(problems)
    return {label_map.get(n, n): v for n, v in pred_labels.items()}


def parse_label_map(specs: Sequence[str]) -> Dict[str, str]:
    out, problems = {}, []
    for spec in specs:
        pred, sep, ref = (x.strip() for x in spec.partition("="))
        if not (sep and pred and ref):
            problems.append(Problem("", "--label-map", f"{spec!r}: expected PRED_NAME=REF_NAME"))
        out[pred] = ref
    raise_if_problems(problems)
    return out


def _aggregate(case_results: Sequence[dict], labels: Sequence[EvalLabel], with_attributes: bool,
               with_reports: bool) -> dict:
    per_case = {r["case"]: r["metrics"] for r in case_results}
    per_disease: Dict[str, dict] = {}
    for l in labels:
        rows = [per_case[c][l.name] for c in per_case]
        det = DetectionCounts()
        for row in rows:
            det += DetectionCounts(**row["lesions"])
        per_disease[l.name] = {"split": l.split, "paper_split": l.paper_split, "n_cases": len(rows),
                               "n_cases_scored": sum(row["dice"] is not None for row in rows),
                               "dice": nanmean(row["dice"] for row in rows),
                               "nsd": nanmean(row["nsd"] for row in rows),
                               "detection": det.as_dict()}
    summaries = {}
    for group, names in (("all", [l.name for l in labels]),
                         ("seen", [l.name for l in labels if l.split == "seen"]),
                         ("unseen", [l.name for l in labels if l.split == "unseen"])):
        if not names:
            continue
        det = DetectionCounts()
        for n in names:
            d = per_disease[n]["detection"]
            det += DetectionCounts(d["n_reference"], d["n_predicted"], d["reference_detected"], d["predicted_correct"])
        # a disease with no scored case (both masks empty everywhere) has no mean: it is not averaged, not counted
        scored = [n for n in names if per_disease[n]["n_cases_scored"] > 0]
        summaries[group] = {"diseases": names, "diseases_scored": scored,
                            "dice": nanmean(per_disease[n]["dice"] for n in scored),
                            "nsd": nanmean(per_disease[n]["nsd"] for n in scored), "detection": det.as_dict()}
    out = {"per_case": per_case, "per_disease": per_disease, "summary": summaries}
    if with_reports:
        counts = AttributeCounts()
        for r in case_results:
            counts += r["attribute_counts"]
        out["lesion_reports"] = counts.as_dict(with_attributes=with_attributes)
    return out


# ----------------------------------------------------------------------------------------------------------- table
def _fmt(value: Optional[float]) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def format_table(result: dict) -> str:
    """Plain-text tables of a result dict (what the command prints)."""
    lines = []
    width = max([len("disease")] + [len(n) for n in result["per_disease"]] + [len("mean (unseen)")])
    head = f"{'disease':<{width}}  split       n   Dice     NSD   lesP    lesR   lesF1"
    lines += [head, "-" * len(head)]

    def row(name: str, split: str, cases: str, d: dict) -> str:
        det = d["detection"]
        return (f"{name:<{width}}  {split:<6} {cases:>6} {_fmt(d['dice'])}  {_fmt(d['nsd'])} {_fmt(det['precision'])}"
                f"  {_fmt(det['recall'])}  {_fmt(det['f1'])}")

    for name, d in result["per_disease"].items():
        lines.append(row(name, d["split"] or "?", f"{d['n_cases_scored']}/{d['n_cases']}", d))
    lines.append("-" * len(head))
    for group, d in result["summary"].items():
        lines.append(row(f"mean ({group})", "", f"{len(d['diseases_scored'])}/{len(d['diseases'])}", d))
    lines.append("n: cases scored / cases (both empty = not scored); for means: diseases averaged (with a scored "
                 "case) / diseases. les*: lesion detection precision / recall / F1")
    source = result["settings"]["split"]["source"]
    lines.append(f"split: seen = a class the model was trained on ({source})" if source else
                 "split ?: the model's trained classes are unknown; give -m MODEL_FOLDER (nnUNetv2_malenia_predict "
                 "records them in PRED_DIR/malenia_prediction.json)")
    if result.get("lesion_reports"):
        lines += ["", format_report_table(result)]
    return "\n".join(lines)


def format_report_table(result: dict) -> str:
    """The lesion-report part of a result: attribute matching per aspect (Table 8) and disease identification."""
    reports = result["lesion_reports"]
    lines = []
    if "per_aspect" in reports:
        lines.append(f"{'aspect':<18}  precision  recall   (predicted with value / reference with aspect)")
        for aspect in ASPECTS:
            a = reports["per_aspect"][aspect]
            lines.append(f"{aspect:<18}  {_fmt(a['precision'])}    {_fmt(a['recall'])}   "
                         f"({a['predicted_with_value']} / {a['reference_with_aspect']})")
    ident = reports["disease_identification"]
    lines.append(f"disease identification accuracy: {_fmt(ident['accuracy']).strip()} "
                 f"({ident['correct']}/{ident['matched']} matched predicted lesions; "
                 f"{reports['n_predicted_lesions']} predicted, {reports['n_reference_lesions']} reference)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nnUNetv2_malenia_evaluate",
        "Per-disease Dice and NSD, lesion detection precision/recall/F1, and with lesion reports the "
                    "paper's lesion-attribute matching (Table 8) and disease identification accuracy. Diseases are "
                    "label names: a reference label is compared with the predicted label of the same name.")
    p.add_argument("-ref", required=True, metavar="LABELS_DIR", help="reference label maps (e.g. labelsTs)")
    p.add_argument("-pred", required=True, metavar="PRED_DIR", help="predicted label maps, same file names")
    p.add_argument("-o", "--output", required=True, metavar="OUT.json", help="result file (written atomically)")
    p.add_argument("--attributes", metavar="FILE",
                   help="reference attributes in malenia_attributes.json format (e.g. malenia_attributes_test.json)")
    p.add_argument("--reports", metavar="REPORTS_DIR", help="per-case lesion reports CASE.json of the predictor")
    p.add_argument("-m", metavar="MODEL_FOLDER", dest="model_folder",
                   help="trained model folder (TRAINER__PLANS__CONFIGURATION): its classes are the seen diseases. "
                        "Needed only when PRED_DIR lacks the malenia_prediction.json nnUNetv2_malenia_predict writes")
    p.add_argument("--knowledge-table", nargs="+", default=[], metavar="FILE",
                   help="extra knowledge-table files (the paper's split of user diseases, kept in the result)")
    p.add_argument("-djfile", metavar="DATASET_JSON", help="dataset.json naming the predicted labels "
                                                            "(default PRED_DIR/dataset.json)")
    p.add_argument("--ref-dataset-json", metavar="FILE", help="dataset.json naming the reference labels "
                                                             "(default LABELS_DIR/../dataset.json)")
    p.add_argument("--label-map", action="append", default=[], metavar="PRED_NAME=REF_NAME",
                   help="score the prediction's label PRED_NAME as the reference's REF_NAME (repeatable), e.g. "
                        "'Tumour=liver tumor' for nnUNetv2_predict output with MSD label names")
    p.add_argument("--nsd-tolerance", type=float, default=2.0, metavar="MM", help="NSD tolerance in mm (default 2)")
    p.add_argument("--nsd-subvoxels", action="store_true",
                   help="NSD over DeepMind-style surface elements instead of edge voxels (MONAI use_subvoxels)")
    p.add_argument("-np", "--num-processes", type=int, default=2, metavar="N", help="worker processes (default 2)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        label_map = parse_label_map(args.label_map)
        result = evaluate_folders(args.ref, args.pred, args.output, attributes_file=args.attributes,
                                  reports_dir=args.reports, knowledge_tables=args.knowledge_table,
                                  prediction_dataset_json=args.djfile, reference_dataset_json=args.ref_dataset_json,
                                  nsd_tolerance_mm=args.nsd_tolerance, num_processes=args.num_processes,
                                  use_subvoxels=args.nsd_subvoxels, label_map=label_map,
                                  model_folder=args.model_folder)
    except MaleniaInputError as e:
        exit_with_problems(e, f"{len(e.problems)} problem(s) found; nothing written")
    print(format_table(result))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
