"""Import the Malenia authors' annotation spreadsheet into a dataset attribute file (``malenia_attributes.json``).

The workbook has one sheet per lesion type (Chinese sheet titles, see ``spreadsheet_sheets`` in
``attribute_tables/aspects.json``), a header row (column A ``ID``, columns B-H headed ``1)`` ... ``7)``), then one row
per (case, lesion type): column A the case id, B-H one code per aspect, I the structured report text.

Two layers:

* :func:`read_annotation_workbook` turns the workbook into :class:`AnnotationRow` objects (codes as written and the
  value keys they mean) plus :class:`Problem` warnings. The report parser reuses it; keep its API stable.
* :func:`import_rows` maps spreadsheet ids to nnU-Net case ids and builds the ``cases`` section;
  :func:`main` is the ``nnUNetv2_malenia_import_annotations`` command around both.

Noise handled (it exists in the real file): multi-codes (``1、2``, ``1,2``, ``12``), out-of-range codes, blank cells,
example rows (``Example 1``) and ids that name no case (``1``, ``imaging.nii``). Each becomes a Problem naming
``sheet S row R column C``; a row keeps the aspects that are fine, so the label's defaults fill in the rest.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary, load_vocabulary, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.utils.cli import file_problems, make_parser
from nnunetv2_malenia.utils.atomic_io import write_json_atomic

CASE_ID_COLUMN = "A"
REPORT_COLUMN = "I"
FORMAT_VERSION = 1

# Separators seen (or plausible) between several codes in one cell: Chinese enumeration comma, commas, slashes...
_CODE_SEPARATORS = re.compile(r"[、,，;；/+&\s]+")
_NII_SUFFIX = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_EXAMPLE_ID = re.compile(r"^\s*example\b", re.IGNORECASE)


@dataclass(frozen=True)
class AnnotationRow:
    """One data row of one sheet, as written and as understood."""

    sheet: str                                   # sheet title, e.g. 肾癌
    row: int                                     # 1-based Excel row number
    disease: str                                 # knowledge-table disease of the sheet
    organ: str                                   # organ of the sheet (selects the code tables)
    raw_case_id: str                             # column A as written (numbers as text)
    codes: Mapping[str, Tuple[str, ...]]         # aspect -> individual codes as written; blank cells left out
    values: Mapping[str, Tuple[str, ...]]        # aspect -> value keys; aspects with a problem left out
    report: str                                  # column I, '' when blank


@dataclass
class SheetSummary:
    sheet: str
    rows_read: int = 0          # data rows (header and empty rows not counted)
    imported: int = 0           # rows that reached the cases section
    skipped: int = 0            # rows left out entirely (examples, unmappable ids, no valid code, ...)
    problems: int = 0


@dataclass
class _SheetProblems:
    """Problems plus the per-sheet bookkeeping the command's summary needs."""

    file: str
    problems: List[Problem] = field(default_factory=list)
    summaries: Dict[str, SheetSummary] = field(default_factory=dict)

    def add(self, sheet: Optional[str], where: str, message: str) -> None:
        self.problems.append(Problem(self.file, where, message))
        if sheet is not None:
            self.summary(sheet).problems += 1

    def summary(self, sheet: str) -> SheetSummary:
        return self.summaries.setdefault(sheet, SheetSummary(sheet))


# --- reading the workbook ----------------------------------------------------------------------------------------

def _cell_text(value) -> str:
    """A cell as text: integral floats (Excel stores 2 as 2.0) lose their '.0'; None becomes ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def code_table(vocab: Vocabulary, aspect: str, organ: str) -> Mapping[str, str]:
    """Code -> value key for ``aspect`` on ``organ``: the organ group's own table, else the generic ``*`` one."""
    tables = vocab.spreadsheet_codes.get(aspect, {})
    group = vocab.organ_group(organ)
    return tables.get(group) or tables.get("*", {})


