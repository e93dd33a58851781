"""One error type for bad user input, so every command can print it and exit non-zero the same way."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: which file, where inside it (a key path such as
    ``labels.kidney_tumor.attributes.density[0]`` or ``sheet 肾癌 row 7 column C``), and what."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        # a command-line problem has no file; leave out empty parts instead of printing ": --size: ..."
        return ": ".join(part for part in (self.file, self.where, self.message) if part)


class MaleniaInputError(ValueError):
    """Raised with every problem found in an input, not just the first, so users fix them in one go."""

    def __init__(self, problems: Sequence[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: List[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def raise_if_problems(problems: Iterable[Problem]) -> None:
    problems = list(problems)
    if problems:
        raise MaleniaInputError(problems)


def exit_with_problems(error: MaleniaInputError, footer: str | None = None) -> None:
    """What every command does with bad input: one ``error: file: where: message`` line per problem, exit 2."""
    import sys

    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)
    if footer:
        print(footer, file=sys.stderr)
    sys.exit(2)
