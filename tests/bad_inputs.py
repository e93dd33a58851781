"""Run a console script's ``main`` with bad input, check it fails the project's way, and log it for the catalogue.

``run_bad(main, prog, argv, kind, tmp)`` calls ``main(argv)``, expects ``SystemExit`` with code 2 (the one exit path
for bad input), and returns (exit code, stderr). Every call is remembered; at the end of a pytest session with
``MALENIA_BAD_INPUT_CATALOGUE=docs/bad_inputs.md`` set, conftest merges them into that table (rows of test files not
run are kept), so the catalogue is generated from the tests themselves.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import pytest

RECORDS: List[Dict[str, object]] = []


def _anonymise(text: str, tmp: Path | None) -> str:
    return text.replace(str(tmp), "TMP") if tmp is not None else text


def run_bad(main: Callable, prog: str, argv: Sequence[str], kind: str, tmp: Path | None, capsys,
            expected_code: int = 2) -> Tuple[int, str]:
    capsys.readouterr()                                   # drop output of earlier steps of the test
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    code = e.value.code if isinstance(e.value.code, int) else 1
    assert code == expected_code, f"exit {code}, expected {expected_code}; stderr:\n{captured.err}"
    assert "Traceback" not in captured.err
    lines = [l for l in captured.err.splitlines() if l.startswith("error:")]
    RECORDS.append({"kind": kind, "command": _anonymise(" ".join([prog] + [str(a) for a in argv]), tmp),
                    "exit": code, "message": _anonymise(" / ".join(lines) or captured.err.strip(), tmp),
                    "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]})
    return code, captured.err


def write_catalogue(path: Path) -> None:
    """Merge this session's records into the markdown table at ``path`` (its JSON twin keeps the rows)."""
    store = path.with_suffix(".json")
    rows = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else []
    ran = {r["test"] for r in RECORDS}
    rows = [r for r in rows if r["test"] not in ran] + RECORDS
    rows.sort(key=lambda r: (r["command"].split(" ")[0], r["kind"]))
    store.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["# Bad inputs tried, and what each command answers",
             "",
             "Generated from the tests that call `tests/bad_inputs.py:run_bad` (run them with",
             "`MALENIA_BAD_INPUT_CATALOGUE=docs/bad_inputs.md`). `TMP` is the test's temporary folder.",
             "",
             "| kind of input | command | exit | message | test |",
             "|---|---|---|---|---|"]
    lines += [f"| {cell(r['kind'])} | `{cell(r['command'])}` | {r['exit']} | {cell(r['message'])} | "
              f"{cell(r['test'])} |" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
