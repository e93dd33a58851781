"""Run a console script's ``main`` with bad input, check it fails the project's way, and log it for the catalogue.

``run_bad(main, prog, argv, kind, capsys)`` calls ``main(argv)``, expects ``SystemExit`` with code 2 (the one exit path
for bad input), and returns (exit code, stderr). Every call is remembered; at the end of a pytest session with
``MALENIA_BAD_INPUT_CATALOGUE=docs/bad_inputs.md`` set, conftest merges them into that table (rows of test files not
run are kept), so the catalogue is generated from the tests themselves.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest

RECORDS: List[Dict[str, object]] = []
# pytest's temporary folders, e.g. /tmp/pytest-of-root/pytest-3/test_x0 (shown as TMP in the catalogue)
_TMP = re.compile(r"(?:/[\w.-]+)*/pytest-of-[^/]+/pytest-\d+/[^/\s:]+")


def _test_name() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]


def record(prog: str, argv: Sequence[object], code: int, stderr: str, kind: Optional[str] = None) -> None:
    """Remember one refused input; ``kind`` defaults to the test's name (they are written to describe the input)."""
    name = _test_name()
    if kind is None:
        kind = name.split("::")[-1].split("[")[0].removeprefix("test_").replace("_", " ")
    lines = [l for l in stderr.splitlines() if l.startswith("error:")]
    RECORDS.append({"kind": kind, "command": _TMP.sub("TMP", " ".join([prog] + [str(a) for a in argv])),
                    "exit": code, "message": _TMP.sub("TMP", " / ".join(lines) or stderr.strip()), "test": name})


def run_bad(main: Callable, prog: str, argv: Sequence[object], kind: Optional[str], capsys,
            expected_code: int = 2) -> Tuple[int, str]:
    capsys.readouterr()                                   # drop output of earlier steps of the test
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    code = e.value.code if isinstance(e.value.code, int) else 1
    assert code == expected_code, f"exit {code}, expected {expected_code}; stderr:\n{captured.err}"
    assert "Traceback" not in captured.err
    record(prog, argv, code, captured.err, kind)
    return code, captured.err


def write_catalogue(path: Path) -> None:
    """Merge this session's records into the markdown table at ``path`` (its JSON twin keeps the rows)."""
    store = path.with_suffix(".json")
    rows = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else []
    ran = {r["test"].split("[")[0] for r in RECORDS}
    rows = [r for r in rows if r["test"].split("[")[0] not in ran] + RECORDS
    rows.sort(key=lambda r: (r["command"].split(" ")[0], r["kind"]))
    store.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["# Bad inputs tried, and what each command answers",
             "",
             "Generated from the tests that call `run_bad` or `record` of `tests/bad_inputs.py` (run them with",
             "`MALENIA_BAD_INPUT_CATALOGUE=docs/bad_inputs.md`). `TMP` is the test's temporary folder; a kind in plain words",
             "without a test prefix is the test's own name.",
             "",
             "| kind of input | command | exit | message | test |",
             "|---|---|---|---|---|"]
    lines += [f"| {cell(r['kind'])} | `{cell(r['command'])}` | {r['exit']} | {cell(r['message'])} | "
              f"{cell(r['test'])} |" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
