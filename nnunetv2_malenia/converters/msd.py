"""``nnUNetv2_malenia_convert_msd TASK_FOLDER``: a Medical Segmentation Decathlon lesion task -> nnU-Net raw dataset
with Malenia's lesion labels and ``malenia_attributes.json``.

Supported tasks and what their labels become (organ labels merge into background unless ``--keep-organ-label``):

=====================  ==========================================  ==========================================
task folder            MSD labels                                  output lesion label (knowledge-table disease)
=====================  ==========================================  ==========================================
Task03_Liver           1 liver, 2 cancer                           liver tumor
Task06_Lung            1 cancer                                    lung tumor
Task07_Pancreas        1 pancreas, 2 cancer                        pancreas tumor / pancreas cyst (see below)
Task08_HepaticVessel   1 vessel, 2 tumour                          hepatic vessel tumor
Task10_Colon           1 colon cancer primaries                    colon tumor
=====================  ==========================================  ==========================================

Pancreas tumour or cyst. MSD's label 2 holds every pancreatic mass (tumours and cystic lesions). The paper split
them by radiologist review; that review is published only as the annotation spreadsheet. The rule here is per
case: a case with a row on the pancreas-cyst sheet (胰腺囊肿) and none on the pancreas-tumour sheet (胰腺癌) gets
its label 2 as "pancreas cyst"; every other case keeps "pancreas tumor" (a case on both sheets too, with a warning:
its voxels cannot be split without a per-lesion review). Without ``--annotations`` every lesion is
"pancreas tumor". The label "pancreas cyst" is only added when at least one case is a cyst case.

The source is read the way MSD ships it: ``dataset.json`` (fields ``labels``, ``modality``, ``training`` with
``image``/``label``, ``test``) names the files, so the macOS ``._*`` files in the archives are never touched.
Images are copied (4D ones split by nnU-Net's ``split_4d_nifti``); test images go to imagesTs.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_malenia.converters.common import (FILE_ENDING, CaseJob, Conversion, SourceLabel, add_common_arguments,
                                                check_diseases, check_target, id_mapping_for, output_root,
                                                plan_labels, read_annotations, read_reports, run_main, write_dataset)
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.utils.cli import make_parser

PANCREAS_CYST = "pancreas cyst"
PANCREAS_TUMOR = "pancreas tumor"


@dataclass(frozen=True)
class MSDTask:
    folder: str                        # TaskXX_Name, as MSD names its archives
    labels: Tuple[SourceLabel, ...]


def _organ(value: int, name: str, organ: str, aliases: Sequence[str], description: str) -> SourceLabel:
    return SourceLabel(value, name, organ, False, tuple(aliases), description)


def _lesion(value: int, disease: str, organ: str, aliases: Sequence[str]) -> SourceLabel:
    return SourceLabel(value, disease, organ, True, tuple(aliases))


# Aliases are the names MSD's dataset.json files use (compared case-insensitively), plus obvious spellings.
TASKS: Dict[str, MSDTask] = {t.folder: t for t in (
    MSDTask("Task03_Liver", (_organ(1, "liver", "liver", ["liver"], "normal liver parenchyma"),
                             _lesion(2, "liver tumor", "liver", ["cancer", "tumour", "tumor"]))),
    MSDTask("Task06_Lung", (_lesion(1, "lung tumor", "lung", ["cancer", "tumour", "tumor", "nodule"]),)),
    MSDTask("Task07_Pancreas", (_organ(1, "pancreas", "pancreas", ["pancreas"], "normal pancreas parenchyma"),
                                _lesion(2, PANCREAS_TUMOR, "pancreas", ["cancer", "tumour", "tumor"]))),
    MSDTask("Task08_HepaticVessel", (_organ(1, "hepatic vessel", "liver", ["vessel", "vessels"],
                                            "hepatic vessels with contrast enhancement"),
                                     _lesion(2, "hepatic vessel tumor", "liver", ["tumour", "tumor", "cancer"]))),
    MSDTask("Task10_Colon", (_lesion(1, "colon tumor", "colon", ["colon cancer primaries", "colon cancer",
                                                                 "cancer", "tumour", "tumor"]),)),
)}
_TASK_FOLDER = re.compile(r"^Task(\d+)_(\w+)$")


def identify_task(folder: Path) -> Tuple[MSDTask, int, str]:
    """(task, MSD task number, name) from the folder name, which MSD's archives fix (Task03_Liver, ...)."""
    match = _TASK_FOLDER.match(folder.name)
    if match is None or folder.name not in TASKS:
        raise MaleniaInputError(Problem(str(folder), "", f"not a supported MSD lesion task folder; expected one of "
                                                         f"{', '.join(TASKS)} (the folder name of the MSD archive)"))
    return TASKS[folder.name], int(match.group(1)), match.group(2)