def split_codes(text: str, valid: Iterable[str]) -> Tuple[str, ...]:
    """``'1、2'`` / ``'1,2'`` -> ('1', '2'); ``'12'`` -> ('1', '2') when 12 is no code but 1 and 2 are.

    Unknown codes are returned as written so the caller can report them. Duplicates are dropped."""
    valid = set(valid)
    tokens = [t for t in _CODE_SEPARATORS.split(text) if t]
    out: List[str] = []
    for token in tokens:
        token = _cell_text(float(token)) if re.fullmatch(r"\d+\.0+", token) else token
        # Annotators typed '12' for "1 and 2"; a digit run is only split when every digit is itself a code.
        if token.isdigit() and len(token) > 1 and token not in valid and all(d in valid for d in token):
            parts = list(token)
        else:
            parts = [token]
        out.extend(p for p in parts if p not in out)
    return tuple(out)


def _header_problem(header: Sequence, vocab: Vocabulary) -> Optional[str]:
    """Why a header row does not match the format (columns B-H numbered 1) to 7)), or None when it does."""
    for number, aspect in enumerate((a for a in ASPECTS if vocab.spreadsheet_columns.get(a)), start=1):
        column = vocab.spreadsheet_columns[aspect]
        text = _cell_text(header[_column_index(column)] if _column_index(column) < len(header) else None)
        if not re.match(rf"\s*{number}\s*[)）]", text):
            return (f"header of column {column} should start with '{number})' ({vocab.titles.get(aspect, aspect)}), "
                    f"found {text[:30]!r}; the columns are not in the annotation format's order")
    return None


def _column_index(letter: str) -> int:
    return ord(letter.upper()) - ord("A")


def _is_header(cells: Sequence) -> bool:
    return _cell_text(cells[0] if cells else None).lower() == "id"


def _read_row(sheet: str, row_number: int, cells: Sequence, disease: str, organ: str, vocab: Vocabulary,
              log: _SheetProblems) -> Optional[AnnotationRow]:
    """One data row -> AnnotationRow (None for example rows and rows without an id; both are reported)."""
    at = f"sheet {sheet} row {row_number}"
    raw_id = _cell_text(cells[0] if cells else None)
    if _EXAMPLE_ID.match(raw_id):
        log.add(sheet, f"{at} column {CASE_ID_COLUMN}", f"example row {raw_id!r}; skipped")
        return None
    if not raw_id:
        log.add(sheet, f"{at} column {CASE_ID_COLUMN}", "codes without a case id; skipped")
        return None
    codes: Dict[str, Tuple[str, ...]] = {}
    values: Dict[str, Tuple[str, ...]] = {}
    blank_columns = []
    for aspect in ASPECTS:
        column = vocab.spreadsheet_columns.get(aspect)
        if column is None:          # specific features have no code column; they live in the report text only
            continue
        index = _column_index(column)
        text = _cell_text(cells[index] if index < len(cells) else None)
        if not text:
            blank_columns.append(column)
            continue
        table = code_table(vocab, aspect, organ)
        row_codes = split_codes(text, table)
        codes[aspect] = row_codes
        unknown = [c for c in row_codes if vocab.code_to_key(aspect, organ, c) is None]
        if unknown:
            log.add(sheet, f"{at} column {column}",
                    f"{aspect} code {text!r} is not valid for {organ} (codes: "
                    f"{', '.join(f'{c}={k}' for c, k in table.items())}); aspect left to the label's default")
            continue
        values[aspect] = tuple(vocab.code_to_key(aspect, organ, c) for c in row_codes)
    report_index = _column_index(REPORT_COLUMN)
    report = _cell_text(cells[report_index] if report_index < len(cells) else None)
    n_coded = sum(1 for a in ASPECTS if vocab.spreadsheet_columns.get(a))
    if len(blank_columns) == n_coded and not report:
        # One line for an all-blank row instead of eight (liver_34.nii in the real file).
        log.add(sheet, f"{at} columns B-{REPORT_COLUMN}", f"row of {raw_id!r} has no codes and no report")
    else:
        for column in blank_columns:
            log.add(sheet, f"{at} column {column}", "blank cell; aspect left to the label's default")
        if not report:
            log.add(sheet, f"{at} column {REPORT_COLUMN}", "blank report text")
    return AnnotationRow(sheet=sheet, row=row_number, disease=disease, organ=organ, raw_case_id=raw_id,
                         codes=codes, values=values, report=report)


