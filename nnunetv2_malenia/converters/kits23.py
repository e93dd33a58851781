"""``nnUNetv2_malenia_convert_kits23 FOLDER``: KiTS23 -> nnU-Net raw dataset with Malenia's lesion labels.

KiTS23 layout (the kits23 repository after ``kits23_download_data``)::

    FOLDER/dataset/case_00000/imaging.nii.gz          (FOLDER may also be the dataset/ folder itself)
                             /segmentation.nii.gz     0 background, 1 kidney, 2 tumor, 3 cyst
                             /instances/...           per-annotator instance masks (not used)

Labels become "kidney tumor" (2) and "kidney cyst" (3); the kidney (1) merges into background unless
``--keep-organ-label``. Per-case attributes come from the spreadsheet's kidney tumour/cyst sheets (ids
``case_00000``), then parsed reports, then the knowledge table. The dataset.json names the reader nnU-Net's own
KiTS23 conversion uses (NibabelIOWithReorient); segmentations are rewritten with the source header, so images and
labels keep matching geometry under any reader.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import List, Optional, Sequence

from nnunetv2_malenia.converters.common import (FILE_ENDING, CaseJob, Conversion, SourceLabel, add_common_arguments,
                                                check_diseases, check_target, id_mapping_for, output_root,
                                                plan_labels, read_annotations, read_reports, run_main, write_dataset)
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.utils.cli import make_parser

DATASET_NAME = "KiTS2023"
DEFAULT_ID = 220                      # nnU-Net's own KiTS23 conversion (Dataset220_KiTS2023.py) uses 220 too
SOURCE_LABELS = (
    SourceLabel(1, "kidney", "kidney", False, ("kidney",), "normal kidney parenchyma"),
    SourceLabel(2, "kidney tumor", "kidney", True, ("tumor",)),
    SourceLabel(3, "kidney cyst", "kidney", True, ("cyst",)),
)
_CASE = re.compile(r"^case_\d{5}$")


def find_cases(folder: Path) -> List[Path]:
    """The ``case_XXXXX`` folders, each with imaging and segmentation; every missing file is one problem."""
    if not folder.is_dir():
        raise MaleniaInputError(Problem(str(folder), "", "KiTS23 folder not found"))
    base = folder / "dataset" if (folder / "dataset").is_dir() else folder
    cases = sorted(p for p in base.iterdir() if p.is_dir() and _CASE.match(p.name))
    if not cases:
        raise MaleniaInputError(Problem(str(base), "", "no case_XXXXX folders; expected the KiTS23 layout "
                                                       "dataset/case_00000/{imaging,segmentation}.nii.gz"))
    problems = []
    for case in cases:
        for name, hint in (("imaging.nii.gz", "download the images with kits23_download_data"),
                           ("segmentation.nii.gz", "every KiTS23 training case has one")):
            if not (case / name).is_file():
                problems.append(Problem(str(case / name), "", f"file not found ({hint})"))
    if problems:
        raise MaleniaInputError(problems)
    return cases


def build_conversion(args: argparse.Namespace):
    lesions = [s.name for s in SOURCE_LABELS if s.is_lesion]
    check_diseases(lesions)
    cases = find_cases(Path(args.folder).resolve())
    annotations = read_annotations(args.annotations, args.id_mapping, lesions)
    plan = plan_labels(SOURCE_LABELS, args.keep_organ_label)
    target = check_target(output_root(args.output_root),
                          args.dataset_id if args.dataset_id is not None else DEFAULT_ID, DATASET_NAME, args.overwrite)
    jobs = [CaseJob(c.name, str(c / "imaging.nii.gz"), str(target / "imagesTr" / f"{c.name}_0000{FILE_ENDING}"),
                    str(c / "segmentation.nii.gz"), str(target / "labelsTr" / f"{c.name}{FILE_ENDING}"),
                    plan.default_lut) for c in cases]
    conversion = Conversion(
        name=DATASET_NAME, source="KiTS23", plan=plan, organs={l: "kidney" for l in lesions}, train=jobs, test=[],
        case_lesions={c.name: list(lesions) for c in cases},
        dataset_json=dict(channel_names={"0": "CT"}, dataset_name=DATASET_NAME,
                          reference="https://kits-challenge.org/kits23/",
                          license="see the KiTS23 data licence at https://kits-challenge.org/kits23/",
                          description="KiTS23 kidney tumours and cysts",
                          overwrite_image_reader_writer="NibabelIOWithReorient",
                          converted_by="nnUNetv2_malenia_convert_kits23",
                          malenia_label_mapping={str(s.value): (s.name if s.name in plan.labels else
                                                                "background (organ label dropped)")
                                                 for s in SOURCE_LABELS}))
    return conversion, annotations, target


def run(args: argparse.Namespace) -> Path:
    conversion, annotations, target = build_conversion(args)
    reports, reports_file = read_reports(args.reports, id_mapping_for(annotations, args.id_mapping))
    return write_dataset(conversion, target, annotations, reports, reports_file, args.num_processes, args.verify)


def parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nnUNetv2_malenia_convert_kits23",
        "Convert KiTS23 (case_XXXXX/imaging.nii.gz + segmentation.nii.gz; labels 1 kidney, 2 tumor, "
                    "3 cyst) into an nnU-Net raw dataset with the lesion labels 'kidney tumor' and 'kidney cyst' "
                    "and a malenia_attributes.json (spreadsheet rows, then parsed reports, then knowledge-table "
                    "defaults).")
    p.add_argument("folder", metavar="FOLDER", help="the kits23 repository or its dataset/ folder")
    add_common_arguments(p, f"default: {DEFAULT_ID}, as nnU-Net's KiTS23 conversion")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
