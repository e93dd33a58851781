"""Files the project writes: normal permissions, and output locations checked before any work (issue 13)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from nnunetv2_malenia.errors import Problem
from nnunetv2_malenia.utils.atomic_io import write_json_atomic
from nnunetv2_malenia.utils.cli import file_problems, folder_problems


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_json_gets_the_umask_mode_not_mkstemps_0600(tmp_path, umask_022):
    write_json_atomic({"a": 1}, tmp_path / "x.json")
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
    os.umask(0o027)
    write_json_atomic({"a": 2}, tmp_path / "y.json")
    assert stat.S_IMODE((tmp_path / "y.json").stat().st_mode) == 0o640
    assert json.loads((tmp_path / "y.json").read_text()) == {"a": 2}


def test_dataset_folder_and_its_json_get_the_umask_mode(tmp_path, umask_022):
    from nnunetv2_malenia.phantoms.cli import main

    main(["-d", "910", "-o", str(tmp_path), "--split", "seen", "--cases", "1", "--size", "16", "16", "16", "-np", "1"])
    folder = tmp_path / "Dataset910_MaleniaPhantom"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755                 # mkdtemp would have made it 0700
    for name in ("dataset.json", "malenia_attributes.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_problem_without_a_file_has_no_empty_slot():
    assert str(Problem("", "--size", "too small")) == "--size: too small"
    assert str(Problem("a.json", "", "bad")) == "a.json: bad"
    assert str(Problem("a.json", "labels.x", "bad")) == "a.json: labels.x: bad"


def test_output_checks_name_the_flag_and_the_reason(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "is a folder" in str(file_problems(tmp_path, "-o")[0])
    assert "is a file" in str(file_problems(tmp_path / "f" / "out.json", "-o")[0])
    assert "not a folder" in str(folder_problems(tmp_path / "f", "--preview")[0])
    assert file_problems(tmp_path / "new" / "deeper" / "out.json", "-o") == []
    assert not (tmp_path / "new").exists()                               # checking creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not writable" in str(file_problems(ro / "out.json", "-o")[0])
    finally:
        ro.chmod(0o755)


def _console_scripts():
    """(name, module) of every console script in setup.cfg."""
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = [l.strip() for l in cfg["options.entry_points"]["console_scripts"].splitlines() if l.strip()]
    pairs = [tuple(x.strip() for x in l.split("=")) for l in lines]
    return [(name, target.split(":")[0]) for name, target in pairs]


@pytest.mark.parametrize("name,module", _console_scripts())
def test_every_console_script_has_version_and_shows_defaults(name, module, capsys):
    import importlib

    from nnunetv2_malenia import __version__

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} (nnunetv2_malenia) {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: {name}")
    if name != "nnUNetv2_malenia_check":              # check has no option with a default
        assert "default" in help_text
    assert "(default: None)" not in help_text and "(default: False)" not in help_text


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc, read-only even for root")
def test_read_only_location_is_refused_even_for_root(tmp_path, capsys):
    """/proc refuses new files to every user: the check tries to create one instead of trusting os.access."""
    from bad_inputs import run_bad
    from nnunetv2_malenia.reports.cli import main

    assert "not writable: cannot create files in /proc" in str(file_problems("/proc/out.json", "-o")[0])
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "case_1.txt").write_text("A round hypodense lesion.", encoding="utf-8")
    _, err = run_bad(main, "nnUNetv2_malenia_parse_reports", ["-i", folder, "-o", "/proc/parsed.json", "--organ",
                                                              "kidney"], "-o in a read-only folder", capsys)
    assert "/proc/parsed.json: -o: not writable" in err