def _open_workbook(path: Path):
    import openpyxl

    if not path.is_file():
        raise MaleniaInputError(Problem(str(path), "", "annotation spreadsheet not found"))
    try:
        # read_only streams rows; data_only gives cached formula results instead of formula text.
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zipfile, KeyError and its own errors for non-xlsx input
        raise MaleniaInputError(Problem(str(path), "", f"cannot read as an .xlsx workbook ({type(e).__name__}: {e})"))


def _read_workbook(path: Path | str, vocab: Vocabulary) -> Tuple[List[AnnotationRow], _SheetProblems]:
    path = Path(path)
    log = _SheetProblems(str(path))
    workbook = _open_workbook(path)
    try:
        known_sheets = [ws for ws in workbook.worksheets if ws.title in vocab.spreadsheet_sheets]
        if not known_sheets:
            raise MaleniaInputError(Problem(str(path), "", "no sheet of the Malenia annotation format; expected "
                                            f"sheets named {', '.join(vocab.spreadsheet_sheets)}, found "
                                            f"{', '.join(ws.title for ws in workbook.worksheets) or 'none'}"))
        format_errors = 0
        rows: List[AnnotationRow] = []
        for ws in workbook.worksheets:
            if ws.title not in vocab.spreadsheet_sheets:
                log.add(None, f"sheet {ws.title}", "unknown sheet title (not in spreadsheet_sheets of the "
                                                   "aspect vocabulary); skipped")
                continue
            sheet_rows, ok = _read_sheet(ws, vocab, log)
            rows.extend(sheet_rows)
            format_errors += not ok
        if format_errors == len(known_sheets):
            raise MaleniaInputError(log.problems)
        return rows, log
    finally:
        workbook.close()


def _read_sheet(ws, vocab: Vocabulary, log: _SheetProblems) -> Tuple[List[AnnotationRow], bool]:
    """The data rows of one sheet, and whether the sheet has the expected layout."""
    info = vocab.spreadsheet_sheets[ws.title]
    summary = log.summary(ws.title)
    rows: List[AnnotationRow] = []
    seen_header = False
    for row_number, cells in enumerate(ws.iter_rows(values_only=True), start=1):
        if all(_cell_text(c) == "" for c in cells):
            continue                                          # trailing or spacer rows
        if _is_header(cells):
            problem = _header_problem(cells, vocab)
            if problem:
                log.add(ws.title, f"sheet {ws.title} row {row_number}", f"{problem}; sheet skipped")
                return [], False
            seen_header = True
            continue
        if not seen_header:
            log.add(ws.title, f"sheet {ws.title} row {row_number} column {CASE_ID_COLUMN}",
                    "expected the header row (column A 'ID') before any data; sheet skipped")
            return [], False
        summary.rows_read += 1
        row = _read_row(ws.title, row_number, cells, info["disease"], info["organ"], vocab, log)
        if row is None:
            summary.skipped += 1
        else:
            rows.append(row)
    return rows, True


def read_annotation_workbook(path: Path | str, vocabulary: Vocabulary | None = None
                             ) -> Tuple[List[AnnotationRow], List[Problem]]:
    """Every data row of the annotation spreadsheet and the problems found (warnings, not raised).

    Header and example rows are left out; rows with odd ids are kept (an id mapping may still place them).
    Raises MaleniaInputError when the file cannot be read or has no sheet in the expected format."""
    rows, log = _read_workbook(path, vocabulary or load_vocabulary())
    return rows, log.problems


