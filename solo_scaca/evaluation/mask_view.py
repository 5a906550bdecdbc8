"""The masks a trained ``*_scaca`` checkpoint draws: its own pairing and cross-attention applied
to a batch of images (for pictures and checks; training does the same inside its step). A
``*_lewel`` checkpoint loads here too; its alignment maps are ``lewel_maps(model, images)``."""

from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
from omegaconf import OmegaConf

from solo_scaca.addon.lewel import LewelMixin
from solo_scaca.addon.method_addon import CrossAttentionAddon
from solo_scaca.addon.pairing import random_partners, select_partners
from solo_scaca.host.backbone_io import Checkpoint, read_pretrain_args
from solo_scaca.host.checkpoints import load_checkpoint
from solo_scaca.registration import LEWEL_METHODS, SCACA_METHODS


class BatchMasks(NamedTuple):
    partners: torch.Tensor  # B: index of each image's partner in the batch
    masks: torch.Tensor  # B x H x W, each a distribution over the image's locations


def load_method(ckpt_path: Union[str, Path], trust: bool = False,
                checkpoint: Optional[Checkpoint] = None) -> Union[CrossAttentionAddon, LewelMixin]:
    """The whole ``*_scaca`` (or ``*_lewel``) model of a pretraining checkpoint (add-on
    included), in eval mode; its config, every default filled in by the method, is
    ``model.cfg``. ``checkpoint``: the checkpoint already loaded (``load_checkpoint``)."""
    checkpoint = load_checkpoint(ckpt_path, trust) if checkpoint is None else checkpoint
    args = read_pretrain_args(ckpt_path, checkpoint=checkpoint)
    method = args.get("method")
    methods = {**SCACA_METHODS, **LEWEL_METHODS}
    if method not in methods:
        raise ValueError(f"{ckpt_path} is a {method!r} checkpoint: masks need one of "
                         f"{sorted(methods)} (with its add-on)")
    model = methods[method](OmegaConf.create(args))
    weight = "lewel_weight" if method in LEWEL_METHODS else "ca_weight"
    if model.cfg.method_kwargs[weight] <= 0:
        raise ValueError(f"{ckpt_path} was trained with {weight}=0: it has no add-on")
    state = checkpoint["state_dict"]
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in state.items() if k not in model.LATE_BUFFERS}, strict=False
    )
    if missing or unexpected:
        raise ValueError(
            f"{ckpt_path} does not hold a whole {method} model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}): pass the checkpoint the pretraining wrote, not an "
            "exported backbone"
        )
    return model.eval()


@torch.no_grad()
def batch_masks(model: CrossAttentionAddon, images: torch.Tensor, seed: int = 0) -> BatchMasks:
    """Each image's partner, chosen by the model's own pairing from the batch (its codes as the
    method computes them, e.g. SwAV's Sinkhorn codes of the batch), and the mask of the image
    given that partner."""
    if images.size(0) < 2:
        raise ValueError(f"a batch of {images.size(0)} image cannot be paired: pass at least 2")
    out = model(images)
    codes = model.ca_inference_codes(images, out)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # random pairing and contrast negatives: the same every call
    try:
        # two identical views: "self" pairs an image with itself, every other mode within view 0
        views = [out["fmap"], out["fmap"]]
        partners = select_partners(model.ca_pairing, None if codes is None else [codes, codes],
                                   [out["z"], out["z"]])
        negatives = [(v, random_partners(len(images), len(images), images.device))
                     for v in range(2)]
        ca = model.ca_head(views, partners, negatives=negatives)
    finally:
        torch.random.set_rng_state(generator_state)
    return BatchMasks(partners[0][1], ca.masks[0])
