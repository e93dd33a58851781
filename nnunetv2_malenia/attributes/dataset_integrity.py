"""What nnU-Net's ``verify_dataset_integrity`` checks, reported as Problems (file, field, message) instead of
asserts and prints, plus the stray files it cannot see.

nnU-Net stops at its first failed assert and prints its findings as free text; ``nnUNetv2_malenia_check`` needs every
finding in its one-line-per-problem style. The case list comes from nnU-Net itself
(``get_filenames_of_train_images_and_targets``) and the expected label values from its ``LabelManager``, so this
module sees the dataset exactly as planning and training will. Images are read header-only (SimpleITK); label maps
are read whole, because their values must be checked.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_malenia.errors import Problem

# Same tolerances as the evaluator: headers written by different tools round float32 fields differently.
_MM_TOL = 1e-3
_DIRECTION_TOL = 1e-4


def layout_problems(folder: Path, dataset_json: dict) -> Tuple[List[Problem], Dict[str, dict]]:
    """imagesTr/labelsTr against dataset.json, without reading any image: stray files, missing channels or label
    files, numTraining. Datasets that list their files in dataset.json ('dataset' key) only get file existence.
    Returns the problems and the cases whose files all exist (case -> {"images": [...], "label": ...})."""
    dj_file = str(folder / "dataset.json")
    ending = dataset_json.get("file_ending", "")
    problems: List[Problem] = []
    num_training = dataset_json.get("numTraining")
    if isinstance(num_training, bool) or not isinstance(num_training, int):
        problems.append(Problem(dj_file, "numTraining", f"must be the number of training cases, got {num_training!r}"))
        num_training = None
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not isinstance(channels, dict) or not channels:
        problems.append(Problem(dj_file, "channel_names", "missing or empty (e.g. {\"0\": \"CT\"})"))
        return problems, {}
    cases = _cases(folder, dataset_json, len(channels), problems)
    if cases is None:
        return problems, {}
    if not cases:
        problems.append(Problem(str(folder / "imagesTr"), "", f"no training images (CASE_0000{ending})"))
    elif num_training is not None and num_training != len(cases):
        problems.append(Problem(dj_file, "numTraining", f"says {num_training}, but there are {len(cases)} training "
                                                        f"cases; nnU-Net refuses the dataset"))
    if "dataset" not in dataset_json:
        labels_dir = folder / "labelsTr"
        if not labels_dir.is_dir():
            problems.append(Problem(str(labels_dir), "", "folder not found"))
        else:
            for f in sorted(labels_dir.iterdir()):
                if f.name.startswith(".") and not f.name.endswith(ending):
                    continue                      # .DS_Store and the like: nnU-Net never looks at them
                if not f.name.endswith(ending) or f.name[:-len(ending)] not in cases:
                    problems.append(Problem(str(f), "", f"stray file in labelsTr: no training case "
                                                        f"{f.name[:-len(ending)] if f.name.endswith(ending) else f.name!r}"
                                                        f" in imagesTr"))
    complete = {}
    for case, files in cases.items():
        missing = [f for f in files["images"] + [files["label"]] if not Path(f).is_file()]
        problems += [Problem(f, "", f"not found (training case {case})") for f in missing]
        if not missing:
            complete[case] = files
    return problems, complete


def _cases(folder: Path, dataset_json: dict, num_channels: int, problems: List[Problem]) -> Optional[Dict[str, dict]]:
    """nnU-Net's own case list, after checking that imagesTr holds nothing it would misread."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    if "dataset" in dataset_json:
        return get_filenames_of_train_images_and_targets(str(folder), dataset_json)
    images_dir, ending = folder / "imagesTr", dataset_json.get("file_ending", "")
    if not images_dir.is_dir():
        return None                               # raw_dataset_problems has said so
    pattern = re.compile(r"(.+)_(\d{4})" + re.escape(ending) + "$")
    channels: Dict[str, set] = {}
    for f in sorted(images_dir.iterdir()):
        if f.name.startswith(".") and not f.name.endswith(ending):
            continue
        m = pattern.match(f.name)
        if not f.is_file() or m is None or int(m.group(2)) >= num_channels:
            # nnU-Net cuts 5 characters + the ending off every *ending file: such a file becomes a phantom case
            problems.append(Problem(str(f), "", f"stray file in imagesTr: expected CASE_XXXX{ending} with XXXX a "
                                                f"channel of dataset.json (0000..{num_channels - 1:04d})"))
            continue
        channels.setdefault(m.group(1), set()).add(int(m.group(2)))
    for case, found in sorted(channels.items()):
        missing = sorted(set(range(num_channels)) - found)
        if missing:
            problems.append(Problem(str(images_dir / f"{case}_{missing[0]:04d}{ending}"), "",
                                    f"missing: case {case} lacks channel(s) {missing}"))
    if any(p.message.startswith("stray file in imagesTr") for p in problems):
        return {c: _files(folder, c, num_channels, ending) for c in sorted(channels)}
    return get_filenames_of_train_images_and_targets(str(folder), dataset_json)


