"""What the MSD and KiTS23 converters share: label plans, the per-case worker, attribute assembly, atomic output.

A converter describes its source labels (:class:`SourceLabel`), lists its cases (:class:`CaseJob`) and hands both to
:func:`convert_dataset`, which

1. checks every lesion disease against the knowledge table,
2. reads the annotation spreadsheet and parsed reports (when given) and keeps what belongs to this dataset,
3. writes the dataset into a hidden temporary folder next to the target (segmentations remapped, images copied),
4. writes ``dataset.json`` (nnU-Net's ``generate_dataset_json``) and ``malenia_attributes.json``,
5. validates the result with ``nnunetv2_malenia.attributes.check`` (cheap) and, with ``--verify``, nnU-Net's
   ``verify_dataset_integrity`` (reads every image again),
6. renames the temporary folder onto ``Dataset<ID>_<Name>``; any error on the way removes it instead.

Per-case attributes, per aspect, in order of preference: the spreadsheet row for that case and lesion type, then the
parsed report, then nothing (the label's knowledge-table disease describes the case).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems
from nnunetv2_malenia.paths import DATASET_ATTRIBUTES_FILENAME

FILE_ENDING = ".nii.gz"
FORMAT_VERSION = 1


# --- label plans -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceLabel:
    """One foreground value of the source segmentation and what it becomes."""

    value: int
    name: str                          # output label name: the disease for lesions, the organ label otherwise
    organ: str                         # organ the label lives in (organ labels: the organ itself)
    is_lesion: bool
    aliases: Tuple[str, ...] = ()      # names the source's own dataset.json uses for it (lower case)
    description: str = ""              # organ labels: text for the attribute file when kept


@dataclass(frozen=True)
class LabelPlan:
    """Output labels of a conversion and, per case, how source values map onto them."""

    labels: Dict[str, int]             # output name -> value, background first, consecutive
    entries: Dict[str, dict]           # output name -> labels entry of malenia_attributes.json
    default_lut: Tuple[int, ...]       # source value -> output value
    source_values: Tuple[int, ...]     # every valid source value (0 included)

    def lut_with(self, overrides: Mapping[int, str]) -> Tuple[int, ...]:
        """The default mapping with some source values sent to other output labels (one case's review)."""
        lut = list(self.default_lut)
        for value, name in overrides.items():
            lut[value] = self.labels[name]
        return tuple(lut)


def plan_labels(source: Sequence[SourceLabel], keep_organ_label: bool,
                extra_lesions: Sequence[Tuple[str, str]] = ()) -> LabelPlan:
    """Consecutive output values in source order; dropped organ labels become background (0).

    ``extra_lesions`` are (disease, organ) labels with no source value of their own (pancreas cyst: source value 2
    is sent there case by case, see :meth:`LabelPlan.lut_with`)."""
    labels: Dict[str, int] = {"background": 0}
    entries: Dict[str, dict] = {}
    lut = [0] * (max(s.value for s in source) + 1)
    for s in sorted(source, key=lambda s: s.value):
        if not s.is_lesion and not keep_organ_label:
            continue                  # merged into background: Malenia learns lesions, the organ is context
        labels[s.name] = len(labels)
        lut[s.value] = labels[s.name]
        entries[s.name] = ({"disease": s.name} if s.is_lesion else
                           {"organ": s.organ, "description": s.description or f"normal {s.organ}"})
    for disease, _organ in extra_lesions:
        labels[disease] = len(labels)
        entries[disease] = {"disease": disease}
    return LabelPlan(labels=labels, entries=entries, default_lut=tuple(lut),
                     source_values=(0,) + tuple(sorted(s.value for s in source)))


def check_diseases(diseases: Sequence[str]) -> None:
    """Every lesion label must name a knowledge-table disease, or training could not describe it."""
    from nnunetv2_malenia.attributes.knowledge_table import load_knowledge_table

    table = load_knowledge_table()
    missing = [d for d in diseases if d not in table]
    if missing:
        raise MaleniaInputError([Problem(table.files[-1], f"diseases.{d}",
                                         f"disease {d!r} needed by this conversion is not in the knowledge table "
                                         f"(it has: {', '.join(table.names)})") for d in missing])


# --- per-case work (runs in worker processes) --------------------------------------------------------------------

@dataclass(frozen=True)
class CaseJob:
    case: str
    image: str                         # source image file
    image_out: str                     # target ``<case>_0000.nii.gz`` (MSD 4D images: the _0000 of the split)
    label: Optional[str] = None        # source segmentation; None for test images
    label_out: Optional[str] = None
    lut: Tuple[int, ...] = ()          # source value -> output value
    split_4d: bool = False             # MSD: 4D images are split into channels by nnU-Net's own helper


@dataclass
class CaseResult:
    case: str
    problems: List[Problem] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    present: Tuple[int, ...] = ()      # output values present in the written segmentation


def _load_header(path: str, what: str, result: CaseResult):
    import nibabel as nib

    try:
        return nib.load(path)          # lazy: reads the header only
    except Exception as e:             # nibabel raises several types for non-NIfTI input (e.g. macOS ._ files)
        result.problems.append(Problem(path, "", f"cannot read {what} as NIfTI ({type(e).__name__}: {e})"))
        return None


def convert_case(job: CaseJob) -> CaseResult:
    """Copy one image and write its remapped segmentation; problems are returned, not raised, so the user sees
    every bad case of a run at once."""
    result = CaseResult(job.case)
    image = _load_header(job.image, "image", result)
    if image is None:
        return result
    if len(image.shape) == 4 and job.split_4d:
        from nnunetv2.dataset_conversion.convert_MSD_dataset import split_4d_nifti

        split_4d_nifti(job.image, os.path.dirname(job.image_out))
    elif len(image.shape) != 3:
        result.problems.append(Problem(job.image, "", f"expected a 3D CT volume, got shape {tuple(image.shape)}"))
        return result
    else:
        shutil.copyfile(job.image, job.image_out)   # byte copy keeps the header exactly as the source has it
    if job.label is None:
        return result
    seg = _load_header(job.label, "segmentation", result)
    if seg is None:
        return result
    if tuple(seg.shape[:3]) != tuple(image.shape[:3]):
        result.problems.append(Problem(job.label, "", f"segmentation shape {tuple(seg.shape)} differs from image "
                                                      f"shape {tuple(image.shape)} of {job.image}"))
        return result
    if not np.allclose(seg.affine, image.affine, atol=1e-3):
        # nnU-Net's verify_dataset_integrity treats this as a warning too: tiny header drifts are common
        result.warnings.append(f"{job.label}: affine differs from the image's ({job.image})")
    data = np.asanyarray(seg.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            result.problems.append(Problem(job.label, "", f"segmentation has non-integer values (dtype {data.dtype})"))
            return result
    data = data.astype(np.int64, copy=False)
    lut = np.asarray(job.lut, dtype=np.uint8)
    bad = (data < 0) | (data >= len(lut))
    if bad.any():
        values = np.unique(data[bad])
        result.problems.append(Problem(job.label, "", f"unexpected label values {values[:10].tolist()}; expected "
                                                      f"{list(range(len(lut)))}"))
        return result
    out = lut[data]                                                                 # [X, Y, Z] as stored
    result.present = tuple(int(v) for v in np.flatnonzero(np.bincount(out.ravel(), minlength=1)) if v)
    written = type(seg)(out, seg.affine, seg.header)
    written.header.set_data_dtype(np.uint8)
    import nibabel as nib

    nib.save(written, job.label_out)
    return result


def run_jobs(jobs: Sequence[CaseJob], num_processes: int, desc: str) -> List[CaseResult]:
    """All jobs with a tqdm bar; one process runs in-line (no spawn cost), more use a spawn pool like nnU-Net."""
    from tqdm import tqdm

    if num_processes <= 1 or len(jobs) <= 1:
        return [convert_case(j) for j in tqdm(jobs, desc=desc, unit="case")]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs))) as pool:
        return list(tqdm(pool.imap(convert_case, jobs), total=len(jobs), desc=desc, unit="case"))


