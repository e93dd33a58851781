"""Per-case lesion reports from a written zero-shot label map, or from lesion masks the user gives.

Lesions are the connected components of the label map nnU-Net wrote (what the user sees), or of a given mask
(``naming="model"``: the mask's label values name no disease, so each lesion's ``disease`` is the model's top-ranked
one). To ask the tokens about a
lesion, the image and a map of lesion ids go through nnU-Net's own preprocessing (transpose, crop, resample: the
exact mapping the network saw), and one patch of the plan's size around each lesion is run through every fold.
Costs one extra preprocessing per case and one forward pass per lesion and fold.

With location maps (``--location-maps``, inference/location_map.py) a lesion's location is read from the case's
organ map and its diseases re-ranked by it; a predicted label map is then rewritten with each lesion labelled by its
report's disease, so the label maps and the reports agree.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image

from nnunetv2_malenia.attributes.schema import ASPECTS, load_vocabulary
from nnunetv2_malenia.evaluation.lesions import component_index_map, lesion_components
from nnunetv2_malenia.inference.lesion_description import RegionScores, aspect_rows, region_scores
from nnunetv2_malenia.inference.location_map import DEFAULT_LOCATION_FLOOR, LocationMaps, rank_by_location
from nnunetv2_malenia.utils.atomic_io import write_image_atomic, write_json_atomic

REPORT_FORMAT = 1
NAMINGS = ("label", "model")


def _patch_slices(center: Sequence[int], patch: Sequence[int], shape: Sequence[int]) -> tuple:
    """A window of ``patch`` voxels around ``center`` shifted inside the volume (if the volume is big enough)."""
    starts = [min(max(c - p // 2, 0), max(s - p, 0)) for c, p, s in zip(center, patch, shape)]
    return tuple(slice(st, st + p) for st, p in zip(starts, patch))


def _world_geometry(component, image: sitk.Image) -> dict:
    """Volume, centroid and bounding box of a lesion component ([Z, Y, X] index order) in world (mm) coordinates."""
    offset = np.array([s.start for s in component.slices])
    zyx = np.argwhere(component.mask) + offset                           # [n, 3] (z, y, x)
    spacing = np.array(image.GetSpacing())                              # (x, y, z)
    to_world = image.TransformContinuousIndexToPhysicalPoint
    lo, hi = zyx.min(0)[::-1], zyx.max(0)[::-1]                          # (x, y, z) index corners
    # all eight corners: with a rotated direction matrix the world box is not spanned by two of them
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    pts = np.array([to_world(tuple(float(v) for v in c)) for c in corners])
    centroid = to_world(tuple(float(v) for v in zyx.mean(0)[::-1]))
    return {"num_voxels": int(len(zyx)), "volume_ml": round(float(len(zyx) * np.prod(spacing) / 1000.0), 4),
            "centroid_mm": [round(float(v), 2) for v in centroid],
            "bbox_mm": {"min": [round(float(v), 2) for v in pts.min(0)],
                        "max": [round(float(v), 2) for v in pts.max(0)]}}


def follow_components(lesions: List[dict], ids: np.ndarray, renamed: np.ndarray) -> List[dict]:
    """Renamed lesions in the order and with the ids of ``lesion_components(renamed)``, the order evaluation reads
    reports in. ``ids``: the lesions' id map (id + 1) on the same grid. Each lesion is a whole connected component
    of lesion voxels with one label, so it is exactly one component of the renamed map."""
    out = []
    for comp in lesion_components(renamed):
        first_voxel = tuple(int(s.start + i) for s, i in zip(comp.slices, np.argwhere(comp.mask)[0]))
        entry = dict(lesions[int(ids[first_voxel]) - 1], id=comp.id)
        assert entry["label"] == comp.label, (entry["label"], comp.label)
        out.append(entry)
    return out


class LesionReporter:
    """Writes ``CASE.json`` reports for a prepared MaleniaPredictor (zero-shot classes already set)."""

    def __init__(self, predictor, overlay_folder: Optional[Path] = None, locations: Optional[LocationMaps] = None,
                 location_floor: float = DEFAULT_LOCATION_FLOOR):
        self.predictor = predictor
        self.locations = locations
        self.location_floor = location_floor
        self.classes = predictor.classes
        self.rows = aspect_rows(self.classes.bank.aspect_index())
        self.bank = self.classes.bank
        self.vocab = load_vocabulary()
        self.overlay_folder = overlay_folder

    def _preprocessed(self, image_files: List[str], ids: np.ndarray, reference: sitk.Image):
        """(data [C, *S'], lesion-id map [*S']) after nnU-Net's own preprocessing of the image and the id map."""
        p = self.predictor
        with tempfile.TemporaryDirectory() as tmp:
            ids_file = str(Path(tmp) / f"ids{p.dataset_json['file_ending']}")
            ids_img = sitk.GetImageFromArray(ids.astype(np.int16))
            ids_img.CopyInformation(reference)
            sitk.WriteImage(ids_img, ids_file)
            preprocessor = p.configuration_manager.preprocessor_class(verbose=False)
            data, seg, _ = preprocessor.run_case(image_files, ids_file, p.plans_manager, p.configuration_manager,
                                                 p.dataset_json)
        return torch.from_numpy(data).float(), torch.from_numpy(seg[0]).long()

    def _windows(self, seg: torch.Tensor, num_ids: int) -> Dict[tuple, List[int]]:
        """Patch window -> the id-map values whose lesion is centred in it. Lesions sharing a window share one
        forward pass: a poorly trained model can predict hundreds of fragments, and a small scan is one window."""
        patch = list(self.predictor.configuration_manager.patch_size)
        windows: Dict[tuple, List[int]] = {}
        for value in range(1, num_ids + 1):
            where = torch.nonzero(seg == value)                                          # [n, 3]
            if len(where) == 0:
                continue                                   # vanished in resampling (a voxel or two): no description
            center = where.float().mean(0).round().long().tolist()
            if len(patch) == 2:                            # 2D model: the lesion's central slice
                window = (slice(center[0], center[0] + 1),) + _patch_slices(center[1:], patch, seg.shape[1:])
            else:
                window = _patch_slices(center, patch, seg.shape)
            windows.setdefault(tuple((w.start, w.stop) for w in window), []).append(value)
        return windows

    def _patch(self, data: torch.Tensor, seg: torch.Tensor, key: tuple):
        """(patch [C, *P], id map [*P]) of one window, zero-padded to the patch size where the scan is smaller."""
        patch = list(self.predictor.configuration_manager.patch_size)
        window = tuple(slice(a, b) for a, b in key)
        x, ids = data[(slice(None),) + window], seg[window]
        if len(patch) == 2:
            x, ids = x[:, 0], ids[0]
        x, pad_slicer = pad_nd_image(x, patch, "constant", {"value": 0}, True)           # [C, *P]
        ids_padded = torch.zeros(x.shape[1:], dtype=torch.long)
        ids_padded[tuple(pad_slicer[1:])] = ids
        return torch.as_tensor(x), ids_padded

    @torch.no_grad()
    def window_outputs(self, image_files: List[str], ids: np.ndarray, reference: sitk.Image
                       ) -> Iterator[Tuple[dict, torch.Tensor, List[int]]]:
        """Per fold and patch window: (the network's dict for the window, its id map [*P], the id-map values of the
        lesions centred in it)."""
        p = self.predictor
        data, seg = self._preprocessed(image_files, ids, reference)                     # [C, *S'], [*S']
        windows = self._windows(seg, int(ids.max()))
        for params in p.list_of_parameters:
            p.load_fold(params)
            p.network.eval()
            for key, values in windows.items():
                x, window_ids = self._patch(data, seg, key)
                yield p.network(x[None].to(p.device), return_dict=True), window_ids, values

    def describe(self, image_files: List[str], ids: np.ndarray, reference: sitk.Image) -> Dict[int, RegionScores]:
        """id-map value (lesion id + 1) -> its scores, averaged over folds."""
        scores: Dict[int, RegionScores] = {}
        for outputs, window_ids, values in self.window_outputs(image_files, ids, reference):
            for value in values:
                a, d = region_scores(outputs, window_ids == value, self.rows)
                scores.setdefault(value, RegionScores(self.rows)).add(a, d)
        return scores

    def _attribute_entry(self, aspect: str, row: int, score: float) -> dict:
        text = self.bank.texts[row]
        return {"value": self.vocab.key_of_text(aspect, text), "description": text, "score": round(score, 4)}

    def report(self, case: str, image_files: List[str], seg_file: str, naming: str = "label") -> dict:
        """naming "label": ``seg_file`` is a zero-shot label map (value k = the k-th disease); "model": it is a
        lesion mask with labels of its own, and each lesion is named by the model's top-ranked disease."""
        return self._report(case, image_files, seg_file, naming)[0]

    def _report(self, case: str, image_files: List[str], seg_file: str, naming: str
                ) -> Tuple[dict, Optional[sitk.Image]]:
        """The report, and the label map (same geometry) with every lesion labelled by its report's disease where
        location maps rename the lesions of a predicted label map (else None)."""
        assert naming in NAMINGS, f"naming must be one of {NAMINGS}; got {naming!r}"
        seg_img = sitk.ReadImage(seg_file)
        seg = sitk.GetArrayFromImage(seg_img)                                    # [Z, Y, X]
        location_map = self.locations.read(case) if self.locations is not None else None
        renaming = location_map is not None and naming == "label"
        # Lesions to rename are the connected components of all lesion voxels: a lesion that dense prediction split
        # between two diseases is one lesion, and gets one name.
        components = lesion_components((seg > 0).astype(np.uint8) if renaming else seg)
        ids = component_index_map(seg.shape, components)                        # lesion id + 1, 0 = none
        scores = self.describe(image_files, ids, seg_img) if components else {}
        diseases = self.classes.diseases
        lesions = []
        for comp in components:
            # a renamed lesion starts with its most frequent predicted label (kept if it has no scores)
            label = int(np.bincount(seg[comp.slices][comp.mask]).argmax()) if renaming else int(comp.label)
            entry = {"id": comp.id, "label": label, "disease": diseases[label - 1] if naming == "label" else None,
                     **_world_geometry(comp, seg_img)}
            s = scores.get(comp.id + 1)
            if s is not None:
                entry["attributes"] = {a: self._attribute_entry(a, *s.best_rows()[a]) for a in ASPECTS
                                       if a in s.best_rows()}
                ranked = s.ranked_diseases(diseases)
                if location_map is not None:
                    ranked = self._located(entry, ranked, location_map[comp.slices][comp.mask])
                entry["diseases"] = [{"name": n, "score": round(v, 4)} for n, v in ranked]
                if naming == "model" or renaming:
                    entry["disease"] = entry["diseases"][0]["name"]
                if renaming:
                    entry["label"] = diseases.index(entry["disease"]) + 1
            else:
                entry["attributes"], entry["diseases"] = {}, []
            lesions.append(entry)
        renamed_image = None
        if renaming:
            renamed = np.zeros_like(seg)
            for comp, entry in zip(components, lesions):
                renamed[comp.slices][comp.mask] = entry["label"]
            lesions = follow_components(lesions, ids, renamed)
            renamed_image = sitk.GetImageFromArray(renamed)
            renamed_image.CopyInformation(seg_img)
        return {"format_version": REPORT_FORMAT, "case": case, "segmentation": str(seg_file),
                "lesions_from": "prediction" if naming == "label" else "given mask",
                "location_from": "location map" if location_map is not None else "tokens",
                "scan": {"enhancement_status": self._scan_enhancement(lesions)}, "lesions": lesions}, renamed_image

    def _located(self, entry: dict, ranked: List[Tuple[str, float]], values: np.ndarray) -> List[Tuple[str, float]]:
        """Re-rank one lesion's diseases by the location map's values under it [n]; its location attribute and
        shares go into ``entry``. A lesion the map gives no location keeps the tokens' ranking and location."""
        ranked, shares = rank_by_location(ranked, values, self.locations.names, self.predictor.knowledge_table,
                                          self.location_floor)
        entry["location_shares"] = {name: round(share, 4) for name, share in shares.items()}
        if shares:
            where, share = next(iter(shares.items()))
            known = where in self.vocab.values["location"]
            entry["attributes"]["location"] = {"value": where if known else None,
                                               "description": self.vocab.text("location", where) if known
                                               else f"located in the {where}", "score": round(share, 4),
                                               "source": "location map"}
        return ranked

    @staticmethod
    def _scan_enhancement(lesions: List[dict]) -> dict:
        """The phase of the scan as its lesions show it: volume-weighted vote of their enhancement status."""
        votes: Dict[str, float] = {}
        texts: Dict[str, dict] = {}
        for lesion in lesions:
            e = lesion.get("attributes", {}).get("enhancement_status")
            if e:
                key = e["value"] or e["description"]
                votes[key] = votes.get(key, 0.0) + lesion["volume_ml"] * e["score"]
                texts[key] = e
        if not votes:
            return {"value": None, "description": "no lesion found: phase not assessed", "score": 0.0}
        best = max(votes, key=votes.get)
        return {"value": texts[best]["value"], "description": texts[best]["description"],
                "score": round(votes[best] / max(sum(votes.values()), 1e-8), 4)}

    def write(self, case: str, image_files: List[str], seg_file: str, out_json: Path, naming: str = "label") -> dict:
        report, renamed = self._report(case, image_files, seg_file, naming)
        if renamed is not None:
            # the label map first: a report must never name lesions its label map does not have
            write_image_atomic(renamed, seg_file, self.predictor.dataset_json["file_ending"])
        write_json_atomic(report, out_json)
        if self.overlay_folder is not None and report["lesions"]:
            from nnunetv2_malenia.inference.overlay import write_overlays

            write_overlays(report, image_files[0], seg_file, self.overlay_folder)
        return report
