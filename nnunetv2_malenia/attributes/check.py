"""``nnUNetv2_malenia_check DATASET_NAME_OR_ID``: validate a raw dataset's ``malenia_attributes.json``.

Runs the same validation training uses (:func:`load_dataset_attributes`) and adds the checks it does not make,
because ``json.load`` and dict lookups silently ignore them:

* duplicate keys in the attribute file (JSON keeps the last one, so an earlier description vanishes);
* dataset.json / imagesTr problems that would otherwise surface as a Python traceback (no ``file_ending``,
  no imagesTr folder, label values that are not integers).

Every problem is printed as one line ``file: key path: message``; the exit code is 2 when there is any.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from nnunetv2_malenia.attributes.dataset_attributes import DatasetAttributes, load_dataset_attributes
from nnunetv2_malenia.attributes.schema import ORGAN_ASPECT, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems
from nnunetv2_malenia.utils.cli import make_parser
from nnunetv2_malenia.paths import DATASET_ATTRIBUTES_FILENAME, raw_dataset_folder



class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, so repeated keys stay visible."""


def _duplicate_keys(path: Path) -> List[Problem]:
    """Keys given twice in one JSON object, with their key path (json.load silently keeps only the last)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = json.load(f, object_pairs_hook=_Pairs)
    except (OSError, ValueError):
        return []            # unreadable or invalid JSON: load_dataset_attributes reports it with line numbers
    problems: List[Problem] = []

    def walk(node, where: str) -> None:
        if isinstance(node, _Pairs):
            seen = set()
            for key, value in node:
                child = f"{where}.{key}" if where else str(key)
                if key in seen:
                    problems.append(Problem(str(path), child, "key given twice in the same object; "
                                                              "only the last one would be used"))
                seen.add(key)
                walk(value, child)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")

    walk(tree, "")
    return problems


def raw_dataset_problems(folder: Path) -> List[Problem]:
    """Structural problems of the nnU-Net raw dataset that would otherwise crash the case listing."""
    dj_file = folder / "dataset.json"
    if not folder.is_dir():
        return [Problem(str(folder), "", "raw dataset folder not found")]
    dataset_json = read_json(dj_file, "dataset.json")
    problems = []
    if "file_ending" not in dataset_json and "dataset" not in dataset_json:
        problems.append(Problem(str(dj_file), "file_ending", "missing (e.g. \".nii.gz\")"))
    if "dataset" not in dataset_json and not (folder / "imagesTr").is_dir():
        problems.append(Problem(str(folder / "imagesTr"), "", "folder not found"))
    labels = dataset_json.get("labels")
    if isinstance(labels, dict):
        for name, value in labels.items():
            if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
                problems.append(Problem(str(dj_file), f"labels.{name}", f"label value must be an integer, "
                                                                        f"got {value!r}"))
    return problems


def validate_raw_dataset(folder: Path | str) -> DatasetAttributes:
    """All checks for one raw dataset folder; raises MaleniaInputError with every problem found."""
    folder = Path(folder)
    problems = raw_dataset_problems(folder)
    if problems:
        raise MaleniaInputError(problems)
    attr_file = folder / DATASET_ATTRIBUTES_FILENAME
    extra: List[Problem] = []
    if attr_file.is_file():
        extra += _duplicate_keys(attr_file)
    try:
        attributes = load_dataset_attributes(folder)
    except MaleniaInputError as e:
        raise MaleniaInputError(e.problems + extra) from None
    if extra:
        raise MaleniaInputError(extra)
    return attributes


def summary_lines(attributes: DatasetAttributes, n_cases: Optional[int] = None) -> List[str]:
    """What a user wants to see on success: each label's meaning, per-case coverage, text bank size."""
    lines = ["labels:"]
    for la in sorted(attributes.labels.values(), key=lambda la: la.value):
        if not la.is_lesion:
            lines.append(f"  {la.value} {la.name}: organ label ({la.organ}): {la.descriptions[ORGAN_ASPECT][0]!r}")
        elif la.disease is not None:
            lines.append(f"  {la.value} {la.name}: lesion, disease {la.disease!r} in {la.organ}")
        else:
            lines.append(f"  {la.value} {la.name}: lesion described inline, in {la.organ}")
    of_cases = f" of {n_cases}" if n_cases is not None else ""
    lines.append(f"cases with per-case descriptions: {len(attributes.cases)}{of_cases}")
    dataset_texts = {(aspect, text) for la in attributes.labels.values() for aspect, texts in la.descriptions.items()
                     for text in texts}
    dataset_texts |= {(aspect, text) for per_case in attributes.cases.values() for texts_by_aspect in
                      per_case.values() for aspect, texts in texts_by_aspect.items() for text in texts}
    # the same rows build_bank encodes, so the two commands report one number and its parts
    from nnunetv2_malenia.text_bank.build_bank import bank_entries

    n_rows, n_descriptions = len(bank_entries(attributes)), len(attributes.all_descriptions())
    lines.append(f"text bank: {n_rows} rows for nnUNetv2_malenia_build_bank = {n_descriptions} distinct descriptions "
                 f"(knowledge table and this dataset; {len(dataset_texts)} of them used by this dataset's labels and "
                 f"cases) + {n_rows - n_descriptions} paragraph texts (one per lesion label and per-case lesion "
                 f"entry: its eight aspects joined; used by the single-positive ablation)")
    return lines