def _relative_file(folder: Path, entry, dj: str, where: str, subfolder: str, problems: List[Problem]
                   ) -> Optional[Path]:
    """An MSD path such as ``./imagesTr/liver_0.nii.gz`` -> existing file in ``subfolder``, else a problem."""
    if not isinstance(entry, str) or not entry.endswith(FILE_ENDING):
        problems.append(Problem(dj, where, f"expected a path like ./{subfolder}/<case>{FILE_ENDING}, got {entry!r}"))
        return None
    path = folder / entry
    if path.parent.name != subfolder:
        problems.append(Problem(dj, where, f"{entry!r} is not in {subfolder}/"))
        return None
    if not path.is_file():
        problems.append(Problem(dj, where, f"file not found: {path}"))
        return None
    return path


def read_msd_dataset_json(folder: Path, task: MSDTask
                          ) -> Tuple[dict, List[Tuple[str, Path, Path]], List[Tuple[str, Path]]]:
    """MSD's dataset.json, checked against the task: (json, [(case, image, label)], [(case, test image)])."""
    from nnunetv2_malenia.attributes.schema import read_json

    dj_path = folder / "dataset.json"
    if not dj_path.is_file():
        raise MaleniaInputError(Problem(str(dj_path), "", "dataset.json not found; an MSD task folder has "
                                                          "dataset.json, imagesTr, labelsTr and imagesTs"))
    dj = read_json(dj_path, "MSD dataset.json")
    f = str(dj_path)
    problems: List[Problem] = []
    labels = dj.get("labels")
    expected = {"0": ("background",), **{str(s.value): s.aliases for s in task.labels}}
    if not isinstance(labels, dict):
        problems.append(Problem(f, "labels", "missing or not an object of value -> name"))
    else:
        for value, aliases in expected.items():
            name = labels.get(value)
            if not isinstance(name, str) or name.strip().lower() not in aliases:
                problems.append(Problem(f, f"labels.{value}", f"expected {aliases[0]!r} for {task.folder}, found "
                                                              f"{name!r}; is this the right task folder?"))
        for value in labels:
            if value not in expected:
                problems.append(Problem(f, f"labels.{value}", f"unexpected label {labels[value]!r} for "
                                                              f"{task.folder} (expected values {', '.join(expected)})"))
    modality = dj.get("modality")
    if not isinstance(modality, dict) or [str(v).upper() for v in modality.values()] != ["CT"]:
        problems.append(Problem(f, "modality", f"expected {{\"0\": \"CT\"}}, found {modality!r}"))
    training = dj.get("training")
    train: List[Tuple[str, Path, Path]] = []
    if not isinstance(training, list) or not training:
        problems.append(Problem(f, "training", "missing or empty; expected a list of {\"image\", \"label\"}"))
        training = []
    for i, item in enumerate(training):
        if not isinstance(item, dict):
            problems.append(Problem(f, f"training[{i}]", "expected an object with 'image' and 'label'"))
            continue
        image = _relative_file(folder, item.get("image"), f, f"training[{i}].image", "imagesTr", problems)
        label = _relative_file(folder, item.get("label"), f, f"training[{i}].label", "labelsTr", problems)
        if image is not None and label is not None:
            if image.name != label.name:
                problems.append(Problem(f, f"training[{i}]", f"image {image.name} and label {label.name} differ"))
            else:
                train.append((image.name[:-len(FILE_ENDING)], image, label))
    test: List[Tuple[str, Path]] = []
    raw_test = dj.get("test", [])
    if not isinstance(raw_test, list):
        problems.append(Problem(f, "test", "expected a list of image paths"))
        raw_test = []
    for i, entry in enumerate(raw_test):
        image = _relative_file(folder, entry, f, f"test[{i}]", "imagesTs", problems)
        if image is not None:
            test.append((image.name[:-len(FILE_ENDING)], image))
    cases = [c for c, _, _ in train] + [c for c, _ in test]
    duplicates = sorted({c for c in cases if cases.count(c) > 1})
    if duplicates:
        problems.append(Problem(f, "training/test", f"cases listed twice: {', '.join(duplicates[:10])}"))
    if problems:
        raise MaleniaInputError(problems)
    return dj, train, test


