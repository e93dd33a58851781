"""Command-line mistakes a new user makes, one per row: each must end in exit 2 with the flag (or file) named and no
traceback. The rows also feed docs/bad_inputs.md (see tests/bad_inputs.py)."""
from __future__ import annotations

import importlib

import pytest

from bad_inputs import run_bad

# (command, module, argv with {tmp} for the test's folder, kind of input, fragment the message must contain)
CASES = [
    ("nnUNetv2_malenia_phantoms", "phantoms.cli", ["-d", "950", "-o", "{tmp}", "--size", "8", "8", "8"],
     "--size below the 16-voxel minimum", "--size: each dimension must be at least 16 voxels"),
    ("nnUNetv2_malenia_phantoms", "phantoms.cli", ["-d", "950", "-o", "{tmp}", "--spacing", "0", "1", "1"],
     "zero voxel spacing", "--spacing: must be positive"),
    ("nnUNetv2_malenia_phantoms", "phantoms.cli", ["-d", "950", "-o", "{tmp}", "--cases", "0"],
     "no training case", "--cases: need at least one training case"),
    ("nnUNetv2_malenia_phantoms", "phantoms.cli", ["-d", "950", "-o", "{tmp}", "--background", "{tmp}/ct.nii.gz"],
     "--background without --organs", "--background/--organs: real-anatomy mode needs both"),
    ("nnUNetv2_malenia_phantoms", "phantoms.cli", ["-d", "950", "-o", "{tmp}", "--split", "seen",
                                                   "--knowledge-table", "{tmp}/missing.json"],
     "--knowledge-table file that does not exist", "missing.json: knowledge table file not found"),
    ("nnUNetv2_malenia_evaluate", "evaluation.evaluate", ["-ref", "{tmp}/labelsTs", "-pred", "{tmp}/pred", "-o",
                                                          "{tmp}/e.json"],
     "reference and prediction folders that do not exist", "labelsTs: -ref: folder not found"),
    ("nnUNetv2_malenia_evaluate", "evaluation.evaluate", ["-ref", "{tmp}", "-pred", "{tmp}", "-o", "{tmp}/e.json",
                                                          "--nsd-tolerance", "-1"],
     "negative NSD tolerance", "--nsd-tolerance: must be a number >= 0"),
    ("nnUNetv2_malenia_evaluate", "evaluation.evaluate", ["-ref", "{tmp}", "-pred", "{tmp}", "-o", "{tmp}/e.json",
                                                          "--label-map", "Tumour"],
     "--label-map without '='", "--label-map: 'Tumour': expected PRED_NAME=REF_NAME"),
    ("nnUNetv2_malenia_parse_reports", "reports.cli", ["-i", "{tmp}/nothing_here", "-o", "{tmp}/p.json"],
     "report input that does not exist", "nothing_here: input not found"),
    ("nnUNetv2_malenia_parse_reports", "reports.cli", ["-i", "{tmp}", "-o", "{tmp}/p.json"],
     "folder of reports without --organ/--disease", "--organ/--disease: a folder of .txt reports needs"),
    ("nnUNetv2_malenia_import_annotations", "attributes.import_annotations", ["{tmp}/a.xlsx"],
     "neither -o nor -d", "-o: give -o FILE (or -d DATASET"),
    ("nnUNetv2_malenia_predict", "inference.predict", ["-i", "{tmp}", "-o", "{tmp}/out"],
     "neither -m nor -d", "give the model folder with -m, or -d"),
    ("nnUNetv2_malenia_predict", "inference.predict", ["-i", "{tmp}", "-o", "{tmp}/out", "-m", "{tmp}"],
     "-m folder that is not a trained model", "plans.json: not found; is"),
    ("nnUNetv2_malenia_convert_kits23", "converters.kits23", ["{tmp}/no_kits", "-o", "{tmp}/raw"],
     "KiTS23 folder that does not exist", "no_kits"),
]


@pytest.mark.parametrize("prog,module,argv,kind,fragment", CASES, ids=[c[3] for c in CASES])
def test_command_line_mistake_is_named(prog, module, argv, kind, fragment, tmp_path, capsys):
    main = importlib.import_module(f"nnunetv2_malenia.{module}").main
    _, err = run_bad(main, prog, [a.format(tmp=tmp_path) for a in argv], kind, capsys)
    assert fragment in err
    assert not (tmp_path / "Dataset950_MaleniaPhantom").exists() and not (tmp_path / "raw").exists()