# --- spreadsheet and reports -------------------------------------------------------------------------------------

@dataclass
class Annotations:
    """The spreadsheet rows that belong to this dataset, ready for import_rows."""

    file: str
    rows: list                                    # AnnotationRow of this dataset's sheets
    problems: List[Problem]                       # reading problems of those sheets
    id_mapping: Dict[str, str]

    def case_id(self, row) -> Optional[str]:
        from nnunetv2_malenia.attributes.import_annotations import default_case_id

        key = row.raw_case_id.strip()
        return self.id_mapping[key] if key in self.id_mapping else default_case_id(row.raw_case_id)[0]

    def cases_of(self, disease: str) -> Dict[str, int]:
        """Case id -> sheet row, for every row of ``disease`` whose id maps to a case (codes valid or not)."""
        out: Dict[str, int] = {}
        for r in self.rows:
            case = self.case_id(r)
            if r.disease == disease and case is not None:
                out.setdefault(case, r.row)
        return out


def read_annotations(xlsx: Optional[str], id_mapping_file: Optional[str], diseases: Sequence[str]
                     ) -> Optional[Annotations]:
    """The rows of the sheets whose disease this dataset has; other sheets are ignored silently (the authors'
    workbook holds every dataset in one file)."""
    if xlsx is None:
        return None
    from nnunetv2_malenia.attributes.import_annotations import read_annotation_workbook, read_id_mapping
    from nnunetv2_malenia.attributes.schema import load_vocabulary

    vocab = load_vocabulary()
    mapping = read_id_mapping(id_mapping_file) if id_mapping_file else {}
    rows, problems = read_annotation_workbook(xlsx, vocab)
    other = [s for s, info in vocab.spreadsheet_sheets.items() if info["disease"] not in diseases]
    problems = [p for p in problems if not any(p.where.startswith(f"sheet {s} ") or p.where == f"sheet {s}"
                                               for s in other)]
    return Annotations(str(xlsx), [r for r in rows if r.disease in diseases], problems, mapping)


