"""The clinical knowledge table: disease -> organ + accepted descriptions per aspect.

The shipped table (``attribute_tables/knowledge_table.json``) covers the paper's 12 lesion types. A user table
with the same format extends it (new diseases) or overrides entries of the same name; no code involved.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary, load_vocabulary, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.paths import default_knowledge_table_file

PAPER_SPLITS = ("seen", "unseen", None)


@dataclass(frozen=True)
class Disease:
    name: str
    organ: str
    descriptions: Mapping[str, Tuple[str, ...]]   # aspect -> accepted description texts (all eight aspects)
    value_keys: Mapping[str, Tuple[str, ...]]     # aspect -> the entries as written (vocabulary keys or free text)
    paper_split: Optional[str] = None             # 'seen' / 'unseen' in the paper, None for user diseases
    source: str = ""                              # where the entry comes from (file + provenance note)


@dataclass(frozen=True)
class KnowledgeTable:
    diseases: Mapping[str, Disease]
    files: Tuple[str, ...]                         # the table files merged, in order

    def __getitem__(self, name: str) -> Disease:
        return self.diseases[name]

    def __contains__(self, name: str) -> bool:
        return name in self.diseases

    @property
    def names(self) -> List[str]:
        return list(self.diseases)

    def split(self, paper_split: str) -> List[str]:
        return [n for n, d in self.diseases.items() if d.paper_split == paper_split]

    def descriptions(self) -> List[Tuple[str, str]]:
        """Every distinct (aspect, text) pair, in table then aspect order."""
        seen, out = set(), []
        for d in self.diseases.values():
            for aspect in ASPECTS:
                for text in d.descriptions[aspect]:
                    if (aspect, text) not in seen:
                        seen.add((aspect, text))
                        out.append((aspect, text))
        return out


def parse_disease(name: str, entry, vocab: Vocabulary, file: str, where: str,
                  problems: List[Problem]) -> Optional[Disease]:
    """Validate one disease entry (also used for inline label descriptions in dataset attribute files)."""
    if not isinstance(entry, dict):
        problems.append(Problem(file, where, "must be an object with 'organ' and 'attributes'"))
        return None
    organ = entry.get("organ")
    if not isinstance(organ, str) or not organ.strip():
        problems.append(Problem(file, f"{where}.organ", "missing; name the organ the lesion lives in"))
    split = entry.get("paper_split")
    if split not in PAPER_SPLITS:
        problems.append(Problem(file, f"{where}.paper_split", f"must be 'seen', 'unseen' or absent, got {split!r}"))
    attrs = entry.get("attributes")
    if not isinstance(attrs, dict):
        problems.append(Problem(file, f"{where}.attributes", "missing or not an object of aspect -> descriptions"))
        return None
    n_before = len(problems)
    descriptions, keys = parse_aspect_map(attrs, vocab, file, f"{where}.attributes", problems, require_all=True)
    if len(problems) > n_before or not isinstance(organ, str):
        return None
    return Disease(name=name, organ=organ.strip(), descriptions=descriptions, value_keys=keys, paper_split=split,
                   source=f"{file}: {entry.get('source', '')}".rstrip(": "))


def parse_aspect_map(attrs: Mapping, vocab: Vocabulary, file: str, where: str, problems: List[Problem],
                     require_all: bool) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, Tuple[str, ...]]]:
    """``{aspect: value | [values]}`` -> (aspect -> texts, aspect -> as written). Collects problems."""
    descriptions: Dict[str, Tuple[str, ...]] = {}
    keys: Dict[str, Tuple[str, ...]] = {}
    for aspect, values in attrs.items():
        if aspect not in ASPECTS:
            problems.append(Problem(file, f"{where}.{aspect}", f"unknown aspect; known aspects: {', '.join(ASPECTS)}"))
            continue
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            problems.append(Problem(file, f"{where}.{aspect}", "must be a description or a non-empty list of them"))
            continue
        texts = []
        for i, v in enumerate(values):
            text = vocab.resolve(aspect, v, file, f"{where}.{aspect}[{i}]", problems)
            if text is not None and text not in texts:
                texts.append(text)
        descriptions[aspect] = tuple(texts)
        keys[aspect] = tuple(v.strip() for v in values if isinstance(v, str))
    if require_all:
        missing = [a for a in ASPECTS if a not in attrs]
        if missing:
            problems.append(Problem(file, where, f"missing aspects: {', '.join(missing)}"))
    return descriptions, keys


def _parse_table(raw: dict, vocab: Vocabulary, file: str, problems: List[Problem]) -> Dict[str, Disease]:
    diseases = raw.get("diseases")
    if not isinstance(diseases, dict):
        problems.append(Problem(file, "diseases", "missing or not an object of disease name -> entry"))
        return {}
    out = {}
    for name, entry in diseases.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(Problem(file, f"diseases.{name!r}", "disease names must be non-empty strings"))
            continue
        disease = parse_disease(name, entry, vocab, file, f"diseases.{name}", problems)
        if disease is not None:
            out[name] = disease
    return out


def load_knowledge_table(extra_files: Iterable[Path | str] | Path | str | None = None, include_default: bool = True,
                         vocabulary: Vocabulary | None = None) -> KnowledgeTable:
    """The default table, then each extra file on top (new names add diseases, same names replace them)."""
    vocab = vocabulary or load_vocabulary()
    if isinstance(extra_files, (str, Path)):
        extra_files = [extra_files]
    files = ([default_knowledge_table_file()] if include_default else []) + [Path(f) for f in (extra_files or [])]
    problems: List[Problem] = []
    merged: Dict[str, Disease] = {}
    for f in files:
        raw = read_json(f, "knowledge table")
        merged.update(_parse_table(raw, vocab, str(f), problems))
    if problems:
        raise MaleniaInputError(problems)
    return KnowledgeTable(diseases=merged, files=tuple(str(f) for f in files))


def table_to_json(table: KnowledgeTable) -> dict:
    """The table in knowledge_table.json's format (value keys as written), so a model folder can carry it."""
    return {"format_version": 1, "diseases": {
        name: {"organ": d.organ, "paper_split": d.paper_split, "attributes": {a: list(v) for a, v in d.value_keys.items()},
               "source": d.source}
        for name, d in table.diseases.items()}}


def knowledge_table_from_json(raw: dict, source: str, vocabulary: Vocabulary | None = None) -> KnowledgeTable:
    """Parse a table object that is not a file of its own (e.g. the copy stored in a model's plans.json)."""
    problems: List[Problem] = []
    diseases = _parse_table(raw, vocabulary or load_vocabulary(), source, problems)
    if problems:
        raise MaleniaInputError(problems)
    return KnowledgeTable(diseases=diseases, files=(source,))
