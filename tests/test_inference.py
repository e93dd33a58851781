"""Zero-shot classes, lesion descriptions and the plans block, without training (fast, CPU)."""
from __future__ import annotations

import pytest
import torch

from nnunetv2_malenia.attributes import load_knowledge_table
from nnunetv2_malenia.attributes.schema import ASPECTS
from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.inference.lesion_description import RegionScores, aspect_rows, region_scores
from nnunetv2_malenia.inference.zero_shot_classes import missing_rows, zero_shot_classes
from nnunetv2_malenia.network.bank_fingerprint import attach_bank_fingerprint, bank_fingerprint
from nnunetv2_malenia.text_bank.bank import new_bank
from nnunetv2_malenia.training.plans_block import make_block, read_block

D = 8


class FakeEncoder:
    encoder_id = "fake"

    def __init__(self):
        self.seen = []

    def encode(self, texts, progress=False):
        self.seen += list(texts)
        return torch.nn.functional.normalize(torch.randn(len(texts), D), dim=-1)


def bank_of(table, diseases):
    entries = []
    for name in diseases:
        for aspect, texts in table[name].descriptions.items():
            entries += [(aspect, t) for t in texts if (aspect, t) not in entries]
    return new_bank(entries, torch.nn.functional.normalize(torch.randn(len(entries), D), dim=-1), "fake")


def test_known_diseases_need_no_encoder_and_new_texts_are_appended():
    table = load_knowledge_table()
    bank = bank_of(table, ["kidney cyst", "liver tumor"])
    classes = zero_shot_classes(table, bank, ["kidney cyst", "liver tumor"], encoder=None)
    assert classes.new_texts == () and classes.bank is bank and classes.class_row_mask.shape == (2, len(bank))
    encoder = FakeEncoder()
    classes = zero_shot_classes(table, bank, None, encoder=encoder)        # all 12 diseases
    assert len(classes.diseases) == 12 and len(classes.bank) == len(bank) + len(encoder.seen)
    assert classes.bank.texts[:len(bank)] == bank.texts                    # training rows keep their indices
    assert classes.labels["background"] == 0 and classes.labels[classes.diseases[-1]] == 12
    assert missing_rows(table, classes.bank, classes.diseases) == []
    # every class accepts at least one row of every aspect
    aspects = classes.bank.aspect_index()
    for k in range(12):
        assert len(set(aspects[classes.class_row_mask[k]].tolist())) == len(ASPECTS)


def test_paragraph_classes_add_each_diseases_joined_descriptions():
    """Single-positive models: a disease also owns its descriptions joined into one paragraph row; a trained
    disease's paragraph is already in the bank, an unseen one's is encoded like any new description."""
    from nnunetv2_malenia.text_bank.bank import PARAGRAPH_ASPECT, paragraph_text

    table = load_knowledge_table()
    plain = bank_of(table, ["kidney cyst", "liver tumor"])
    kidney_paragraph = paragraph_text(table["kidney cyst"].descriptions)
    bank = new_bank(list(zip(plain.aspects, plain.texts)) + [(PARAGRAPH_ASPECT, kidney_paragraph)],
                    torch.cat([plain.embeddings, torch.nn.functional.normalize(torch.randn(1, D), dim=-1)]), "fake")
    assert missing_rows(table, bank, ["kidney cyst"], paragraphs=True) == []
    encoder = FakeEncoder()
    classes = zero_shot_classes(table, bank, ["kidney cyst", "liver tumor"], encoder=encoder, paragraphs=True)
    assert encoder.seen == [paragraph_text(table["liver tumor"].descriptions)]
    for k, name in enumerate(classes.diseases):
        row = classes.bank.row(PARAGRAPH_ASPECT, paragraph_text(table[name].descriptions))
        assert classes.class_row_mask[k, row] and classes.class_row_mask[:, row].sum() == 1
    assert not zero_shot_classes(table, bank, ["kidney cyst"]).class_row_mask[0, len(plain)]