def id_mapping_for(annotations: Optional[Annotations], path: Optional[str]) -> Dict[str, str]:
    """The spreadsheet id mapping also applies to report case ids (reports often come from the same sheet)."""
    if annotations is not None:
        return annotations.id_mapping
    from nnunetv2_malenia.attributes.import_annotations import read_id_mapping

    return read_id_mapping(path) if path else {}


def read_reports(path: Optional[str], id_mapping: Mapping[str, str]) -> Tuple[Dict[str, Dict[str, dict]], str]:
    """The ``cases`` section of ``nnUNetv2_malenia_parse_reports`` output (or of any attribute file), validated:
    case -> report label -> aspect -> value keys."""
    if path is None:
        return {}, ""
    from nnunetv2_malenia.attributes.knowledge_table import parse_aspect_map
    from nnunetv2_malenia.attributes.schema import load_vocabulary, read_json

    raw = read_json(path, "parsed reports")
    cases = raw.get("cases")
    if not isinstance(cases, dict):
        raise MaleniaInputError(Problem(str(path), "cases", "missing; expected the output of nnUNetv2_malenia_"
                                                            "parse_reports (case -> label -> aspects)"))
    vocab = load_vocabulary()
    problems: List[Problem] = []
    out: Dict[str, Dict[str, dict]] = {}
    for case, per_label in cases.items():
        if not isinstance(per_label, dict):
            problems.append(Problem(str(path), f"cases.{case}", "must be an object of label -> aspects"))
            continue
        for label, aspects in per_label.items():
            where = f"cases.{case}.{label}"
            if not isinstance(aspects, dict):
                problems.append(Problem(str(path), where, "must be an object of aspect -> value keys"))
                continue
            n = len(problems)
            parse_aspect_map(aspects, vocab, str(path), where, problems, require_all=False)
            if len(problems) == n:
                mapped = id_mapping.get(str(case).strip(), str(case).strip())
                out.setdefault(mapped, {})[label] = {a: ([v] if isinstance(v, str) else list(v))
                                                     for a, v in aspects.items()}
    if problems:
        raise MaleniaInputError(problems)
    return out, str(path)


def _report_label(report_label: str, case_lesions: Sequence[str], present: Sequence[str],
                  organs: Mapping[str, str]) -> Optional[str]:
    """Output lesion label a report's label refers to: its own name when it is one of ours; an organ (or any other
    name, as parse_reports files reports under the organ when given only --organ) only when exactly one lesion label
    of the case is left, preferring those its segmentation contains; else None (ambiguous)."""
    if report_label in case_lesions:
        return report_label
    if report_label in organs:
        return None                   # another lesion type of this dataset (a cyst report for a tumour case)
    for pool in ([l for l in present if l in case_lesions], list(case_lesions)):
        candidates = [l for l in pool if organs[l] == report_label] or pool
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            return None
    return None