# --- spreadsheet ids -> nnU-Net case ids -------------------------------------------------------------------------

def default_case_id(raw_case_id: str) -> Tuple[Optional[str], str]:
    """nnU-Net case id by the default rule, or (None, why not).

    The rule strips whitespace and a ``.nii``/``.nii.gz`` ending (``liver_3.nii`` -> ``liver_3``, the name nnU-Net's
    MSD conversion gives). Ids without a digit (``imaging.nii``: KiTS's file name inside every case folder) or
    without a letter (``1``: a row number) cannot tell cases apart, so they need an explicit mapping."""
    case_id = _NII_SUFFIX.sub("", str(raw_case_id).strip()).strip()
    if not case_id:
        return None, "empty case id"
    if any(ch.isspace() for ch in case_id):
        return None, f"id {raw_case_id!r} contains spaces; not a case identifier"
    if not any(ch.isdigit() for ch in case_id) or not any(ch.isalpha() for ch in case_id):
        return None, (f"id {raw_case_id!r} does not identify a case (case ids have letters and a number, "
                      f"e.g. case_00000, liver_3)")
    return case_id, ""


def read_id_mapping(path: Path | str) -> Dict[str, str]:
    """Spreadsheet id -> nnU-Net case id from JSON (an object) or CSV (two columns, optional header
    ``spreadsheet_id,case_id``). Raises MaleniaInputError listing every bad entry."""
    path = Path(path)
    problems: List[Problem] = []
    pairs: List[Tuple[str, object, object]] = []           # (where, spreadsheet id, case id)
    if path.suffix.lower() == ".json":
        data = read_json(path, "case id mapping")
        pairs = [(f"key {k!r}", k, v) for k, v in data.items()]
    else:
        if not path.is_file():
            raise MaleniaInputError(Problem(str(path), "", "case id mapping file not found"))
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line, record in enumerate(csv.reader(f), start=1):
                if not record or all(not c.strip() for c in record):
                    continue
                if line == 1 and record[0].strip().lower() in ("spreadsheet_id", "spreadsheet id", "id"):
                    continue
                if len(record) != 2:
                    problems.append(Problem(str(path), f"line {line}",
                                            f"expected 2 columns (spreadsheet id, case id), got {len(record)}"))
                    continue
                pairs.append((f"line {line}", record[0], record[1]))
    mapping: Dict[str, str] = {}
    for where, key, value in pairs:
        key_text = str(key).strip() if isinstance(key, str) else ""
        if not key_text or not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
            problems.append(Problem(str(path), where, f"{key!r} -> {value!r}: both must be non-empty ids "
                                                      f"(case ids without spaces)"))
            continue
        if key_text in mapping:
            problems.append(Problem(str(path), where, f"spreadsheet id {key_text!r} is mapped twice"))
            continue
        mapping[key_text] = value.strip()
    if problems:
        raise MaleniaInputError(problems)
    return mapping


# --- rows -> cases section ---------------------------------------------------------------------------------------

@dataclass
class ImportResult:
    cases: Dict[str, Dict[str, Dict[str, List[str]]]]   # case -> label -> aspect -> value keys
    labels: Dict[str, str]                              # label name -> disease
    records: List[dict]                                 # one per row: codes, values, report, outcome
    summaries: Dict[str, SheetSummary]
    problems: List[Problem]

    @property
    def n_imported(self) -> int:
        return sum(s.imported for s in self.summaries.values())


def parse_label_names(specs: Iterable[str], vocab: Vocabulary) -> Dict[str, str]:
    """``['肾癌=kidney tumor']`` -> {sheet: label name}. The left side is a sheet title or its disease name."""
    out: Dict[str, str] = {}
    problems = []
    for spec in specs:
        left, sep, right = spec.partition("=")
        left, right = left.strip(), right.strip()
        sheets = [s for s, info in vocab.spreadsheet_sheets.items() if left in (s, info["disease"])]
        if not sep or not right or not sheets:
            problems.append(Problem("--label-name", spec, "expected SHEET=LABEL where SHEET is one of "
                                    + ", ".join(f"{s} ({i['disease']})" for s, i in vocab.spreadsheet_sheets.items())))
            continue
        for sheet in sheets:
            out[sheet] = right
    if problems:
        raise MaleniaInputError(problems)
    return out