def test_unknown_disease_and_unloadable_encoder_are_clear_errors(tmp_path):
    table = load_knowledge_table()
    bank = bank_of(table, ["kidney cyst"])
    with pytest.raises(MaleniaInputError, match="unknown diseases"):
        zero_shot_classes(table, bank, ["spleen thing"])
    gone = new_bank(list(zip(bank.aspects, bank.texts)), bank.embeddings, str(tmp_path / "gone_encoder"))
    with pytest.raises(MaleniaInputError) as e:
        zero_shot_classes(table, gone, ["kidney cyst", "liver tumor"])
    message = str(e.value)
    assert "gone_encoder" in message and table["liver tumor"].descriptions["location"][0] in message


def test_region_scores_weight_tokens_by_coverage_and_lesion_probability():
    R, Q = 6, 3
    row_aspect = torch.tensor([0, 0, 1, 1, 2, 2])                # two rows for each of the first three aspects
    rows = aspect_rows(row_aspect)
    texts = torch.eye(R + 1, 7)                                  # [R+1, C]: t0 = e0, row r = e_{r+1}
    tokens = torch.stack([texts[1] + texts[3], texts[2] + texts[4], texts[0]])   # [Q, C]
    masks = torch.full((Q, 4, 4, 4), -10.0)
    masks[0, :2] = 10.0                                          # token 0 covers the lesion
    masks[1, 2:] = 10.0                                          # token 1 covers elsewhere
    region = torch.zeros(4, 4, 4, dtype=torch.bool)
    region[:2] = True
    class_logits = torch.tensor([[-5.0, 5.0, 0.0], [-5.0, 0.0, 5.0], [5.0, -5.0, -5.0]])   # [Q, K+1], K = 2
    outputs = {"pred_masks": masks[None], "class_logits": class_logits[None], "block_embeddings": [tokens[None]],
               "text_embeddings": texts, "logit_scale": torch.tensor(10.0)}
    aspect_scores, disease_scores = region_scores(outputs, region, rows)
    assert int(aspect_scores[ASPECTS[0]].argmax()) == 0 and int(aspect_scores[ASPECTS[1]].argmax()) == 0
    assert aspect_scores[ASPECTS[3]].numel() == 0                # no rows of that aspect in this bank
    assert disease_scores.argmax() == 0 and torch.isclose(disease_scores.sum(), torch.tensor(1.0))
    acc = RegionScores(rows)
    acc.add(aspect_scores, disease_scores)
    acc.add(aspect_scores, disease_scores)
    assert acc.ranked_diseases(["a", "b"])[0][0] == "a"
    assert acc.best_rows()[ASPECTS[0]][0] == 0 and abs(acc.best_rows()[ASPECTS[0]][1] - float(
        aspect_scores[ASPECTS[0]].max())) < 1e-6


def test_region_scores_sum_to_one_when_every_claim_underflows():
    """A barely trained model: every mask logit -200 and p(t0) ~ 1, so coverage * p(lesion) is 0 in float32. The
    disease scores must still be a distribution, led by the token whose (tiny) claim is largest."""
    Q, K, C = 4, 3, 5
    rows = aspect_rows(torch.tensor([0, 0]))
    masks = torch.full((Q, 2, 2, 2), -200.0)
    masks[2] = -150.0                                            # token 2 claims the lesion least weakly
    class_logits = torch.full((Q, K + 1), -100.0)
    class_logits[:, 0] = 100.0
    class_logits[2, 3] = -90.0                                   # token 2 says disease 2
    outputs = {"pred_masks": masks[None], "class_logits": class_logits[None],
               "block_embeddings": [torch.randn(1, Q, C)], "text_embeddings": torch.randn(3, C),
               "logit_scale": torch.tensor(1.0)}
    region = torch.ones(2, 2, 2, dtype=torch.bool)
    aspect_scores, disease_scores = region_scores(outputs, region, rows)
    assert torch.isclose(disease_scores.sum(), torch.tensor(1.0)) and int(disease_scores.argmax()) == 2
    assert torch.isclose(aspect_scores[ASPECTS[0]].sum(), torch.tensor(1.0))
    _, no_voxels = region_scores(outputs, torch.zeros(2, 2, 2, dtype=torch.bool), rows)
    assert torch.isclose(no_voxels.sum(), torch.tensor(1.0))