def assemble_cases(case_ids: Sequence[str], case_lesions: Mapping[str, Sequence[str]], organs: Mapping[str, str],
                   present: Mapping[str, Sequence[str]], annotations: Optional[Annotations], reports: Mapping[str, Mapping[str, dict]], reports_file: str,
                   warn: Callable[[str], None]) -> Tuple[Dict[str, Dict[str, dict]], Dict[str, int]]:
    """The ``cases`` section: per case and lesion label, report aspects overlaid by spreadsheet aspects.

    ``case_lesions``: the lesion labels each case may carry (its pancreas lesion is tumour *or* cyst, ...);
    ``present``: those its written segmentation contains (resolves reports filed under the organ's name).
    Returns the section and counts of (case, label) entries per source."""
    from nnunetv2_malenia.attributes.import_annotations import import_rows

    merged: Dict[str, Dict[str, dict]] = {}
    counts = {"spreadsheet": 0, "reports": 0, "both": 0}
    sources: Dict[Tuple[str, str], Set[str]] = {}
    known = set(case_ids)
    for case, per_label in reports.items():
        if case not in known:
            warn(f"{reports_file}: cases.{case}: no such training case; report ignored")
            continue
        for label, aspects in per_label.items():
            target = _report_label(label, case_lesions[case], present.get(case, ()), organs)
            if target is None:
                warn(f"{reports_file}: cases.{case}.{label}: label is none of this case's lesion labels "
                     f"({', '.join(case_lesions[case])}) or ambiguous; report ignored")
                continue
            merged.setdefault(case, {}).setdefault(target, {}).update(aspects)
            sources.setdefault((case, target), set()).add("reports")
    if annotations is not None:
        rows, elsewhere = [], []
        for r in annotations.rows:
            case = annotations.case_id(r)
            if case is not None and case not in known:
                elsewhere.append(case)        # one line for all: a partial dataset would print hundreds
            elif case is None or r.disease in case_lesions[case]:
                rows.append(r)                # unmappable ids go on so import_rows reports them
        if elsewhere:
            warn(f"{annotations.file}: {len(elsewhere)} row(s) name cases that are not training cases of this "
                 f"dataset (e.g. {', '.join(elsewhere[:3])}); skipped")
        result = import_rows(rows, annotations.file, annotations.id_mapping, known_cases=case_ids,
                             known_labels=sorted({l for ls in case_lesions.values() for l in ls}))
        for p in annotations.problems + result.problems:
            warn(str(p))
        for case, per_label in result.cases.items():
            for label, aspects in per_label.items():
                # the spreadsheet's codes are radiologist-reviewed; they win aspect by aspect over the parsed report
                merged.setdefault(case, {}).setdefault(label, {}).update(aspects)
                sources.setdefault((case, label), set()).add("spreadsheet")
    for s in sources.values():
        counts["both" if len(s) == 2 else next(iter(s))] += 1
    section = {case: {label: {a: (v[0] if len(v) == 1 else list(v)) for a, v in aspects.items()}
                      for label, aspects in sorted(per_label.items())}
               for case, per_label in sorted(merged.items())}
    return section, counts


# --- output folder -----------------------------------------------------------------------------------------------

def output_root(root: Optional[str]) -> Path:
    from nnunetv2_malenia.paths import nnunet_folder

    return Path(root) if root else nnunet_folder("nnUNet_raw")


