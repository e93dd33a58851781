"""Write README's generated Results blocks from actual run outputs, so no number there is typed by hand.

    python benchmarks/readme_results.py --benchmark docs/results/quick \
        --block demo-cpu=docs/results/demo_cpu.md --block predict-speed=docs/results/predict_speed.md

A block is the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in README.md:
- ``--benchmark REPORT_DIR`` fills ``benchmark-PROFILE`` with sections of the report that ``bench_zero_shot.py
  --out REPORT_DIR`` wrote (benchmark.md) as level-4 headings under README's profile heading, and a link to it;
- ``--block NAME=FILE`` fills block NAME with a markdown file a tool wrote as it is: the results.md of
  ``nnUNetv2_malenia_demo``, the .md of ``bench_predict.py --out``.
README.md is replaced atomically; a missing marker pair is an error naming it (add the markers where the block goes).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
# the report's sections that README shows (the rest is in the linked report)
BENCHMARK_SECTIONS = ("Unseen diseases", "Class-agnostic lesion segmentation", "Lesion detection", "Seen diseases",
                      "Naming the true unseen lesions", "Generalised zero-shot with calibrated stacking",
                      "Generalised zero-shot with location maps", "Cost (same run, same machine)")


def sections(markdown: str, wanted: Sequence[str], level: int) -> List[str]:
    """The ``#``-headed sections whose title starts with one of ``wanted``, every heading set to ``level``."""
    out, keep = [], False
    for line in markdown.splitlines():
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            keep = any(heading.group(2).startswith(w) for w in wanted)
            if keep:
                line = "#" * level + " " + heading.group(2)
        if keep:
            out.append(line)
    return out


def benchmark_block(report_dir: Path) -> str:
    md = (report_dir / "benchmark.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    # the report's header paragraph (what was run, on what) up to its first section
    first = next(i for i, line in enumerate(lines) if line.startswith("## "))
    header = "\n".join(lines[1:first]).strip()
    link = os.path.relpath(report_dir / "benchmark.md", REPO)
    # under README's "### ... profile" heading
    body = sections(md, BENCHMARK_SECTIONS, level=4)
    return "\n".join([header, "", f"Full report with plots: [{link}]({link}).", ""] + body).strip() + "\n"


def replace_block(readme: str, name: str, content: str) -> str:
    start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(readme):
        sys.exit(f"README.md: no '{start}' ... '{end}' markers; add them where the block goes")
    return pattern.sub(lambda _: f"{start}\n{content.strip()}\n{end}", readme, count=1)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", type=Path, action="append", default=[],
                   help="report folder of bench_zero_shot.py (benchmark.md + benchmark.json); repeatable")
    p.add_argument("--block", action="append", default=[], metavar="NAME=FILE",
                   help="fill block NAME with the markdown FILE (demo results.md, bench_predict.py output); repeatable")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = p.parse_args(argv)
    import json

    from nnunetv2_malenia.utils.atomic_io import write_text_atomic

    readme = args.readme.read_text(encoding="utf-8")
    for report_dir in args.benchmark:
        profile = json.loads((report_dir / "benchmark.json").read_text())["profile"]
        readme = replace_block(readme, f"benchmark-{profile}", benchmark_block(report_dir))
    for spec in args.block:
        name, sep, file = spec.partition("=")
        if not sep:
            sys.exit(f"--block {spec}: expected NAME=FILE")
        readme = replace_block(readme, name, Path(file).read_text(encoding="utf-8"))
    write_text_atomic(readme, args.readme)
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