def test_plans_block_round_trip_and_errors():
    table = load_knowledge_table()
    bank = bank_of(table, ["kidney cyst"])
    block = make_block(bank, {1: "kidney cyst"}, table, {"num_tokens": 16})
    parsed = read_block({"malenia": block}, "plans.json")
    assert parsed.network["num_bank_rows"] == len(bank) and parsed.classes == {1: "kidney cyst"}
    assert parsed.knowledge_table().names == table.names
    assert parsed.bank(bank.embeddings).rows_for(table["kidney cyst"].descriptions) == list(range(len(bank)))
    with pytest.raises(MaleniaInputError, match="not trained with nnUNetTrainerMalenia"):
        read_block({}, "plans.json")
    broken = dict(block, bank=dict(block["bank"], texts=block["bank"]["texts"][:-1]))
    with pytest.raises(MaleniaInputError, match="must agree"):
        read_block({"malenia": broken}, "plans.json")


def test_checkpoint_from_another_bank_is_refused():
    a = attach_bank_fingerprint(torch.nn.Linear(2, 2), "ab" * 32)
    b = attach_bank_fingerprint(torch.nn.Linear(2, 2), "cd" * 32)
    a.load_state_dict(a.state_dict())
    with pytest.raises(RuntimeError, match="does not match the bank recorded in plans.json"):
        b.load_state_dict(a.state_dict())
    assert bank_fingerprint("ab" * 32).shape == (32,)


# --- issue 13: model folders nnU-Net's predictor would crash on, found before anything is loaded --------------------

def _model_folder(tmp_path, malenia: bool = True):
    import json

    table = load_knowledge_table()
    block = make_block(bank_of(table, ["kidney cyst"]), {1: "kidney cyst"}, table, {"num_tokens": 16})
    configuration = {"data_identifier": "x", "patch_size": [16, 16, 16]}
    if malenia:
        configuration["malenia"] = block
    folder = tmp_path / "Dataset901_X" / "nnUNetTrainerMalenia__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": configuration}}))
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "kidney cyst": 1},
                                                     "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}))
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (images / "case_0000.nii.gz").write_bytes(b"")
    return folder, images


def test_predict_names_missing_checkpoints_and_plans_problems(tmp_path, capsys):
    from bad_inputs import run_bad
    from nnunetv2_malenia.inference.predict import main, model_problems

    folder, images = _model_folder(tmp_path)
    assert model_problems(folder, ["0"], "checkpoint_final.pth")[0].where == "-f/-chk"
    (folder / "fold_0" / "checkpoint_best.pth").write_bytes(b"")
    argv = ["-i", images, "-o", tmp_path / "out", "-m", folder, "-device", "cpu"]
    _, err = run_bad(main, "nnUNetv2_malenia_predict", argv, "model folder without fold_X/checkpoint_final.pth",
                     capsys)
    assert "-f/-chk: no fold_X/checkpoint_final.pth; this model folder has fold_0/checkpoint_best.pth" in err
    _, err = run_bad(main, "nnUNetv2_malenia_predict", argv + ["-f", "1"], "-f naming a fold that was not trained",
                     capsys)
    assert "fold_1/checkpoint_final.pth: -f/-chk: not found" in err
    assert model_problems(folder, None, "checkpoint_best.pth") == []
    good_plans = (folder / "plans.json").read_text()
    (folder / "plans.json").write_text('{"configurations": ')
    _, err = run_bad(main, "nnUNetv2_malenia_predict", argv + ["-chk", "checkpoint_best.pth"],
                     "malformed plans.json", capsys)
    assert "plans.json: line 1 column 20: invalid JSON" in err
    (folder / "plans.json").write_text(good_plans)
    _, err = run_bad(main, "nnUNetv2_malenia_predict", ["-i", images, "-o", images / "case_0000.nii.gz", "-m", folder,
                                                        "-chk", "checkpoint_best.pth"], "-o is a file", capsys)
    assert "case_0000.nii.gz: -o: exists and is not a folder" in err