def _files(folder: Path, case: str, num_channels: int, ending: str) -> dict:
    return {"images": [str(folder / "imagesTr" / f"{case}_{c:04d}{ending}") for c in range(num_channels)],
            "label": str(folder / "labelsTr" / f"{case}{ending}")}


def expected_label_values(dataset_json: dict) -> List[int]:
    """Label values nnU-Net accepts in a segmentation (ignore label included), from its LabelManager."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    manager = LabelManager(dataset_json["labels"], regions_class_order=dataset_json.get("regions_class_order"))
    values = list(manager.all_labels)
    if manager.has_ignore_label:
        values.append(manager.ignore_label)
    return sorted(int(v) for v in values)


def case_problems(case: str, image_files: Sequence[str], label_file: str, expected: Sequence[int]) -> List[Problem]:
    """Image and label on one grid (size, spacing, origin, direction) and label values known to dataset.json."""
    import SimpleITK as sitk

    problems: List[Problem] = []
    try:
        label = sitk.ReadImage(label_file)
    except RuntimeError as e:
        return [Problem(label_file, "", f"cannot be read: {str(e).strip().splitlines()[-1]}")]
    for image_file in image_files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(image_file)
        try:
            reader.ReadImageInformation()
        except RuntimeError as e:
            problems.append(Problem(image_file, "", f"cannot be read: {str(e).strip().splitlines()[-1]}"))
            continue
        for field, a, b, tol in (("size", reader.GetSize(), label.GetSize(), 0.0),
                                 ("spacing", reader.GetSpacing(), label.GetSpacing(), _MM_TOL),
                                 ("origin", reader.GetOrigin(), label.GetOrigin(), _MM_TOL),
                                 ("direction", reader.GetDirection(), label.GetDirection(), _DIRECTION_TOL)):
            if len(a) != len(b) or not np.allclose(a, b, rtol=0.0, atol=tol):
                problems.append(Problem(label_file, field, f"{tuple(b)} differs from the image's {tuple(a)} "
                                                           f"({Path(image_file).name}); the label would not lie on "
                                                           f"the image"))
    values = np.unique(sitk.GetArrayViewFromImage(label))
    unknown = [v.item() for v in values if v not in set(expected)]
    if unknown:
        problems.append(Problem(label_file, "voxel values", f"{unknown[:10]} are not label values of dataset.json "
                                                            f"(it has {list(expected)})"))
    return problems


def integrity_problems(folder: Path | str, dataset_json: dict, progress: bool = False,
                       num_processes: int = 1) -> List[Problem]:
    """Layout, then every complete case's grid and label values (when dataset.json's labels are usable).

    Reading every label map is the slow part (minutes for a few hundred CT cases), hence ``num_processes``."""
    from tqdm import tqdm

    folder = Path(folder)
    problems, cases = layout_problems(folder, dataset_json)
    if not isinstance(dataset_json.get("labels"), dict):
        return problems                           # the attribute validation reports the labels section
    label_problems = label_value_problems(folder, dataset_json)
    if label_problems:
        return problems + label_problems
    expected = expected_label_values(dataset_json)
    jobs = [(case, files["images"], files["label"], expected) for case, files in sorted(cases.items())]
    bar = dict(total=len(jobs), desc="checking cases", disable=not progress, file=sys.stderr)
    if num_processes > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(num_processes, len(jobs))) as pool:
            results = list(tqdm(pool.map(_case_problems, jobs), **bar))
    else:
        results = [_case_problems(job) for job in tqdm(jobs, **bar)]
    return problems + [p for r in results for p in r]


def _case_problems(job) -> List[Problem]:
    return case_problems(*job)


def label_value_problems(folder: Path, dataset_json: dict) -> List[Problem]:
    """nnU-Net asserts consecutive label values 0, 1, 2, ... (regions aside)."""
    labels = dataset_json["labels"]
    if not isinstance(labels, dict) or any(not isinstance(v, int) or isinstance(v, bool) for v in labels.values()):
        return []                                 # regions, or non-integers raw_dataset_problems reports
    values = sorted(v for n, v in labels.items() if n != "ignore")
    if values != list(range(len(values))):
        return [Problem(str(folder / "dataset.json"), "labels", f"values {values} must be consecutive from 0 "
                                                                 f"(background) as nnU-Net requires")]
    return []
