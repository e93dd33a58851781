"""``nnUNetTrainerMalenia``: nnU-Net's trainer with Malenia's network, instance targets and losses.

Only the hooks that must change are overridden; planning, preprocessing, data loading, augmentation, the 5-fold
split, checkpointing, validation and export stay nnU-Net's own:

* ``__init__``: loads the dataset attributes and its stored text bank (built with the bank's encoder, or the default
  one, when missing) and writes the ``"malenia"`` block into the plans configuration (see plans_block.py);
* ``build_network_architecture`` (static, also called by nnU-Net's predictor): MaleniaNet from the plans alone;
* ``initialize``: fills the bank and class buffers of the freshly built network;
* ``train_step`` / ``validation_step``: lesion instances from the augmented segmentation and the batch ``keys``
  (optionally repainted, appearance_swap.py), Hungarian matching, the named losses of Eq. 2 and 6;
* ``on_train_epoch_end``: the named losses go to the log and the fourth panel of progress.png.
"""
from __future__ import annotations

import json
from os.path import isfile, join
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch import autocast
from torch import distributed as dist
from torch._dynamo import OptimizedModule

from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_malenia.attributes.dataset_attributes import load_dataset_attributes
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.paths import nnunet_folder
from nnunetv2_malenia.losses import HungarianMatcher, MaleniaCriterion, SlotAssigner, instances_from_segmentation
from nnunetv2_malenia.network import build_malenia_network, dense_logits
from nnunetv2_malenia.network.bank_fingerprint import attach_bank_fingerprint
from nnunetv2_malenia.text_bank.build_bank import ensure_bank
from nnunetv2_malenia.training.appearance_swap import swap_lesion_appearance
from nnunetv2_malenia.training.bank_lookup import BankLookup
from nnunetv2_malenia.training.plans_block import BLOCK_KEY, make_block, read_block
from nnunetv2_malenia.training.progress_logger import NAMED_LOSS_PREFIX, MaleniaLocalLogger
from nnunetv2_malenia.training.schedule import ScheduledTrainer