def import_rows(rows: Sequence[AnnotationRow], file: str, id_mapping: Mapping[str, str] | None = None,
                label_names: Mapping[str, str] | None = None, known_cases: Iterable[str] | None = None,
                known_labels: Iterable[str] | None = None, summaries: Dict[str, SheetSummary] | None = None
                ) -> ImportResult:
    """Place rows in the ``cases`` section: map ids, drop rows without any usable aspect, flag duplicates.

    ``known_cases``/``known_labels`` (from the raw dataset) make unknown ids and labels problems instead of output."""
    log = _SheetProblems(file, summaries=summaries if summaries is not None else {})
    id_mapping = dict(id_mapping or {})
    label_names = dict(label_names or {})
    known_cases = set(known_cases) if known_cases is not None else None
    known_labels = list(known_labels) if known_labels is not None else None
    cases: Dict[str, Dict[str, Dict[str, List[str]]]] = defaultdict(dict)
    labels: Dict[str, str] = {}
    records: List[dict] = []
    placed_at: Dict[Tuple[str, str], int] = {}            # (case, label) -> row that provided it
    rejected_sheets = set()
    elsewhere: Dict[str, List[Tuple[int, str]]] = {}     # sheet -> (row, case id) of cases not in the dataset
    for r in rows:
        label = label_names.get(r.sheet, r.disease)
        at = f"sheet {r.sheet} row {r.row}"
        summary = log.summary(r.sheet)
        record = {"sheet": r.sheet, "row": r.row, "raw_case_id": r.raw_case_id, "case_id": None, "label": label,
                  "disease": r.disease, "organ": r.organ, "codes": {a: list(c) for a, c in r.codes.items()},
                  "values": {a: list(v) for a, v in r.values.items()}, "report": r.report, "imported": False}
        records.append(record)

        def skip(where: str, message: str) -> None:
            log.add(r.sheet, where, message)
            summary.skipped += 1

        if known_labels is not None and label not in known_labels:
            if r.sheet not in rejected_sheets:
                rejected_sheets.add(r.sheet)
                log.add(r.sheet, f"sheet {r.sheet}", f"label {label!r} is not a label of dataset.json "
                        f"({', '.join(known_labels) or 'none'}); sheet skipped (rename with --label-name)")
            summary.skipped += 1
            continue
        raw_key = r.raw_case_id.strip()
        if raw_key in id_mapping:
            case_id, why = id_mapping[raw_key], ""
        else:
            case_id, why = default_case_id(r.raw_case_id)
        if case_id is None:
            skip(f"{at} column {CASE_ID_COLUMN}", f"{why}; skipped (map it in a --id-mapping file)")
            continue
        record["case_id"] = case_id
        if known_cases is not None and case_id not in known_cases:
            # summarised per sheet after the loop: a workbook for a partial dataset would print hundreds of lines
            elsewhere.setdefault(r.sheet, []).append((r.row, case_id))
            summary.skipped += 1
            continue
        if not r.values:
            skip(f"{at}", f"no valid code for {case_id!r}; skipped")
            continue
        if (case_id, label) in placed_at:
            skip(f"{at} column {CASE_ID_COLUMN}", f"case {case_id!r} already given for {label!r} in row "
                                                  f"{placed_at[(case_id, label)]}; skipped")
            continue
        placed_at[(case_id, label)] = r.row
        cases[case_id][label] = {a: list(v) for a, v in r.values.items()}
        labels.setdefault(label, r.disease)
        record["imported"] = True
        summary.imported += 1
    for sheet, found in elsewhere.items():
        examples = ", ".join(f"{case!r} (row {row})" for row, case in found[:3])
        log.add(sheet, f"sheet {sheet} column {CASE_ID_COLUMN}",
                f"{len(found)} row(s) name cases that are not in the dataset's imagesTr, e.g. {examples}; skipped "
                f"(wrong -d, or ids that need an --id-mapping?)")
    return ImportResult(cases=dict(cases), labels=labels, records=records, summaries=log.summaries,
                        problems=log.problems)


