"""Is the cross-attention alive? The mechanism metrics of docs/method.md section 6, pure functions.

All take masks of shape B x H x W (each a distribution over the image's locations) and return
a scalar tensor; none needs a gradient.
"""

import math
from typing import Dict, Optional, Sequence

import torch


def mask_entropies(masks: torch.Tensor) -> torch.Tensor:
    """Per mask (N x H x W distributions), its entropy in nats (differentiable)."""
    flat = masks.flatten(1).float()
    return -(flat * flat.clamp_min(1e-12).log()).sum(dim=1)


@torch.no_grad()
def mask_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the masks over ln(HW): 1 for a uniform mask, 0 for a one-hot one."""
    locations = masks[0].numel()
    if locations < 2:
        return masks.new_ones((), dtype=torch.float)
    return (mask_entropies(masks) / math.log(locations)).mean()


@torch.no_grad()
def mask_peak(masks: torch.Tensor) -> torch.Tensor:
    """Mean of HW x the mask's largest value: 1 for a uniform mask, HW for a one-hot one."""
    flat = masks.flatten(1).float()
    return (flat.size(1) * flat.max(dim=1).values).mean()


@torch.no_grad()
def mask_distance(masks: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between two sets of masks of the same images (0 to 2)."""
    return (masks.flatten(1).float() - others.flatten(1).float()).abs().sum(dim=1).mean()


@torch.no_grad()
def distance_to_uniform(masks: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the masks and the uniform mask."""
    return mask_distance(masks, torch.full_like(masks, 1 / masks[0].numel()))


@torch.no_grad()
def same_share(values: torch.Tensor, partner_values: torch.Tensor) -> torch.Tensor:
    """Share of images whose partner has the same value (code argmax, label)."""
    return (values == partner_values).float().mean()


def labels_are_real(labels: Optional[torch.Tensor]) -> bool:
    """The host's unlabelled datasets give -1 for every image."""
    return labels is not None and labels.numel() > 0 and bool((labels >= 0).all())


def _mean(values) -> torch.Tensor:
    return torch.stack(list(values)).mean()


@torch.no_grad()
def mechanism_metrics(
    masks: Sequence[torch.Tensor],
    probe_masks: Sequence[torch.Tensor],
    same_prototype: Optional[torch.Tensor] = None,
    same_class: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """The metrics logged every step, averaged over the large crops.

    Args:
        masks: per view, the masks with the chosen partners.
        probe_masks: per view, the masks of the same images with a random other partner.
        same_prototype: share of partners with the same code argmax (None: the method has no
            codes).
        same_class: share of partners with the same label (None: the labels are not real).
    """
    out = {
        "ca_mask_entropy": _mean(mask_entropy(m) for m in masks),
        "ca_mask_peak": _mean(mask_peak(m) for m in masks),
        "ca_mask_to_uniform": _mean(distance_to_uniform(m) for m in masks),
    }
    if same_prototype is not None:
        out["ca_partner_same_prototype"] = same_prototype
    if probe_masks:
        out["ca_partner_sensitivity"] = _mean(
            mask_distance(m, p) for m, p in zip(masks, probe_masks)
        )
    if same_class is not None:
        out["ca_partner_same_class"] = same_class
    return out
