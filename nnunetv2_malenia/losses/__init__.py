"""Malenia's targets, matcher and losses (paper Eq. 2 and 6); interface: docs/network_losses_interface.md.

Per training step: ``targets = instances_from_segmentation(seg, keys, lookup, Q - 1)``;
``assigner = SlotAssigner(matcher, targets, row_aspect)``; ``out = net(x, slot_assigner=assigner)``;
``losses = criterion(out, targets, assigner.indices)``; ``loss = criterion.weighted_total(losses)``.
"""
from nnunetv2_malenia.losses.assigner import SlotAssigner
from nnunetv2_malenia.losses.criterion import MaleniaCriterion
from nnunetv2_malenia.losses.matcher import HungarianMatcher
from nnunetv2_malenia.losses.mp_nce import instance_positives, mp_nce_loss, text_candidates, token_positives
from nnunetv2_malenia.losses.targets import instances_from_segmentation, slot_weights_for

__all__ = ["HungarianMatcher", "MaleniaCriterion", "SlotAssigner", "instance_positives", "instances_from_segmentation",
           "mp_nce_loss", "slot_weights_for", "text_candidates", "token_positives"]