def cases_section(result: ImportResult) -> Dict[str, Dict[str, Dict[str, object]]]:
    """JSON form of the cases: one value as a plain string, several as a list (the file format allows both)."""
    return {case: {label: {a: (v[0] if len(v) == 1 else list(v)) for a, v in aspects.items()}
                   for label, aspects in per_label.items()}
            for case, per_label in sorted(result.cases.items())}


def merge_into(existing: dict, result: ImportResult) -> Tuple[dict, List[str]]:
    """Merge imported cases into an attribute file object: imported aspects replace the same aspects of the same
    case and label; everything else (labels section, other aspects, other cases) is kept. Returns the new object
    and the label names that had to be added to ``labels``."""
    merged = json.loads(json.dumps(existing))               # deep copy; the caller's object stays as read
    labels = merged.setdefault("labels", {})
    added = [name for name in result.labels if name not in labels]
    for name in added:
        labels[name] = {"disease": result.labels[name]}
    cases = merged.setdefault("cases", {})
    for case, per_label in cases_section(result).items():
        for label, aspects in per_label.items():
            cases.setdefault(case, {}).setdefault(label, {}).update(aspects)
    return merged, added


def new_attribute_file(result: ImportResult) -> dict:
    return {"format_version": FORMAT_VERSION,
            "labels": {name: {"disease": disease} for name, disease in result.labels.items()},
            "cases": cases_section(result)}


# --- command -----------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nnUNetv2_malenia_import_annotations",
        "Import the Malenia annotation spreadsheet (one sheet per lesion type, codes in columns B-H, "
                    "report text in column I) as per-case lesion attributes of a dataset attribute file "
                    "(malenia_attributes.json). Problems in the sheet (blank cells, out-of-range codes, example rows, "
                    "unknown ids) are printed as warnings; affected aspects fall back to the label's description.")
    p.add_argument("xlsx", help="the annotation workbook (.xlsx)")
    p.add_argument("-d", dest="dataset", metavar="DATASET_NAME_OR_ID",
                   help="nnU-Net raw dataset: case ids and label names are checked against it, and -o defaults to "
                        "its malenia_attributes.json")
    p.add_argument("-o", dest="output", metavar="FILE",
                   help="attribute file to write (new file, or the file to update with --merge)")
    p.add_argument("--merge", action="store_true",
                   help="update the existing -o file: keep its labels and other cases, replace the imported aspects")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file instead of refusing")
    p.add_argument("--id-mapping", metavar="FILE",
                   help="CSV (spreadsheet_id,case_id) or JSON object mapping spreadsheet ids to nnU-Net case ids; "
                        "overrides the default rule (strip whitespace and .nii/.nii.gz)")
    p.add_argument("--label-name", action="append", default=[], metavar="SHEET=LABEL",
                   help="label name for a sheet (sheet title or its disease), e.g. '肾癌=kidney tumor'; "
                        "default: the sheet's disease name. Repeatable")
    p.add_argument("--records", metavar="FILE.json",
                   help="also write every row's codes, value keys, report text and outcome (for accuracy studies)")
    p.add_argument("--vocabulary", metavar="ASPECTS_JSON", help="aspect vocabulary (default: the shipped one)")
    return p


