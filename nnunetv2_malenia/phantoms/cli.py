"""nnUNetv2_malenia_phantoms: write the embedded phantom CT dataset (nnU-Net raw format + Malenia attributes)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaInputError, exit_with_problems
from nnunetv2_malenia.utils.cli import make_parser

# Malenia's 16 tokens: one stays free for background, so at most 15 lesion instances per case are matched.
MAX_LESIONS_PER_CASE = 15


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("nnUNetv2_malenia_phantoms", __doc__)
    p.add_argument("-d", dest="dataset_id", type=int, required=True, help="nnU-Net dataset id, 1..999 (e.g. 901)")
    p.add_argument("-o", dest="root", required=True, help="nnUNet_raw-like root; writes ROOT/DatasetID_NAME")
    p.add_argument("--split", choices=("seen", "unseen", "all", "user"), default="all",
                   help="label the paper's seen diseases, its unseen ones, all, or only the diseases of the "
                        "--knowledge-table files that are not the paper's (a test set for a new disease; default all)")
    p.add_argument("--cases", type=int, default=20, help="training cases (imagesTr)")
    p.add_argument("--test-cases", type=int, default=0, help="test cases (imagesTs/labelsTs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DatasetID_NAME (as the converters)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--size", type=int, nargs=3, default=(64, 64, 64), metavar=("X", "Y", "Z"),
                   help="image size in voxels")
    p.add_argument("--spacing", type=float, nargs=3, default=(5.0, 5.0, 5.0), metavar=("X", "Y", "Z"),
                   help="voxel spacing in mm")
    p.add_argument("--min-lesion-radius", type=float, default=1.5, metavar="VOXELS",
                   help="smallest lesion radius in voxels (the CPU regime uses 3)")
    p.add_argument("--lesions-per-case", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"),
                   help="lesions per case, drawn uniformly (default 1 3; the CPU regime uses 2 4)")
    p.add_argument("--name", default="MaleniaPhantom", help="dataset name after DatasetID_")
    p.add_argument("--with-unlabeled-unseen", action="store_true",
                   help="seen split: also render unseen lesions, unlabelled (background)")
    p.add_argument("--organ-labels", action="store_true", help="add one label per organ")
    p.add_argument("--knowledge-table", action="append", default=[],
                   help="extra knowledge table JSON file (repeatable); copied into the dataset")
    p.add_argument("--preview", help="folder for PNG slices through the lesions of the first cases")
    p.add_argument("--background", help="real-anatomy mode: a CT (.nii.gz) to insert lesions into")
    p.add_argument("--organs", help="real-anatomy mode: folder of organ masks (liver.nii.gz, kidney_left.nii.gz, ...)")
    p.add_argument("-np", dest="num_processes", type=int, default=2, help="worker processes")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except MaleniaInputError as e:
        exit_with_problems(e)


def run(args) -> Path:
    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.converters.common import atomic_folder, check_target
    from nnunetv2_malenia.errors import Problem
    from nnunetv2_malenia.utils.cli import folder_problems
    from nnunetv2_malenia.phantoms.dataset import split_diseases, write_phantom_dataset
    from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case
    from nnunetv2_malenia.phantoms.preview import write_preview

    problems = []
    if min(args.size) < 16:
        problems.append(Problem("", "--size", "each dimension must be at least 16 voxels"))
    if min(args.spacing) <= 0:
        problems.append(Problem("", "--spacing", "must be positive"))
    if args.min_lesion_radius < 1:
        problems.append(Problem("", "--min-lesion-radius", "must be at least 1 voxel"))
    low, high = args.lesions_per_case
    if not 1 <= low <= high <= MAX_LESIONS_PER_CASE:
        problems.append(Problem("", "--lesions-per-case", f"{low} {high}: need 1 <= MIN <= MAX <= "
                                f"{MAX_LESIONS_PER_CASE} (a case's lesions each need a mask token)"))
    if args.cases < 1 or args.test_cases < 0:
        problems.append(Problem("", "--cases", "need at least one training case and no negative test cases"))
    if bool(args.background) != bool(args.organs):
        problems.append(Problem("", "--background/--organs", "real-anatomy mode needs both"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        # nnU-Net splits Dataset<ID>_<Name> at the first '_' and uses the name in paths
        problems.append(Problem("", "--name", f"{args.name!r}: use letters, digits, '_', '.', '-' only"))
    if args.preview:
        problems += folder_problems(args.preview, "--preview")
    if problems:
        raise MaleniaInputError(problems)
    # Before any rendering: a taken id, a second name for the same id or an existing dataset without --overwrite.
    folder = check_target(Path(args.root), args.dataset_id, args.name, args.overwrite)
    table = load_knowledge_table(args.knowledge_table)
    labelled, unlabelled = split_diseases(table, args.split, args.with_unlabeled_unseen)
    config = PhantomConfig(size=tuple(args.size), spacing=tuple(args.spacing), labelled=labelled,
                           unlabelled=unlabelled, organ_labels=args.organ_labels, seed=args.seed,
                           min_lesion_radius=args.min_lesion_radius, lesions_per_case=(low, high),
                           background=args.background, organs=args.organs)
    if args.background:
        from nnunetv2_malenia.phantoms.dataset import restrict_to_background

        config, skipped = restrict_to_background(config, table)
        for name in skipped:
            print(f"skipped {name!r}: its organ has no mask in {args.organs}", file=sys.stderr)
    # Rendered into a hidden folder renamed at the end: no case of an earlier run can survive in the result, and
    # an interrupted run leaves nothing nnU-Net would pick up.
    with atomic_folder(folder) as tmp:
        write_phantom_dataset(tmp, table, config, args.cases, args.test_cases, args.num_processes,
                              dataset_name=folder.name)
    if args.preview:
        for i in range(min(3, args.cases)):
            case = generate_case(table.diseases, config, i)
            write_preview(case.image, case.label, case.lesions, Path(args.preview), f"phantom_{i:05d}",
                          case.geometry[2] if case.geometry else None)
    print(f"wrote {folder}")
    return folder


if __name__ == "__main__":
    main()