def check_target(root: Path, dataset_id: int, name: str, overwrite: bool) -> Path:
    """``root/Dataset<ID>_<name>``; another dataset with the same id (in nnUNet_raw, _preprocessed or _results,
    as nnU-Net resolves ids there) is an error, and so is the same dataset unless ``overwrite``."""
    if not 0 < dataset_id < 1000:
        raise MaleniaInputError(Problem("", "-d", f"dataset id must be 1..999, got {dataset_id}"))
    from nnunetv2_malenia.utils.cli import folder_problems

    problems = folder_problems(root, "-o")        # before the work: a read-only root fails now, not at the end
    if problems:
        raise MaleniaInputError(problems)
    target = root / f"Dataset{dataset_id:03d}_{name}"
    prefix = f"Dataset{dataset_id:03d}_"
    places = [root] + [Path(os.environ[v]) for v in ("nnUNet_preprocessed", "nnUNet_results") if os.environ.get(v)]
    clashes = [p / d for p in places if p.is_dir() for d in os.listdir(p)
               if d.startswith(prefix) and (p / d).is_dir() and d != target.name]
    if clashes:
        # two Dataset<ID>_* folders break every nnU-Net lookup of that id, so a second name is refused, not added
        raise MaleniaInputError(Problem(str(target), "-d", f"dataset id {dataset_id} is already taken by "
                                        f"{', '.join(map(str, sorted(clashes)))}; choose another id with -d, or "
                                        f"use that dataset's name (--overwrite replaces it)"))
    if target.exists() and not overwrite:
        raise MaleniaInputError(Problem(str(target), "", "exists; use --overwrite to replace it"))
    return target


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A hidden temporary folder next to ``target``, renamed onto it when the block succeeds and removed when it
    fails, so nnU-Net never sees a half-written dataset. Same file system, so the rename is atomic."""
    from nnunetv2_malenia.utils.atomic_io import normal_mode

    created = _missing_parents(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    normal_mode(tmp, folder=True)      # the dataset folder itself, once renamed
    try:
        yield tmp
        if target.exists():
            # two renames: the old dataset disappears only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            # a failed run leaves the disk as it found it: no empty output root made just for this run
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()                 # only succeeds while empty


def _missing_parents(folder: Path) -> List[Path]:
    """Folders that mkdir(parents=True) would create, deepest first."""
    out = []
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


# --- the conversion ----------------------------------------------------------------------------------------------

@dataclass
class Conversion:
    """Everything a converter works out before any file is written."""

    name: str                                      # dataset name after Dataset<ID>_
    source: str                                    # for messages and the attribute file's 'about'
    plan: LabelPlan
    organs: Dict[str, str]                         # output lesion label -> organ
    train: List[CaseJob]
    test: List[CaseJob]
    case_lesions: Dict[str, List[str]]             # training case -> lesion labels it may carry
    dataset_json: dict                             # generate_dataset_json keyword arguments (labels/counts added)
    notes: List[str] = field(default_factory=list)  # printed, and kept in the attribute file's 'about'


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def write_dataset(conv: Conversion, target: Path, annotations: Optional[Annotations],
                  reports: Mapping[str, Mapping[str, dict]], reports_file: str, num_processes: int,
                  verify: bool) -> Path:
    """Run the jobs into a temporary folder, write dataset.json and the attribute file, validate, rename."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    from nnunetv2_malenia.attributes.check import validate_raw_dataset
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic

    case_ids = [j.case for j in conv.train]
    with atomic_folder(target) as tmp:
        for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if conv.test else ()):
            (tmp / sub).mkdir()
        jobs = [_relocate(j, target, tmp) for j in conv.train + conv.test]
        results = run_jobs(jobs, num_processes, f"converting {conv.source}")
        problems = [p for r in results for p in r.problems]
        if problems:
            raise MaleniaInputError(problems)
        for r in results:
            for w in r.warnings:
                _warn(w)
        names = {v: n for n, v in conv.plan.labels.items()}
        present = {r.case: [names[v] for v in r.present] for r in results}
        cases, counts = assemble_cases(case_ids, conv.case_lesions, conv.organs, present, annotations, reports,
                                       reports_file, _warn)
        _warn_absent(results, cases, conv.plan, _warn)

        generate_dataset_json(str(tmp), labels=dict(conv.plan.labels), num_training_cases=len(conv.train),
                              file_ending=FILE_ENDING, **conv.dataset_json)
        about = (f"Converted from {conv.source} by nnunetv2_malenia.converters. Per-case entries: spreadsheet codes "
                 f"(columns B-H) win aspect by aspect over parsed reports; aspects neither gives fall back to the "
                 f"label's knowledge-table disease. " + " ".join(conv.notes))
        write_json_atomic({"format_version": FORMAT_VERSION, "about": about.strip(), "labels": conv.plan.entries,
                           "cases": cases}, tmp / DATASET_ATTRIBUTES_FILENAME)
        try:
            validate_raw_dataset(tmp)
        except MaleniaInputError as e:   # a converter bug, not user input: say so, keep the file names
            raise MaleniaInputError([Problem(p.file, p.where, f"converted dataset failed its check: {p.message}")
                                     for p in e.problems]) from None
        if verify:
            from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

            try:
                verify_dataset_integrity(str(tmp), num_processes=max(1, num_processes))
            except (AssertionError, RuntimeError, FileNotFoundError) as e:   # nnU-Net's ways of saying "bad data"
                raise MaleniaInputError(Problem(str(target), "", f"nnU-Net's verify_dataset_integrity failed "
                                                                 f"(details above): {e}")) from None
    print(f"wrote {target}: {len(conv.train)} training, {len(conv.test)} test cases; labels "
          + ", ".join(f"{v} {n}" for n, v in conv.plan.labels.items()))
    print(f"per-case attributes for {len(cases)} of {len(conv.train)} training cases; their (case, lesion label) "
          f"entries come from the spreadsheet only: {counts['spreadsheet']}, reports only: {counts['reports']}, "
          f"both: {counts['both']}. Everything else uses the knowledge-table description of the label.")
    return target


