"""Tissue HU per scan phase. Contrast raises blood and parenchyma; the paper's rule (aorta+IVC mean < 80 HU
means non-contrast) holds by construction: blood is 40 HU without contrast and 150-180 HU with it."""
from __future__ import annotations

from typing import Dict

PHASES = ("non_contrast", "contrast_enhanced")

_HU: Dict[str, Dict[str, float]] = {
    #                 non-contrast, portal-venous contrast
    "air": {"non_contrast": -1000.0, "contrast_enhanced": -1000.0},
    "fat": {"non_contrast": -100.0, "contrast_enhanced": -100.0},
    "muscle": {"non_contrast": 50.0, "contrast_enhanced": 60.0},
    "bone": {"non_contrast": 550.0, "contrast_enhanced": 550.0},
    "aorta": {"non_contrast": 40.0, "contrast_enhanced": 180.0},
    "ivc": {"non_contrast": 40.0, "contrast_enhanced": 150.0},
    "liver": {"non_contrast": 60.0, "contrast_enhanced": 110.0},
    "hepatic_vessels": {"non_contrast": 40.0, "contrast_enhanced": 160.0},
    "spleen": {"non_contrast": 50.0, "contrast_enhanced": 120.0},
    "kidney": {"non_contrast": 35.0, "contrast_enhanced": 150.0},
    "pancreas": {"non_contrast": 45.0, "contrast_enhanced": 100.0},
    "gallbladder_wall": {"non_contrast": 40.0, "contrast_enhanced": 80.0},
    "bile": {"non_contrast": 10.0, "contrast_enhanced": 10.0},
    "colon_wall": {"non_contrast": 40.0, "contrast_enhanced": 90.0},
    "bowel_gas": {"non_contrast": -900.0, "contrast_enhanced": -900.0},
    "lung": {"non_contrast": -850.0, "contrast_enhanced": -850.0},
}

FLUID_HU = 5.0          # simple cyst / dilated duct content
CALCIUM_HU = 800.0      # stones and calcifications (markedly hyperdense)
NOISE_SD_HU = 12.0      # quantum noise of a routine abdominal CT


def tissue_hu(tissue: str, phase: str) -> float:
    return _HU[tissue][phase]


def tissues() -> tuple:
    return tuple(_HU)
