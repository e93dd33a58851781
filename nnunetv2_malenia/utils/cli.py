"""What every console script shares: ``--version``, defaults shown in ``--help``, and output checks that run before
the work, so a read-only or mistyped ``-o`` costs the user an error line instead of a traceback at the end."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import List, Optional

from nnunetv2_malenia.errors import Problem


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions keep their line breaks (long lines are wrapped); option help gets ``(default: X)`` unless it
    already says its default.

    argparse's own ArgumentDefaultsHelpFormatter also prints ``(default: None)`` and ``(default: False)`` for every
    optional flag, which tells the user nothing, and doubles defaults that the help text already states."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         if len(line) + len(indent) > width else indent + line for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS) or default == []
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def make_parser(prog: str, description: Optional[str] = None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with the project's help formatter and ``--version``."""
    from nnunetv2_malenia import __version__

    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter, **kwargs)
    parser.add_argument("--version", action="version", version=f"%(prog)s (nnunetv2_malenia) {__version__}")
    return parser


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _can_create_in(folder: Path) -> bool:
    """Try it: os.access says yes to root on a read-only mount and on chmod 0555 folders."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def folder_problems(folder: Path | str, flag: str) -> List[Problem]:
    """Problems with writing into ``folder`` (created later if missing): a file in the way, or no permission."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return [Problem(str(folder), flag, "exists and is not a folder")]
    return _creatable(folder, folder, flag)


def _creatable(folder: Path, subject: Path, flag: str) -> List[Problem]:
    base = _nearest_existing(folder.absolute())
    if not base.is_dir():
        return [Problem(str(subject), flag, f"cannot be created: {base} is a file, not a folder")]
    if not _can_create_in(base):
        return [Problem(str(subject), flag, f"not writable: cannot create files in {base}")]
    return []


def file_problems(file: Path | str, flag: str) -> List[Problem]:
    """Problems with writing ``file`` (written via a temporary file in its folder, then renamed onto it)."""
    file = Path(file)
    if file.is_dir():
        return [Problem(str(file), flag, "is a folder; give a file name")]
    if file.exists() and not os.access(file, os.W_OK):
        return [Problem(str(file), flag, "exists and is read-only")]
    return _creatable(file.parent, file, flag)