def pancreas_cyst_cases(annotations, case_ids: Sequence[str], warn) -> List[str]:
    """Cases whose MSD label 2 is a cyst by the spreadsheet rule (module docstring)."""
    if annotations is None:
        return []
    cysts = annotations.cases_of(PANCREAS_CYST)
    tumours = annotations.cases_of(PANCREAS_TUMOR)
    known = set(case_ids)
    out = []
    for case, row in sorted(cysts.items()):
        if case not in known:
            continue                     # import_rows reports unknown ids once, with the rest
        if case in tumours:
            warn(f"{annotations.file}: case {case} is on both the pancreas cyst (row {row}) and the pancreas tumour "
                 f"(row {tumours[case]}) sheets; its lesion stays 'pancreas tumor' and the cyst row is not used")
            continue
        out.append(case)
    return out


def build_conversion(args: argparse.Namespace) -> Tuple[Conversion, object, Path]:
    from nnunetv2_malenia.converters.common import _warn

    folder = Path(args.task_folder).resolve()
    if not folder.is_dir():
        raise MaleniaInputError(Problem(str(folder), "", "task folder not found"))
    task, number, name = identify_task(folder)
    lesions = [s.name for s in task.labels if s.is_lesion]
    is_pancreas = task.folder == "Task07_Pancreas"
    diseases = lesions + ([PANCREAS_CYST] if is_pancreas else [])
    check_diseases(diseases)
    dj, train, test = read_msd_dataset_json(folder, task)
    annotations = read_annotations(args.annotations, args.id_mapping, diseases)
    case_ids = [c for c, _, _ in train]

    notes: List[str] = []
    cyst_cases: List[str] = []
    if is_pancreas:
        if annotations is None:
            notes.append("Pancreas: no annotation spreadsheet given, so every MSD label-2 lesion is 'pancreas tumor' "
                         "(MSD does not tell tumours from cysts; pass --annotations to use the pancreas-cyst rows).")
        else:
            cyst_cases = pancreas_cyst_cases(annotations, case_ids, _warn)
            if cyst_cases:
                notes.append(f"Pancreas: MSD label 2 is 'pancreas cyst' in the {len(cyst_cases)} case(s) on the "
                             f"spreadsheet's pancreas-cyst sheet only, 'pancreas tumor' in all others.")
            else:
                notes.append("Pancreas: the spreadsheet has no pancreas-cyst row for any case of this dataset, so "
                             "every MSD label-2 lesion is 'pancreas tumor'.")
    extra = [(PANCREAS_CYST, "pancreas")] if cyst_cases else []
    plan = plan_labels(task.labels, args.keep_organ_label, extra)
    lesion_value = next(s.value for s in task.labels if s.is_lesion and s.name == PANCREAS_TUMOR) if is_pancreas else 0
    cyst_set = set(cyst_cases)

    root = output_root(args.output_root)
    target = check_target(root, args.dataset_id if args.dataset_id is not None else number, name, args.overwrite)
    jobs = []
    case_lesions: Dict[str, List[str]] = {}
    for case, image, label in train:
        in_cyst = case in cyst_set
        jobs.append(CaseJob(case, str(image), str(target / "imagesTr" / f"{case}_0000{FILE_ENDING}"), str(label),
                            str(target / "labelsTr" / f"{case}{FILE_ENDING}"),
                            plan.lut_with({lesion_value: PANCREAS_CYST}) if in_cyst else plan.default_lut,
                            split_4d=True))
        case_lesions[case] = [PANCREAS_CYST] if in_cyst else lesions
    test_jobs = [CaseJob(case, str(image), str(target / "imagesTs" / f"{case}_0000{FILE_ENDING}"), split_4d=True)
                 for case, image in test]
    organs = {s.name: s.organ for s in task.labels if s.is_lesion}
    organs[PANCREAS_CYST] = "pancreas"
    conversion = Conversion(
        name=name, source=f"MSD {task.folder}", plan=plan, organs=organs, train=jobs, test=test_jobs,
        case_lesions=case_lesions, notes=notes,
        dataset_json=dict(channel_names={"0": "CT"}, dataset_name=name, description=dj.get("description"),
                          reference=dj.get("reference"), release=dj.get("release"),
                          license=dj.get("licence", dj.get("license", "see the MSD task's dataset.json")),
                          converted_by="nnUNetv2_malenia_convert_msd",
                          malenia_label_mapping=_mapping_note(task.labels, plan.labels, cyst_cases)))
    return conversion, annotations, target


