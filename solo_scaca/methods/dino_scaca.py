"""DINO with the spatial cross-attention add-on (``method=dino_scaca``, docs/method.md section 9).

Subclasses the host's DINO: ``L_ca`` is DINO's loss with the student head's outputs of the
masked large crops in place of the student's, against the teacher's centred, sharpened
probabilities of the other views (the centre the host's step used). Images pair by the
teacher's argmax (``prototype``). With a ViT the masked branch pools patch tokens while DINO
reads the class token.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
import torch.nn.functional as F
from solo.methods.dino import DINO

from solo_scaca.addon.config import CA_SCHEMA, Number
from solo_scaca.addon.method_addon import MomentumAddon

Targets = Tuple[List[torch.Tensor], torch.Tensor]  # teacher logits per large crop, centre


class DINOSCACA(MomentumAddon, DINO):
    NAME = "dino_scaca"
    # the CA weight ramps up while DINO's last layer is frozen
    CA_SCHEMA = {**CA_SCHEMA,
                 "ca_warmup_epochs": Number(lambda cfg: cfg.method_kwargs.freeze_last_layer)}

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self._step_center: Optional[torch.Tensor] = None

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Keeps the teacher's centre before the host's step moves it, then the add-on's step."""
        if self.ca_head is not None:
            self._step_center = self.dino_loss_func.center.clone()
        return super().training_step(batch, batch_idx)

    def ca_head_outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """h = the student's DINO head."""
        return self.head(feats)

    def ca_targets(self, batch: Sequence[Any]) -> Targets:
        return self._step_momentum_z, self._step_center

    def ca_codes(self, targets: Targets, outs: List[Dict[str, Any]]) -> List[torch.Tensor]:
        """The teacher's probabilities, as DINO's loss computes its targets."""
        logits, center = targets
        temperature = self.dino_loss_func.teacher_temp_schedule[self.dino_loss_func.epoch]
        return [F.softmax((t - center) / temperature, dim=-1) for t in logits]

    @torch.no_grad()
    def ca_inference_codes(self, images: torch.Tensor, out: Dict[str, Any]) -> torch.Tensor:
        """The teacher's probabilities of the images, with its current centre."""
        teacher = self.momentum_forward(images)["z"]
        return self.ca_codes(([teacher], self.dino_loss_func.center), [out])[0]

    @torch.no_grad()
    def ca_targets_of(self, feats: List[torch.Tensor], targets: Targets) -> Targets:
        """The teacher's head on the pooled (student) features, with the step's centre."""
        return [self.momentum_head(f) for f in feats], targets[1]

    def ca_loss(self, masked_outputs: List[torch.Tensor], targets: Targets,
                batch: Sequence[Any], partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """The host's DINO loss on the masked outputs, centred as the host's step was. It moves
        the centre again (one more small all-reduce under DDP); the host's centre is put back."""
        logits, center = targets
        loss_func = self.dino_loss_func
        host_center = loss_func.center
        loss_func.center = center
        try:
            return loss_func(torch.cat(masked_outputs), torch.cat(logits))
        finally:
            loss_func.center = host_center
