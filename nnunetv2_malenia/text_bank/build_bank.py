"""Build (or reuse) a dataset's text bank: every distinct description encoded once, stored in nnUNet_preprocessed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes import DatasetAttributes, load_dataset_attributes
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.utils.cli import folder_problems, make_parser
from nnunetv2_malenia.paths import nnunet_folder, raw_dataset_folder
from nnunetv2_malenia.text_bank.bank import (PARAGRAPH_ASPECT, SIDECAR_FILENAME, TextBank, content_hash, load_bank,
                                             new_bank, paragraph_text, save_bank)
from nnunetv2_malenia.text_bank.encoder import DEFAULT_ENCODER, TextEncoder, encoder_id_for


def bank_entries(dataset_attributes: DatasetAttributes) -> List[Tuple[str, str]]:
    """Distinct (aspect, text) rows: every description, then one paragraph per label default and per-case lesion."""
    entries = list(dataset_attributes.all_descriptions())
    seen = set(entries)
    lesion_names = [la.name for la in dataset_attributes.lesion_labels]
    targets = [(None, name) for name in lesion_names]
    targets += [(case, name) for case, per_case in dataset_attributes.cases.items()
                for name in per_case if name in lesion_names]
    for case_id, name in targets:
        entry = (PARAGRAPH_ASPECT, paragraph_text(dataset_attributes.descriptions_for(case_id, name)))
        if entry not in seen:
            seen.add(entry)
            entries.append(entry)
    return entries


def build_bank(entries: Sequence[Tuple[str, str]], encoder: TextEncoder, progress: bool = True) -> TextBank:
    # Each description is its own row: the multi-positive loss needs one embedding per accepted description.
    embeddings = encoder.encode([text for _, text in entries], progress=progress)   # [R, D]
    return new_bank(list(entries), embeddings, encoder.encoder_id)


def _stored_field(folder: Path, key: str) -> Optional[str]:
    try:
        return json.loads((folder / SIDECAR_FILENAME).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def ensure_bank(dataset_name_or_id: str, text_encoder: TextEncoder | str | None = None, force: bool = False,
                verbose: bool = True, device: str = "cpu") -> TextBank:
    """The dataset's bank, rebuilt only when its texts or encoder changed (or ``force``)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise MaleniaInputError(Problem("", "--device", f"{device}: torch sees no CUDA GPU on this machine; use "
                                                            f"--device cpu (encoding a bank takes seconds on a CPU)"))
    raw_folder = raw_dataset_folder(str(dataset_name_or_id))
    if not raw_folder.is_dir():
        raise MaleniaInputError(f"dataset folder {raw_folder} does not exist")
    out_folder = nnunet_folder("nnUNet_preprocessed") / raw_folder.name
    entries = bank_entries(load_dataset_attributes(raw_folder))
    if text_encoder is None:
        # Keep the encoder the user chose with nnUNetv2_malenia_build_bank --text-encoder (e.g. Clinical-BERT):
        # a rebuild after an attribute edit must not silently switch to the default encoder.
        text_encoder = _stored_field(out_folder, "encoder_id")
    if text_encoder is None or isinstance(text_encoder, str):
        encoder_name = text_encoder or DEFAULT_ENCODER
        # The id is known without loading weights, so checking an up-to-date bank costs no model load.
        encoder_id = encoder_id_for(encoder_name)
    else:
        encoder_name, encoder_id = None, text_encoder.encoder_id
    wanted = content_hash(entries, encoder_id)
    if not force and _stored_field(out_folder, "content_hash") == wanted:
        try:
            bank = load_bank(out_folder, expected_hash=wanted)
        except MaleniaInputError as e:
            raise MaleniaInputError(e.problems + [Problem("", "", f"the stored text bank in {out_folder} is damaged; "
                                                                  f"rebuild it: nnUNetv2_malenia_build_bank "
                                                                  f"{dataset_name_or_id} --force")]) from None
        if verbose:
            print(f"text bank in {out_folder} is up to date ({len(bank)} rows, encoder {encoder_id}); reusing it")
        return bank
    # before loading the encoder and encoding: a read-only nnUNet_preprocessed fails now, not after the work
    raise_if_problems(folder_problems(out_folder, "nnUNet_preprocessed"))
    encoder = TextEncoder(encoder_name, device=device) if encoder_name is not None else text_encoder
    if verbose:
        print(f"encoding {len(entries)} texts with {encoder.encoder_id} into {out_folder}")
    bank = build_bank(entries, encoder, progress=verbose)
    save_bank(bank, out_folder)
    return bank


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = make_parser(
        "nnUNetv2_malenia_build_bank",
        "Encode every attribute description of a dataset (knowledge table + malenia_attributes.json) "
                    "and store the embeddings in nnUNet_preprocessed/<dataset>/malenia_text_bank.*. Reuses the "
                    "stored bank when texts and encoder are unchanged.")
    parser.add_argument("dataset_name_or_id", help="nnU-Net dataset name or id, e.g. Dataset501_Lesions or 501")
    parser.add_argument("--text-encoder", default=DEFAULT_ENCODER,
                        help=f"transformers encoder name (must be cached locally; nothing is downloaded) or local "
                             f"model folder. Default: {DEFAULT_ENCODER} (offline all-MiniLM-L6-v2)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the stored bank is up to date")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device to encode on")
    args = parser.parse_args(argv)
    try:
        ensure_bank(args.dataset_name_or_id, args.text_encoder, force=args.force, device=args.device)
    except MaleniaInputError as e:
        exit_with_problems(e)


if __name__ == "__main__":
    main()
