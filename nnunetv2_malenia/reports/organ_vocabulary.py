"""Report vocabulary of organs the shipped lexicons do not know, from a user knowledge table.

A disease entry of a knowledge table (``--knowledge-table``, same format as ``attribute_tables/knowledge_table.json``)
may carry an optional ``report_vocabulary`` object, read only by the report parser (the table loader ignores it)::

    "stomach tumor": {
      "organ": "stomach",
      "attributes": {...},
      "report_vocabulary": {
        "like": "colon",                                   # reference tissue and wording of a known organ group:
                                                           # colon/gallbladder = a wall, lung = soft tissue,
                                                           # others = parenchyma
        "location": {                                      # location value -> regular expressions (any case)
          "located in the gastric antrum": ["\\bantr(?:um|al)\\b", "\\bpylor\\w*"],
          "located in the gastric body": ["\\bgastric body\\b", "\\bbody of the stomach\\b"]
        }
      }
    }

Location values are vocabulary keys or free-text descriptions (with a space), as in the rest of the table; they go
into ``malenia_attributes.json`` as written. Without ``like`` the organ reads as a solid organ (parenchyma); without
``location`` no location is read, rather than another organ's ("body" of the pancreas in "gastric body").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from nnunetv2_malenia.attributes.schema import Vocabulary, is_free_text, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.reports.phrases import Rule

FIELD = "report_vocabulary"


@dataclass(frozen=True)
class OrganVocabulary:
    organ: str
    like: Optional[str]                 # known organ group whose density/shape wording applies
    location: Tuple[Rule, ...]          # location phrases; values may be free text
    source: str                         # file and key path, for messages

    @property
    def location_values(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(v for r in self.location for v in r.values))


def load_organ_vocabularies(files: Iterable[Path | str], vocab: Vocabulary) -> Dict[str, OrganVocabulary]:
    """organ -> its report vocabulary, from every ``report_vocabulary`` of the given table files (later files win).
    Raises MaleniaInputError naming file and key path for every bad entry."""
    problems: List[Problem] = []
    out: Dict[str, OrganVocabulary] = {}
    for f in files:
        raw = read_json(f, "knowledge table")
        diseases = raw.get("diseases") if isinstance(raw, dict) else None
        if not isinstance(diseases, dict):
            continue            # the table loader reports a malformed table
        for name, entry in diseases.items():
            if not isinstance(entry, dict) or FIELD not in entry:
                continue
            parsed = _parse(entry, str(f), f"diseases.{name}.{FIELD}", vocab, problems)
            if parsed is not None:
                out[parsed.organ] = parsed
    if problems:
        raise MaleniaInputError(problems)
    return out


def _parse(entry: Mapping, file: str, where: str, vocab: Vocabulary, problems: List[Problem]
           ) -> Optional[OrganVocabulary]:
    spec, organ = entry[FIELD], entry.get("organ")
    if not isinstance(spec, dict):
        problems.append(Problem(file, where, "must be an object with 'like' and/or 'location'"))
        return None
    if not isinstance(organ, str) or not organ.strip():
        return None             # the table loader reports the missing organ
    unknown = sorted(set(spec) - {"like", "location"})
    if unknown:
        problems.append(Problem(file, where, f"unknown key(s) {', '.join(unknown)}; allowed: like, location"))
    like = spec.get("like")
    if like is not None and like not in vocab.organ_groups:
        problems.append(Problem(file, f"{where}.like", f"{like!r} is not a known organ group; known: "
                                                       f"{', '.join(vocab.organ_groups)}"))
        like = None
    rules: List[Rule] = []
    location = spec.get("location", {})
    if not isinstance(location, dict):
        problems.append(Problem(file, f"{where}.location", "must be an object of location value -> patterns"))
        location = {}
    for value, patterns in location.items():
        at = f"{where}.location.{value}"
        if value not in vocab.values["location"] and not is_free_text(value):
            problems.append(Problem(file, at, f"{value!r} is neither a location value key nor a free-text "
                                              f"description (free text contains a space)"))
            continue
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns:
            problems.append(Problem(file, at, "must be a pattern or a non-empty list of patterns"))
            continue
        for i, pattern in enumerate(patterns):
            try:
                if not isinstance(pattern, str) or re.compile(pattern).match("") is not None:
                    raise re.error("must be a non-empty pattern that does not match the empty string")
            except re.error as e:
                problems.append(Problem(file, f"{at}[{i}]", f"bad regular expression {pattern!r}: {e}"))
                continue
            rules.append(Rule(pattern, (value,)))
    return OrganVocabulary(organ.strip(), like, tuple(rules), f"{file}: {where}")