def _mapping_note(source: Sequence[SourceLabel], labels: Dict[str, int], cyst_cases: Sequence[str]) -> Dict[str, str]:
    """Source value -> what it became, kept in dataset.json so the conversion can be traced later."""
    out = {str(s.value): (s.name if s.name in labels else "background (organ label dropped)") for s in source}
    if cyst_cases:
        out["2"] += f"; {PANCREAS_CYST} in {len(cyst_cases)} case(s) by the spreadsheet's pancreas-cyst rows"
    return out


def run(args: argparse.Namespace) -> Path:
    conversion, annotations, target = build_conversion(args)
    reports, reports_file = read_reports(args.reports, id_mapping_for(annotations, args.id_mapping))
    for note in conversion.notes:
        print(note)
    return write_dataset(conversion, target, annotations, reports, reports_file, args.num_processes, args.verify)


def _paragraphs(text: str) -> str:
    """Wrap each paragraph for the terminal; RawDescriptionHelpFormatter keeps the blank line between them."""
    import textwrap

    return "\n\n".join(textwrap.fill(p, 100) for p in text.split("\n\n"))


def parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nnUNetv2_malenia_convert_msd",
        _paragraphs("Convert an MSD lesion task (" + ", ".join(TASKS) + ") into an nnU-Net raw dataset with "
                    "lesion labels named by knowledge-table disease and a malenia_attributes.json. Per-case "
                    "attributes: spreadsheet rows, then parsed reports, then the knowledge-table defaults.\n\n"
                    "Pancreas: MSD label 2 holds tumours and cysts. With --annotations, cases on the spreadsheet's "
                    "pancreas-cyst sheet (and not on its tumour sheet) become 'pancreas cyst'; all others, and all "
                    "cases without --annotations, stay 'pancreas tumor'."))
    p.add_argument("task_folder", metavar="TASK_FOLDER", help="extracted MSD task, e.g. /data/Task03_Liver")
    add_common_arguments(p, "default: the MSD task number, as nnUNetv2_convert_MSD_dataset uses")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