def _dataset_context(dataset: str) -> Tuple[Path, List[str], List[str]]:
    """(raw folder, case ids, foreground label names) of an nnU-Net raw dataset."""
    from nnunetv2_malenia.attributes.check import raw_dataset_problems
    from nnunetv2_malenia.paths import raw_dataset_folder
    from nnunetv2_malenia.attributes.dataset_attributes import foreground_labels, list_raw_cases

    folder = raw_dataset_folder(dataset)
    problems = raw_dataset_problems(folder)       # the layout problems that would crash the case listing
    if problems:
        raise MaleniaInputError(problems)
    dataset_json = read_json(folder / "dataset.json", "dataset.json")
    labels = list(foreground_labels(dataset_json, str(folder / "dataset.json"), problems))
    if problems:
        raise MaleniaInputError(problems)
    return folder, list_raw_cases(folder, dataset_json), labels


def _print_summary(result: ImportResult, vocab: Vocabulary, label_names: Mapping[str, str], out) -> None:
    print(f"{'sheet':<6}\t{'disease':<16} {'label':<16} {'read':>5} {'imported':>8} {'skipped':>7} {'problems':>8}",
          file=out)
    for s in result.summaries.values():
        disease = vocab.spreadsheet_sheets[s.sheet]["disease"]
        label = label_names.get(s.sheet, disease)
        print(f"{s.sheet:<6}\t{disease:<16} {label:<16} {s.rows_read:>5} {s.imported:>8} {s.skipped:>7} "
              f"{s.problems:>8}", file=out)
    print(f"imported {result.n_imported} rows into {len(result.cases)} cases", file=out)


def run(args: argparse.Namespace) -> int:
    vocab = load_vocabulary(args.vocabulary)
    label_names = parse_label_names(args.label_name, vocab)
    id_mapping = read_id_mapping(args.id_mapping) if args.id_mapping else None
    known_cases = known_labels = None
    output = Path(args.output) if args.output else None
    if args.dataset:
        folder, known_cases, known_labels = _dataset_context(args.dataset)
        output = output or folder / "malenia_attributes.json"
    if output is None:
        raise MaleniaInputError(Problem("", "-o", "give -o FILE (or -d DATASET to write its malenia_attributes.json)"))
    if args.merge and args.overwrite:
        raise MaleniaInputError(Problem("", "--merge/--overwrite", "choose one: --merge updates the existing file, "
                                                                   "--overwrite replaces it"))
    raise_if_problems(file_problems(output, "-o") + (file_problems(args.records, "--records") if args.records else []))
    if args.merge and not output.is_file():
        raise MaleniaInputError(Problem(str(output), "", "--merge needs an existing attribute file"))
    if output.exists() and not (args.merge or args.overwrite):
        raise MaleniaInputError(Problem(str(output), "", "exists; use --merge to update it or --overwrite"))
    existing = read_json(output, "dataset attribute file") if args.merge else None

    rows, log = _read_workbook(args.xlsx, vocab)
    result = import_rows(rows, str(args.xlsx), id_mapping, label_names, known_cases, known_labels, log.summaries)
    problems = log.problems + result.problems
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    _print_summary(result, vocab, label_names, sys.stdout)
    if result.n_imported == 0:
        raise MaleniaInputError(Problem(str(args.xlsx), "", "no row could be imported; nothing written"))

    if existing is not None:
        content, added = merge_into(existing, result)
        for name in added:
            print(f"added label {name!r} -> disease {result.labels[name]!r} to the labels section", file=sys.stdout)
    else:
        content = new_attribute_file(result)
    write_json_atomic(content, output)
    print(f"wrote {output}" + (f" ({len(problems)} warnings above)" if problems else ""))
    if args.records:
        write_json_atomic({"source": str(args.xlsx), "rows": result.records}, args.records)
        print(f"wrote {args.records}")
    print("next: nnUNetv2_malenia_check DATASET_NAME_OR_ID validates the dataset with these attributes")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = run(args)
    except MaleniaInputError as e:
        exit_with_problems(e)
    sys.exit(code)


if __name__ == "__main__":
    main()