def test_predict_refuses_a_model_not_trained_with_malenia(tmp_path, capsys):
    from bad_inputs import run_bad
    from nnunetv2_malenia.inference.predict import main

    folder, images = _model_folder(tmp_path, malenia=False)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    _, err = run_bad(main, "nnUNetv2_malenia_predict", ["-i", images, "-o", tmp_path / "out", "-m", folder,
                                                        "-device", "cpu"], "model not trained with Malenia",
                     capsys)
    assert "plans.json: malenia: no Malenia block in this plans configuration" in err


# --- issue 12: the prediction folder says which model (and so which trained classes) made it ------------------------

def test_prediction_record_round_trip_and_bad_records(tmp_path):
    import json

    from nnunetv2_malenia.inference.predict import prediction_record, read_trained_classes
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic

    record = prediction_record(tmp_path / "model", {2: "liver tumor", 1: "kidney cyst"}, ["kidney cyst"], [0],
                               "checkpoint_final.pth", ["my_table.json"], None)
    write_json_atomic(record, tmp_path / "record.json")
    assert read_trained_classes(tmp_path / "record.json") == {1: "kidney cyst", 2: "liver tumor"}
    assert record["model_folder"] == str((tmp_path / "model").resolve())
    for bad, where in (({**record, "format_version": 2}, "format_version"),
                       ({**record, "trained_classes": {}}, "trained_classes"),
                       ({**record, "trained_classes": {"1": ""}}, "trained_classes.1")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(MaleniaInputError) as e:
            read_trained_classes(tmp_path / "bad.json")
        assert [(p.file, p.where) for p in e.value.problems] == [(str(tmp_path / "bad.json"), where)]


@pytest.mark.parametrize("naming_rule", [None, "aspect_vote", "likelihood"])
def test_predict_records_the_model_before_writing_label_maps(tmp_path, monkeypatch, naming_rule):
    """predict() up to nnU-Net's predictor, with the predictor replaced: the record must exist when label maps are
    written, and hold the trained classes of the model's plans, not the zero-shot classes. --naming-rule reaches the
    predictor before it predicts, and the record names the rule (the model's own when not given)."""
    import json
    from types import SimpleNamespace

    from nnunetv2_malenia.inference import predict as predict_module
    from nnunetv2_malenia.inference import predictor as predictor_module

    records_seen_by_export = []

    class FakePredictor:
        def __init__(self, **kwargs):
            pass

        def initialize_from_trained_model_folder(self, folder, folds, checkpoint):
            self.block = predict_module.model_block(folder)

        def use_naming_rule(self, rule):
            self.rule = rule or "best_match"                    # None: the model's (here best_match)
            return self.rule

        def prepare_zero_shot(self, tables, diseases, device):
            return SimpleNamespace(diseases=("kidney cyst", "liver tumor"))

        def use_seen_penalty(self, penalty):
            self.penalty = penalty

        def predict_from_files(self, images, out, **kwargs):
            records_seen_by_export.append(json.loads((tmp_path / "out" / predict_module.PREDICTION_RECORD).read_text()))

    monkeypatch.setattr(predictor_module, "MaleniaPredictor", FakePredictor)
    monkeypatch.setattr(predict_module, "_device", lambda name: torch.device("cpu"))
    monkeypatch.setenv("nnUNet_extTrainer", "unused")
    folder, images = _model_folder(tmp_path)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    flag = ["--naming-rule", naming_rule, "--seen-penalty", "1.25"] if naming_rule else []
    predict_module.main(["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(folder), "-f", "0",
                         "-device", "cpu", "--no-reports", *flag])
    (record,) = records_seen_by_export
    assert record["naming_rule"] == (naming_rule or "best_match")
    assert record["seen_penalty"] == (1.25 if naming_rule else 0.0)
    assert record["trained_classes"] == {"1": "kidney cyst"}
    assert record["predicted_diseases"] == ["kidney cyst", "liver tumor"]
    assert (record["model_folder"], record["folds"]) == (str(folder.resolve()), [0])


def test_renamed_model_folder_finds_the_configuration_with_the_malenia_block(tmp_path):
    """A copied model folder (not TRAINER__PLANS__CONFIGURATION) whose plans list another configuration first."""
    import json
    import shutil

    from nnunetv2_malenia.inference.predict import model_block

    folder, _ = _model_folder(tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"] = {"2d": {"data_identifier": "y", "patch_size": [16, 16]}, **plans["configurations"]}
    renamed = tmp_path / "model"
    shutil.copytree(folder, renamed)
    (renamed / "plans.json").write_text(json.dumps(plans))
    assert model_block(renamed).classes == {1: "kidney cyst"}


def test_predictor_naming_rule_override_keeps_the_trained_rule_by_default():
    """--naming-rule's effect: the predictor's network (the one label maps and lesion reports both run) switches
    rule; no flag keeps the rule the model was built with from plans.json; a bad name is refused."""
    from nnunetv2_malenia.inference.predict import _parser
    from nnunetv2_malenia.inference.predictor import MaleniaPredictor
    from nnunetv2_malenia.network import build_malenia_network
    from nnunetv2_malenia.network.example_plans import unet_plans

    pm, cm = unet_plans([16, 16, 16], [[1, 1, 1], [2, 2, 2], [2, 2, 2]], [4, 8, 16])
    settings = {"num_bank_rows": 4, "text_dim": D, "num_classes": 1, "token_dim": 32, "num_heads": 4,
                "naming_rule": "aspect_vote"}
    predictor = MaleniaPredictor(device=torch.device("cpu"))
    predictor.network = build_malenia_network(pm, cm, 1, 2, settings)
    assert predictor.use_naming_rule(None) == "aspect_vote"
    assert predictor.use_naming_rule("best_match") == "best_match" == predictor.network.naming_rule
    with pytest.raises(AssertionError, match="unknown naming rule"):
        predictor.use_naming_rule("vote")
    with pytest.raises(SystemExit):                           # argparse refuses it before anything loads
        _parser().parse_args(["-i", "x", "-o", "y", "--naming-rule", "vote"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["-i", "x", "-o", "y", "--seen-penalty", "nan"])
    assert _parser().parse_args(["-i", "x", "-o", "y", "--seen-penalty", "-1"]).seen_penalty == -1.0   # a bonus


def test_predictor_seen_penalty_marks_the_classes_the_model_was_trained_on():
    """--seen-penalty's effect: after the zero-shot classes are set, the trained ones (the plans' classes) are the
    seen ones, whatever their position among the predicted diseases."""
    from types import SimpleNamespace

    from nnunetv2_malenia.inference.predictor import MaleniaPredictor
    from nnunetv2_malenia.network import build_malenia_network
    from nnunetv2_malenia.network.example_plans import unet_plans

    pm, cm = unet_plans([16, 16, 16], [[1, 1, 1], [2, 2, 2], [2, 2, 2]], [4, 8, 16])
    settings = {"num_bank_rows": 4, "text_dim": D, "num_classes": 3, "token_dim": 32, "num_heads": 4}
    predictor = MaleniaPredictor(device=torch.device("cpu"))
    predictor.network = build_malenia_network(pm, cm, 1, 4, settings)
    predictor.block = SimpleNamespace(classes={1: "kidney cyst", 2: "liver tumor"})
    predictor.classes = SimpleNamespace(diseases=("liver cyst", "liver tumor", "kidney cyst"))
    predictor.use_seen_penalty(2.0)
    assert predictor.network.seen_penalty == 2.0
    assert predictor.network.seen_classes.tolist() == [False, True, True]