def _relocate(job: CaseJob, target: Path, tmp: Path) -> CaseJob:
    """Jobs are planned against the final folder; they write into the temporary one."""
    def move(p: Optional[str]) -> Optional[str]:
        return None if p is None else str(tmp / Path(p).relative_to(target))

    return CaseJob(job.case, job.image, move(job.image_out), job.label, move(job.label_out), job.lut, job.split_4d)


def _warn_absent(results: Sequence[CaseResult], cases: Mapping[str, Mapping[str, dict]], plan: LabelPlan,
                 warn: Callable[[str], None]) -> None:
    """An entry for a lesion the segmentation does not contain is kept (harmless) but most likely an id mix-up."""
    present = {r.case: set(r.present) for r in results}
    for case, per_label in cases.items():
        for label in per_label:
            if plan.labels[label] not in present.get(case, set()):
                warn(f"case {case}: attributes given for {label!r} but its segmentation has no such voxels")


# --- command-line plumbing ---------------------------------------------------------------------------------------

def add_common_arguments(p: argparse.ArgumentParser, default_id_help: str) -> None:
    p.add_argument("-d", dest="dataset_id", type=int, help=f"nnU-Net dataset id ({default_id_help})")
    p.add_argument("-o", dest="output_root", metavar="ROOT",
                   help="where Dataset<ID>_<Name> goes (default: $nnUNet_raw)")
    p.add_argument("--annotations", metavar="XLSX", help="the Malenia authors' annotation spreadsheet: per-case codes "
                                                         "(columns B-H) of this dataset's lesion sheets")
    p.add_argument("--reports", metavar="PARSED_JSON", help="output of nnUNetv2_malenia_parse_reports; used for the "
                                                            "aspects the spreadsheet does not give")
    p.add_argument("--id-mapping", metavar="CSV_OR_JSON", help="spreadsheet id -> case id (spreadsheet_id,case_id); "
                                                               "default rule: strip .nii/.nii.gz")
    p.add_argument("--keep-organ-label", action="store_true", help="keep the organ label instead of merging it into "
                                                                   "the background")
    p.add_argument("--overwrite", action="store_true", help="replace an existing Dataset<ID>_<Name>")
    p.add_argument("--verify", action="store_true", help="also run nnU-Net's verify_dataset_integrity on the result "
                                                         "(reads every image again)")
    p.add_argument("-np", dest="num_processes", type=int, default=min(8, os.cpu_count() or 1),
                   help="worker processes (default: %(default)s)")


def run_main(run: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
             argv: Optional[Sequence[str]]) -> None:
    """Parse, run, and turn bad input into 'error:' lines and exit status 2."""
    args = parser.parse_args(argv)
    try:
        run(args)
    except MaleniaInputError as e:
        exit_with_problems(e)
    except OSError as e:               # disk full, permissions: no traceback needed, the dataset was not written
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