class nnUNetTrainerMalenia(ScheduledTrainer):
    # --- Malenia hyperparameters: variants override ONE of these (see variants.py) ------------------------------
    # Network settings end up in plans.json, so the predictor rebuilds the same network.
    # naming_rule (issue #12 C): how a token names a disease, "best_match" or the paper's "aspect_vote"; it only
    # changes class_logits (no loss uses them), and nnUNetv2_malenia_predict --naming-rule overrides it.
    malenia_network_settings: Dict = dict(num_tokens=16, num_blocks=3, num_heads=8, cmki_layers=1,
                                          temperature=0.07, fusion=True, branches="both", naming_rule="best_match",
                                          lesion_heads="classes", mask_pooling=True,
                                          mask_residual=True, context_ring=0, context_source="feature",
                                          masked_attention=True, aspect_heads=False, scan_phase=False,
                                          position_location=False, lesion_intensity=False)
    # masked_attention (Mask2Former's, which the paper builds on; network/mask_decoder.py): each decoder block attends
    # only where the previous block's mask is on. Seeded A/B on the demo's seen phantoms (fold 0, same data and seed):
    # validation Dice 0.521 without, 0.744 with (README "CPU regime"); models trained before it load without it.
    # context_ring (not in the paper, network/mask_decoder.py): > 0 matches location and organ descriptions against the
    # decoder feature around the token's mask instead of the token; off: no gain in location or naming on the CPU
    # regime (README, "CPU regime"; nnUNetTrainerMalenia_ContextLocation turns it on).
    # aspect_heads (not in the paper, network/mask_decoder.py): one text head per bank aspect instead of one shared
    # embedding; nnUNetTrainerMalenia_AspectHeads turns it on (README, "CPU regime").
    # scan_phase (not in the paper, network/scan_phase.py; needs aspect_heads): enhancement status, the scan's phase,
    # read from one embedding of the whole scan instead of each token; off by default (README, "CPU regime").
    # lesion_intensity (not in the paper, network/lesion_intensity.py; needs aspect_heads): density, density variation,
    # surface and specific features read from the intensities in and around each token's mask, not from decoder
    # features that see the whole organ; off by default (README, "CPU regime").
    # mask_pooling / mask_residual (not in the paper, network/mask_decoder.py and malenia_net.py): a token's embedding
    # also reads the pixel feature under its own mask, and the fused mask corrects the last decoder block's. Chosen
    # on fold-0 validation of the quick benchmark's seen phantoms (one run each, README "CPU regime"): without them
    # 14 of 35 lesions found, 5 named right, every one named liver tumour or kidney cyst; with them 18 found, 16 named.
    # Loss weights of Eq. 6 (lambda1..3, alpha1..2) and the ablation switches of Tables 3-4.
    # weight_others (not in the paper, losses/criterion.py): keeps a token's mask off the sample's other lesions.
    # weight_lesion (not in the paper, losses/lesion_aux.py): deep supervision of the U-Net decoder through the
    # network's lesion_heads (network setting); without it the masks of soft-tissue lesions never started on 2 CPU
    # cores. Weight 4 against ~8 for the token losses: at 1 the U-Net still learnt too slowly (fold-0 validation of the
    # CPU regime: class-agnostic Dice 0.311 at 1, 0.450 at 4; README, "CPU regime").
    # unused_rows_as_negatives (issue #12 B): False leaves the bank rows that no training label uses (descriptions
    # only unseen diseases have) out of MP-NCE and the matcher; True makes them negatives for every token, which
    # pushes the unseen diseases' scores down before inference sees them (the earlier behaviour, for the ablation).
    # aspect_negatives (not in the paper, losses/mp_nce.py): a positive description competes only with its own
    # aspect's negatives and t0, as inference chooses each aspect among its own rows. Off by default (README, "CPU
    # regime").
    malenia_loss_settings: Dict = dict(weight_deep=1.0, weight_sim=1.0, weight_seg=1.0, weight_bce=2.0,
                                       weight_dice=2.0, weight_others=2.0, weight_lesion=4.0, multi_scale=True,
                                       multi_positive=True, aspect_negatives=False,
                                       unused_rows_as_negatives=False)
    # Matching costs as in Mask2Former (mask BCE 5, dice 5, class 2). num_points None: matcher and mask losses use
    # every voxel (exact dice for lesions of a few dozen voxels; see losses/criterion.py for what sampling did).
    malenia_matcher_settings: Dict = dict(cost_bce=5.0, cost_dice=5.0, cost_sim=2.0, num_points=None)
    # appearance_swap (issue #12, not in the paper; training/appearance_swap.py): the probability that a training
    # lesion is repainted with another disease's intensities and takes its density texts, so location cannot be read
    # off appearance when each organ has one seen disease. 0 = off; nnUNetTrainerMalenia_AppearanceSwap sets 0.5.
    appearance_swap: float = 0.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        self.check_settings()
        super().__init__(plans, configuration, fold, dataset_json, device)
        # Malenia supervises every decoder block itself (L_deep); nnU-Net's multi-scale targets are not needed.
        self.enable_deep_supervision = False
        if self.label_manager.has_regions or self.label_manager.has_ignore_label:
            raise MaleniaInputError(Problem("dataset.json", "labels", "Malenia needs plain integer labels: "
                                            "region-based training and the ignore label are not supported"))
        self.logger.local_logger = MaleniaLocalLogger()
        self.attributes = load_dataset_attributes(self._raw_dataset_folder())
        self.bank = self._load_bank()
        self.bank_lookup = BankLookup(self.attributes, self.bank)
        self.training_row_aspect = self._training_row_aspect()
        classes = {la.value: la.name for la in self.attributes.labels.values()}
        block = make_block(self.bank, classes, self.attributes.knowledge_table, self._network_settings())
        # The predictor reads plans.json from the results folder; on_train_start saves self.plans_manager.plans there.
        self.plans_manager.plans["configurations"][configuration][BLOCK_KEY] = block
        # PlansManager caches resolved configurations: a fresh one sees the block
        self.plans_manager = PlansManager(self.plans_manager.plans)
        self.configuration_manager = self.plans_manager.get_configuration(configuration)
        self.logger.local_logger.register_named_losses(self._named_loss_names())
        # the single-positive ablation matches on the paragraph row, as its loss does
        self.matcher = HungarianMatcher(**self.malenia_matcher_settings,
                                        multi_positive=self.malenia_loss_settings["multi_positive"])

    # --- set-up -----------------------------------------------------------------------------------------------------
    @classmethod
    def check_settings(cls) -> None:
        """Settings a variant cannot combine, refused before any data is read."""
        if cls.appearance_swap and not cls.malenia_loss_settings["multi_positive"]:
            raise MaleniaInputError(Problem(cls.__name__, "appearance_swap", "a repainted lesion's joined paragraph "
                                            "no longer describes it, so single-positive training cannot use the "
                                            "appearance swap: set one of them off"))

    def _raw_dataset_folder(self) -> Path:
        # Training reads malenia_attributes.json from the raw dataset (prediction never does).
        return nnunet_folder("nnUNet_raw") / self.plans_manager.dataset_name

    def _load_bank(self):
        """Rank 0 builds or reuses the bank; other DDP ranks wait, then read the same files."""
        name = self.plans_manager.dataset_name
        if self.is_ddp and self.local_rank != 0:
            dist.barrier()
            return ensure_bank(name, verbose=False)
        bank = ensure_bank(name, verbose=self.local_rank == 0)
        if self.is_ddp:
            dist.barrier()
        return bank

    def _training_row_aspect(self) -> torch.Tensor:
        """[R] long: the bank's row aspects as the losses see them; -1 (never an MP-NCE or matcher candidate) for the
        rows no training label uses, unless ``unused_rows_as_negatives``. The network keeps every row for inference."""
        aspects = self.bank.aspect_index().clone()
        if not self.malenia_loss_settings["unused_rows_as_negatives"]:
            aspects[~self.bank_lookup.training_rows()] = -1
        return aspects

    def _network_settings(self) -> Dict:
        """The network settings as plans.json stores them: a model trained with one positive per lesion names
        classes by their paragraph rows (``match_paragraphs``), so the single-positive variant changes one loss
        setting and the network follows it."""
        return dict(self.malenia_network_settings, match_paragraphs=not self.malenia_loss_settings["multi_positive"])

    def _loss_settings(self) -> Dict:
        """The loss settings as the criterion gets them: a network without lesion heads has no loss_lesion, so a
        variant switches heads and loss off with the one network setting."""
        settings = dict(self.malenia_loss_settings)
        if self.malenia_network_settings.get("lesion_heads", "none") == "none":
            settings["weight_lesion"] = 0.0
        return settings

    def _named_loss_names(self) -> List[str]:
        blocks = self.malenia_network_settings["num_blocks"]
        names = [f"loss_deep_{i}" for i in range(blocks)]
        sim_blocks = range(blocks) if self.malenia_loss_settings["multi_scale"] else [blocks - 1]
        others = ["loss_others"] if self.malenia_loss_settings["weight_others"] else []
        lesion = ["loss_lesion"] if self._loss_settings()["weight_lesion"] else []
        return names + [f"loss_sim_{i}" for i in sim_blocks] + ["loss_bce", "loss_dice"] + others + lesion

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        # Static (nnU-Net's predictor calls it without a trainer): everything comes from the plans' Malenia block.
        block = read_block(configuration_manager.configuration,
                           f"plans.json ({plans_manager.plans_name}, data {configuration_manager.data_identifier})")
        network = build_malenia_network(plans_manager, configuration_manager, num_input_channels,
                                        num_output_channels, block.network)
        return attach_bank_fingerprint(network, block.bank_hash)

    def _bare_network(self):
        net = self.network.module if self.is_ddp else self.network
        return net._orig_mod if isinstance(net, OptimizedModule) else net

    def initialize(self):
        super().initialize()
        net = self._bare_network()
        K = self.label_manager.num_segmentation_heads - 1
        # In place: DDP registered these buffers at wrap time and broadcasts them from rank 0.
        with torch.no_grad():
            net.bank_embeddings.copy_(self.bank.embeddings)
            net.row_aspect.copy_(self.bank.aspect_index())
            net.class_row_mask.copy_(self.bank_lookup.class_row_mask(K))

    def _build_loss(self):
        # row_aspect decides the candidate rows of MP-NCE (paragraph rows only in the single-positive ablation)
        settings = {k: v for k, v in self._loss_settings().items() if k != "unused_rows_as_negatives"}
        return MaleniaCriterion(self.training_row_aspect.to(self.device), **settings,
                                num_points=self.malenia_matcher_settings["num_points"])

    def set_deep_supervision_enabled(self, enabled: bool):
        # nnU-Net toggles decoder.deep_supervision; Malenia's per-block masks are always computed in training.
        pass

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        self._check_resumed_bank()
        super().load_checkpoint(filename_or_checkpoint)

    def _check_resumed_bank(self) -> None:
        """A resumed run must use the bank its checkpoint was trained with (an edited attribute file changes it)."""
        saved_plans = join(self.output_folder_base, "plans.json")
        if not isfile(saved_plans):
            return
        with open(saved_plans, encoding="utf-8") as f:
            saved = json.load(f)["configurations"].get(self.configuration_name, {})
        if BLOCK_KEY not in saved:
            return
        before = read_block(saved, saved_plans).bank_hash
        if before != self.bank.content_hash:
            raise MaleniaInputError(Problem(saved_plans, f"configurations.{self.configuration_name}.{BLOCK_KEY}."
                                            "bank.content_hash", f"the checkpoint was trained with text bank "
                                            f"{before[:12]}, the dataset's bank is now {self.bank.content_hash[:12]} "
                                            f"(malenia_attributes.json, the knowledge table or the encoder changed). "
                                            f"Restore them or train without --c"))

    # --- one iteration ----------------------------------------------------------------------------------------------
    def _instance_targets(self, target: torch.Tensor, keys) -> List[dict]:
        # target [B, 1, *patch] int16 on CPU: connected components run on CPU, then the masks move to the device.
        instances = instances_from_segmentation(target, list(keys), self.bank_lookup,
                                                max_instances=self.malenia_network_settings["num_tokens"] - 1)
        return [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in instances]

    def _autocast(self):
        return autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        targets = self._instance_targets(batch["target"], batch["keys"])
        if self.appearance_swap:
            swap_lesion_appearance(data, targets, self.bank_lookup.lesion_label_values,
                                   self.bank.aspect_index().to(self.device), self.appearance_swap)
        assigner = SlotAssigner(self.matcher, targets, self.training_row_aspect.to(self.device))

        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = self.network(data, slot_assigner=assigner)
            losses = self.loss(outputs, targets, assigner.indices)
            total = self.loss.weighted_total(losses)
        self._backward_and_step(total)
        return {"loss": total.detach().cpu().numpy(),
                **{NAMED_LOSS_PREFIX + k: v.detach().cpu().numpy() for k, v in losses.items()}}

    def _backward_and_step(self, total: torch.Tensor) -> None:
        # As nnU-Net's train_step: gradient clipping at 12, GradScaler on CUDA.
        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()

    def on_train_epoch_end(self, train_outputs: List[dict]):
        super().on_train_epoch_end(train_outputs)
        collated = collate_outputs(train_outputs)
        for key in self.logger.local_logger.named_loss_keys():
            self.logger.log(key, self._mean_over_workers(collated[key]), self.current_epoch)

    def _mean_over_workers(self, values) -> float:
        if not self.is_ddp:
            return float(np.mean(values))
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, values)
        return float(np.mean(np.concatenate([np.ravel(v) for v in gathered])))

    def validation_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        targets = self._instance_targets(target, batch["keys"])
        assigner = SlotAssigner(self.matcher, targets, self.training_row_aspect.to(self.device))
        with self._autocast():
            # Eval mode: the CMKI slots come from the tokens' own best-matching attributes, as at inference; the
            # matcher only pairs tokens with lesions for the loss.
            outputs = self.network(data, return_dict=True)
            assigner(outputs)
            total = self.loss.weighted_total(self.loss(outputs, targets, assigner.indices))
            logits = dense_logits(outputs["class_logits"], outputs["pred_masks"],
                                  self._bare_network().inference_rule)                  # [B, K+1, *patch]

        # Pseudo-Dice as nnU-Net's validation_step (no regions, no ignore label here).
        target = target.to(self.device, non_blocking=True)
        axes = [0] + list(range(2, logits.ndim))
        onehot = torch.zeros(logits.shape, device=logits.device, dtype=torch.float16)
        onehot.scatter_(1, logits.argmax(1)[:, None], 1)
        tp, fp, fn, _ = get_tp_fp_fn_tn(onehot, target, axes=axes)
        return {"loss": total.detach().cpu().numpy(), "tp_hard": tp.detach().cpu().numpy()[1:],
                "fp_hard": fp.detach().cpu().numpy()[1:], "fn_hard": fn.detach().cpu().numpy()[1:]}
