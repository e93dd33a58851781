"""The eight attribute aspects and their controlled vocabulary (``attribute_tables/aspects.json``).

A description is given either as a vocabulary key (``"hypodense"``) or as free text (any string with a space,
e.g. a report-derived ``"slightly hypodense lesion with a thin rim"``). Keys are resolved to their text here, so
everything downstream (text bank, losses, reports) sees description texts only.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.paths import default_aspects_file

# Stable keys, in the order used for bank rows and reports (paper Sec. 3.1 lists the same eight).
ASPECTS: Tuple[str, ...] = ("enhancement_status", "location", "shape", "density", "density_variation", "surface",
                            "relationship", "specific_features")
# Bank rows that describe a non-lesion label (an organ) carry this aspect instead of one of the eight.
ORGAN_ASPECT = "organ"


def is_free_text(value: str) -> bool:
    """Free-text descriptions contain whitespace; anything else must be a vocabulary key (catches typos)."""
    return any(ch.isspace() for ch in value.strip())


@dataclass(frozen=True)
class Vocabulary:
    """Value keys -> description text per aspect, plus the annotation spreadsheet's code tables."""

    values: Mapping[str, Mapping[str, str]]                  # aspect -> key -> text
    titles: Mapping[str, str]                                # aspect -> human title
    spreadsheet_columns: Mapping[str, Optional[str]]         # aspect -> column letter (B-H) or None
    spreadsheet_codes: Mapping[str, Mapping[str, Mapping[str, str]]]  # aspect -> organ group|'*' -> code -> key
    spreadsheet_sheets: Mapping[str, Mapping[str, str]]      # sheet title -> {disease, organ}
    organ_groups: Mapping[str, Tuple[str, ...]]              # group -> organ names that use its codes
    source: str = ""
    _text_to_key: Mapping[Tuple[str, str], str] = field(default_factory=dict, repr=False)

    def text(self, aspect: str, key: str) -> str:
        return self.values[aspect][key]

    def key_of_text(self, aspect: str, text: str) -> Optional[str]:
        """The vocabulary key whose text is ``text`` (None for free text)."""
        return self._text_to_key.get((aspect, text))

    def resolve(self, aspect: str, value, file: str, where: str, problems: List[Problem]) -> Optional[str]:
        """Description text for ``value`` of ``aspect``; appends a Problem and returns None when invalid."""
        if aspect not in self.values:
            problems.append(Problem(file, where, f"unknown aspect {aspect!r}; known aspects: {', '.join(ASPECTS)}"))
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(file, where, f"a description must be a non-empty string, got {value!r}"))
            return None
        value = value.strip()
        if value in self.values[aspect]:
            return self.values[aspect][value]
        if is_free_text(value):
            return value
        known = ", ".join(sorted(self.values[aspect]))
        problems.append(Problem(file, where, f"unknown {aspect} value key {value!r} (free-text descriptions must "
                                             f"contain a space); known keys: {known}"))
        return None

    def organ_group(self, organ: str) -> Optional[str]:
        for group, organs in self.organ_groups.items():
            if organ == group or organ in organs:
                return group
        return None

    def code_to_key(self, aspect: str, organ: str, code: str) -> Optional[str]:
        """Spreadsheet code -> value key, using the organ's own table before the generic ``*`` one."""
        tables = self.spreadsheet_codes.get(aspect, {})
        group = self.organ_group(organ)
        for table_name in (group, "*"):
            if table_name in tables:
                return tables[table_name].get(str(code))
        return None


def _parse_vocabulary(raw: dict, file: str) -> Vocabulary:
    problems: List[Problem] = []
    aspects = raw.get("aspects")
    if not isinstance(aspects, dict):
        raise MaleniaInputError(Problem(file, "aspects", "missing or not an object"))
    missing = [a for a in ASPECTS if a not in aspects]
    extra = [a for a in aspects if a not in ASPECTS]
    if missing:
        problems.append(Problem(file, "aspects", f"missing aspects: {', '.join(missing)}"))
    if extra:
        problems.append(Problem(file, "aspects", f"unknown aspects: {', '.join(extra)}; the eight aspects are fixed"))
    values, titles, columns = {}, {}, {}
    for aspect, spec in aspects.items():
        vals = spec.get("values") if isinstance(spec, dict) else None
        if not isinstance(vals, dict) or not vals:
            problems.append(Problem(file, f"aspects.{aspect}.values", "missing or empty"))
            continue
        for key, text in vals.items():
            if is_free_text(key) or not isinstance(text, str) or not text.strip():
                problems.append(Problem(file, f"aspects.{aspect}.values.{key}",
                                        "keys must be single words and texts non-empty strings"))
        values[aspect] = dict(vals)
        titles[aspect] = spec.get("title", aspect)
        columns[aspect] = spec.get("spreadsheet_column")
    codes = raw.get("spreadsheet_codes", {})
    for aspect, tables in codes.items():
        for group, table in tables.items():
            for code, key in table.items():
                if key not in values.get(aspect, {}):
                    problems.append(Problem(file, f"spreadsheet_codes.{aspect}.{group}.{code}",
                                            f"{key!r} is not a {aspect} value key"))
    if problems:
        raise MaleniaInputError(problems)
    text_to_key = {(a, t): k for a, vals in values.items() for k, t in vals.items()}
    return Vocabulary(values=values, titles=titles, spreadsheet_columns=columns, spreadsheet_codes=codes,
                      spreadsheet_sheets=raw.get("spreadsheet_sheets", {}),
                      organ_groups={g: tuple(o) for g, o in raw.get("organ_groups", {}).items()},
                      source=file, _text_to_key=text_to_key)


def read_json(path: Path | str, what: str) -> dict:
    """Load a JSON object with errors that name the file (and line/column for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise MaleniaInputError(Problem(str(path), "", f"{what} file not found"))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise MaleniaInputError(Problem(str(path), f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}"))
    if not isinstance(data, dict):
        raise MaleniaInputError(Problem(str(path), "", f"{what} must be a JSON object"))
    return data


@functools.lru_cache(maxsize=8)
def _load_vocabulary_cached(path: str) -> Vocabulary:
    return _parse_vocabulary(read_json(path, "aspect vocabulary"), path)


def load_vocabulary(path: Path | str | None = None) -> Vocabulary:
    """The shipped vocabulary by default; a user-edited copy when ``path`` is given."""
    return _load_vocabulary_cached(str(Path(path or default_aspects_file()).resolve()))
