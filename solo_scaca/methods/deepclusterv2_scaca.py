"""DeepClusterV2 with the spatial cross-attention add-on (``method=deepclusterv2_scaca``,
docs/method.md section 9).

Subclasses the host's DeepClusterV2: ``L_ca`` is its loss with the prototype scores of the
masked large crops (every prototype set) against the sample's k-means assignments. There are
no assignments before the first k-means (epoch 0): the CA term starts at epoch 1.
"""

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from solo.losses.deepclusterv2 import deepclusterv2_loss_func
from solo.methods.deepclusterv2 import DeepClusterV2

from solo_scaca.addon.config import CA_SCHEMA, Choice
from solo_scaca.addon.batch_pairing import get_world_size
from solo_scaca.addon.method_addon import CrossAttentionAddon


class DeepClusterV2SCACA(CrossAttentionAddon, DeepClusterV2):
    NAME = "deepclusterv2_scaca"
    # the targets are the memory bank's k-means assignments, one per image: nothing of a pooled
    # feature stands in for them, so the objectives that score masked targets are left out
    CA_SCHEMA = {**CA_SCHEMA,
                 "ca_objective": Choice("self", ("self", "complement", "fixed", "attend"))}
    LATE_BUFFERS = ("local_memory_index", "local_memory_embeddings")

    def on_train_epoch_start(self) -> None:
        """DeepClusterV2's epoch set-up (k-means of the memory from epoch 1). In a single process
        on a GPU the host's k-means fails (it indexes its CPU assignments with the memory's GPU
        index), so there the memory goes to the CPU for it; the assignments then live on the
        model's device, where the training step indexes them."""
        on_gpu = self.device.type != "cpu" and get_world_size() == 1
        memory = (self.local_memory_index, self.local_memory_embeddings)
        if on_gpu and self.current_epoch > 0:
            self.local_memory_index, self.local_memory_embeddings = (m.cpu() for m in memory)
        try:
            super().on_train_epoch_start()
        finally:
            self.local_memory_index, self.local_memory_embeddings = memory
        self.assignments = self.assignments.to(self.device)

    def ca_head_outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """h = prototypes . normalize . projector, per prototype set (P x B x K)."""
        z = F.normalize(self.projector(feats))
        return torch.stack([p(z) for p in self.prototypes])

    def ca_targets(self, batch: Sequence[Any]) -> Optional[torch.Tensor]:
        """The batch's k-means assignments (P x B); None before the first k-means. Decided on
        the whole table, the same in every process (a per-batch decision could skip the CA
        term's collectives in one process only and hang DDP)."""
        if not bool((self.assignments >= 0).any()):
            return None
        return self.assignments[:, batch[0]]

    def ca_codes(self, targets: torch.Tensor, outs: List[Dict[str, Any]]) -> List[torch.Tensor]:
        """Per large crop, the mean of the one-hot assignment (first prototype set) and the
        predicted distribution: its argmax is the assignment, and images of one cluster rank
        by their predictions (a one-hot alone would tie them all)."""
        onehot = F.one_hot(targets[0].clamp_min(0), self.num_prototypes[0]).float()
        return [(onehot + F.softmax(out["p"][0].detach() / self.temperature, dim=1)) / 2
                for out in outs]

    @torch.no_grad()
    def ca_inference_codes(self, images: torch.Tensor, out: Dict[str, Any]) -> torch.Tensor:
        """Images outside the memory have no k-means assignment: the predicted distribution
        over the first prototype set."""
        return F.softmax(out["p"][0] / self.temperature, dim=1)

    def ca_loss(self, masked_outputs: List[torch.Tensor], targets: torch.Tensor,
                batch: Sequence[Any], partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """DeepClusterV2's loss, its views stacked as the host's step stacks them; 0 (with the
        masked outputs in its graph) for a batch whose images k-means left unassigned, where the
        host's cross-entropy over no target is NaN."""
        preds = torch.stack([p.unsqueeze(1) for p in masked_outputs], dim=1)
        if not bool((targets >= 0).any()):
            return preds.sum() * 0.0
        return deepclusterv2_loss_func(preds, targets, self.temperature)
