"""Shared test fixtures: tiny nnU-Net raw datasets on disk and paths to the shared real data.

Import the helper in a test module with ``from conftest import make_raw_dataset`` (pytest puts this folder on
sys.path), or use the ``nnunet_raw`` fixture for a temporary ``nnUNet_raw`` folder that the environment points to.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANNOTATIONS_XLSX = SHARED_DATA / "malenia_annotations" / "annotations_dev.xlsx"
VOLUME_SHAPE = (8, 8, 8)


def make_raw_dataset(root: Path | str, labels: Mapping[str, int], cases: Sequence[str],
                     attributes: Optional[Mapping] = None, channel_names: Optional[Mapping[str, str]] = None
                     ) -> Path:
    """Write a tiny nnU-Net v2 raw dataset into the folder ``root`` (created; typically
    ``<nnUNet_raw>/Dataset501_Name``) and return it.

    - ``dataset.json`` with ``labels`` (``background: 0`` added when missing), one CT channel, ``.nii.gz``.
    - ``imagesTr/<case>_0000.nii.gz``: 8x8x8 int16 noise around 40 HU, spacing 1 mm.
    - ``labelsTr/<case>.nii.gz``: 8x8x8 uint8; each foreground label value paints its own 2x2x2 block
      (label ``k`` at voxels ``[2k-2:2k, 2:4, 2:4]``, so up to four labels fit), so every label is present.
    - ``malenia_attributes.json`` = ``attributes`` as given (not validated: tests write bad ones on purpose);
      nothing is written when ``attributes`` is None.
    """
    import SimpleITK as sitk

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    all_labels = {"background": 0, **dict(labels)}
    dataset_json = {"channel_names": dict(channel_names or {"0": "CT"}), "labels": all_labels,
                    "numTraining": len(cases), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(dataset_json, indent=2, ensure_ascii=False), encoding="utf-8")
    rng = np.random.default_rng(0)
    for case in cases:
        image = (40 + 10 * rng.standard_normal(VOLUME_SHAPE)).astype(np.int16)      # [Z, Y, X]
        seg = np.zeros(VOLUME_SHAPE, dtype=np.uint8)                                  # [Z, Y, X]
        for value in all_labels.values():
            if isinstance(value, int) and 0 < value <= VOLUME_SHAPE[0] // 2:
                seg[2 * value - 2:2 * value, 2:4, 2:4] = value
        for array, path in ((image, root / "imagesTr" / f"{case}_0000.nii.gz"),
                            (seg, root / "labelsTr" / f"{case}.nii.gz")):
            volume = sitk.GetImageFromArray(array)
            volume.SetSpacing((1.0, 1.0, 1.0))
            sitk.WriteImage(volume, str(path))
    if attributes is not None:
        (root / "malenia_attributes.json").write_text(json.dumps(attributes, indent=2, ensure_ascii=False),
                                                      encoding="utf-8")
    return root


@pytest.fixture
def nnunet_raw(tmp_path, monkeypatch) -> Path:
    """An empty ``nnUNet_raw`` folder; the nnU-Net environment variables point into ``tmp_path``."""
    raw = tmp_path / "nnUNet_raw"
    raw.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "nnUNet_preprocessed"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "nnUNet_results"))
    return raw


@pytest.fixture
def annotations_xlsx() -> Path:
    """The real annotation spreadsheet from ../shared/data (the test is skipped when it is absent)."""
    if not ANNOTATIONS_XLSX.is_file():
        pytest.skip(f"annotation spreadsheet not found at {ANNOTATIONS_XLSX} (shared/ must sit beside the repo)")
    return ANNOTATIONS_XLSX


def pytest_sessionfinish(session, exitstatus):
    """With MALENIA_BAD_INPUT_CATALOGUE set, write the bad-input catalogue from this session's run_bad calls."""
    import os

    target = os.environ.get("MALENIA_BAD_INPUT_CATALOGUE")
    if target:
        from bad_inputs import RECORDS, write_catalogue

        if RECORDS:
            write_catalogue(Path(target))
