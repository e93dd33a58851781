"""Build MaleniaNet from nnU-Net plans (what the trainer's static ``build_network_architecture`` calls).

The U-Net comes from the plan's own architecture entry (any dynamic_network_architectures UNet), so the same
code serves every dataset's plan, 2D and 3D. Everything else is in the ``malenia`` dict, which the trainer derives
from its class constants and the stored bank/knowledge table, so the predictor can rebuild the network without
``self`` and then load the checkpoint strictly.
"""
from __future__ import annotations

from typing import Any, Mapping

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunetv2_malenia.network.malenia_net import MaleniaNet

REQUIRED_KEYS = ("num_bank_rows", "text_dim", "num_classes")
OPTIONAL_KEYS = ("num_tokens", "token_dim", "num_heads", "num_blocks", "ffn_ratio", "cmki_layers", "temperature",
                 "fusion", "branches", "beta", "inference_rule", "naming_rule", "lesion_heads",
                 "mask_pooling", "mask_residual", "context_ring", "masked_attention", "context_source",
                 "match_paragraphs", "aspect_heads", "scan_phase",
                 "position_location", "lesion_intensity")


def build_malenia_network(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                          malenia: Mapping[str, Any]) -> MaleniaNet:
    """MaleniaNet around the plan's U-Net. ``malenia``: num_bank_rows, text_dim, num_classes (+ OPTIONAL_KEYS)."""
    missing = [k for k in REQUIRED_KEYS if k not in malenia]
    unknown = sorted(set(malenia) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    assert not missing and not unknown, (
        f"malenia settings: missing {missing}, unknown {unknown}; required {list(REQUIRED_KEYS)}, "
        f"optional {list(OPTIONAL_KEYS)}")
    num_classes = int(malenia["num_classes"])
    assert num_output_channels == num_classes + 1, (
        f"nnU-Net asks for {num_output_channels} output channels (background + foreground labels) but the Malenia "
        f"settings have num_classes={num_classes} foreground classes; they must satisfy "
        f"num_output_channels == num_classes + 1 (region-based training is not supported)")
    unet = get_network_from_plans(configuration_manager.network_arch_class_name,
                                  configuration_manager.network_arch_init_kwargs,
                                  configuration_manager.network_arch_init_kwargs_req_import,
                                  num_input_channels, num_output_channels, allow_init=True, deep_supervision=False)
    options = {k: malenia[k] for k in OPTIONAL_KEYS if k in malenia}
    if "beta" in options:
        options["beta"] = tuple(options["beta"])
    return MaleniaNet(unet, int(malenia["num_bank_rows"]), int(malenia["text_dim"]), num_classes, **options)