def check_dataset(folder: Path, progress: bool = False, num_processes: int = 1) -> DatasetAttributes:
    """The attribute file and, as nnU-Net's verify_dataset_integrity would, the images and labels beside it."""
    from nnunetv2_malenia.attributes.dataset_integrity import integrity_problems

    problems = raw_dataset_problems(folder)
    if problems:
        raise MaleniaInputError(problems)
    try:
        attributes, problems = validate_raw_dataset(folder), []
    except MaleniaInputError as e:
        attributes, problems = None, list(e.problems)
    # an attribute file can be perfect for a dataset nnU-Net refuses or reads wrongly: check both, report both
    problems += integrity_problems(folder, read_json(folder / "dataset.json", "dataset.json"), progress,
                                   num_processes)
    if problems:
        raise MaleniaInputError(problems)
    return attributes


def _default_processes() -> int:
    from nnunetv2.configuration import default_num_processes     # nnUNet_def_n_proc, as verify_dataset_integrity

    return default_num_processes


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = make_parser(
        "nnUNetv2_malenia_check",
        "Validate an nnU-Net raw dataset in nnUNet_raw for Malenia. The attribute file (malenia_attributes.json): "
        "every label described, per-case entries naming existing cases and lesion labels, known aspects and value "
        "keys, resolvable diseases. The dataset itself, as nnU-Net's verify_dataset_integrity would see it: "
        "numTraining, stray or missing files in imagesTr/labelsTr, each label map on its image's grid and holding "
        "only values of dataset.json. Prints one line per problem and exits 2, or prints a short summary and "
        "exits 0.")
    parser.add_argument("dataset", metavar="DATASET_NAME_OR_ID", help="dataset name or id, as for nnUNetv2_train")
    parser.add_argument("-np", dest="num_processes", type=int, default=_default_processes(),
                        help="processes reading the label maps (default: nnU-Net's, %(default)s)")
    args = parser.parse_args(argv)
    try:
        folder = raw_dataset_folder(args.dataset)
        attributes = check_dataset(folder, progress=sys.stderr.isatty(), num_processes=args.num_processes)
    except MaleniaInputError as e:
        exit_with_problems(e, f"{len(e.problems)} problem(s) found")
    from nnunetv2_malenia.attributes.dataset_attributes import list_raw_cases

    n_cases = len(list_raw_cases(folder, read_json(folder / "dataset.json", "dataset.json")))
    print(f"{folder}: OK (images, labels and dataset.json as nnU-Net reads them)")
    print(f"{folder / DATASET_ATTRIBUTES_FILENAME}: OK")
    for line in summary_lines(attributes, n_cases):
        print(line)
    sys.exit(0)


if __name__ == "__main__":
    main()
