"""The add-on on every host method (docs/method.md section 9): registration, ``ca_weight=0`` is
exactly the host method, a uniform mask reproduces the host method's loss as ``L_ca``, the
masked branch reaches the add-on and the backbone, and config errors name the key."""

from typing import List

import pytest
import torch
from solo.methods import METHODS
from solo.methods.base import BaseMethod

from solo_scaca import SCACA_METHODS
from tests.conftest import assert_same_step, make_method_cfg, ready_for_steps, tiny_batch

NAMES = sorted(SCACA_METHODS)
TINY = {  # per host method: its heads made tiny
    "swav": ["method_kwargs.num_prototypes=10", "method_kwargs.queue_size=0"],
    "deepclusterv2": ["method_kwargs.num_prototypes=[10,10]"],
    "dino": ["method_kwargs.num_prototypes=10"],
    "byol": ["method_kwargs.pred_hidden_dim=32"],
    "simclr": [],
}


def tiny_cfg(name: str, overrides: List[str] = (), crop_size: int = 16):
    """The shipped cifar config of ``name`` made tiny (16 px, batch 8)."""
    return make_method_cfg(name, [
        "optimizer.batch_size=8", "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16", "method_kwargs.ca_dim=16",
        "method_kwargs.ca_warmup_epochs=0", *TINY[name.removesuffix("_scaca")], *overrides,
    ], crop_size)


def paired(name: str, overrides: List[str] = ()):
    """The host method and its ``_scaca`` subclass holding the same weights."""
    torch.manual_seed(0)
    cfg = tiny_cfg(name, overrides)
    host_cfg = cfg.copy()
    host_cfg.method = name[: -len("_scaca")]
    host = ready_for_steps(METHODS[host_cfg.method](host_cfg))
    scaca = ready_for_steps(METHODS[name](cfg))
    missing, unexpected = scaca.load_state_dict(host.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("ca_head.") for k in missing)
    return host, scaca


def test_every_method_is_registered_as_a_subclass_of_its_host_method():
    assert NAMES == ["byol_scaca", "deepclusterv2_scaca", "dino_scaca", "simclr_scaca",
                     "swav_scaca"]
    for name in NAMES:
        assert METHODS[name] is SCACA_METHODS[name]
        assert issubclass(METHODS[name], METHODS[name[: -len("_scaca")]])


@pytest.mark.parametrize("name", NAMES)
def test_ca_weight_zero_is_exactly_the_host_method(name):
    host, scaca = paired(name, ["method_kwargs.ca_weight=0"])
    assert scaca.ca_head is None
    assert_same_step(host, scaca, tiny_batch())


@pytest.mark.parametrize("name", NAMES)
def test_a_uniform_mask_makes_the_ca_term_the_host_method_s_loss(name, monkeypatch):
    """With ``ca_mask=uniform`` the masked feature is the pooled one, so ``L_ca`` must be the
    host method's own loss: the masked outputs replace the online ones, targets unchanged."""
    host, scaca = paired(name, ["method_kwargs.ca_mask=uniform"])
    recorded = []
    ca_loss = scaca.ca_loss
    monkeypatch.setattr(scaca, "ca_loss", lambda *a: recorded.append(ca_loss(*a)) or recorded[-1])
    batch = tiny_batch()
    host_loss = host.training_step(batch, 0)
    loss = scaca.training_step(batch, 0)
    class_loss = BaseMethod.training_step(host, batch, 0)["loss"]
    assert len(recorded) == 1
    torch.testing.assert_close(recorded[0], host_loss - class_loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, host_loss + recorded[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_the_masked_branch_trains_the_add_on_and_the_backbone(name):
    host, scaca = paired(name)
    assert scaca.ca_pairing == scaca.DEFAULT_PAIRING
    batch = tiny_batch()
    host_loss, loss = host.training_step(batch, 0), scaca.training_step(batch, 0)
    assert torch.isfinite(loss) and abs(loss - host_loss) > 1e-4
    loss.backward()
    assert scaca.ca_head.phi_q.weight.grad.abs().sum() > 0
    assert scaca.ca_head.phi_k.weight.grad.abs().sum() > 0
    assert scaca.backbone.layer4[-1].conv2.weight.grad.abs().sum() > 0


def test_dino_s_ca_term_keeps_the_teacher_centre_the_host_moved():
    host, scaca = paired("dino_scaca")
    batch = tiny_batch()
    host.training_step(batch, 0)
    scaca.training_step(batch, 0)
    torch.testing.assert_close(scaca.dino_loss_func.center, host.dino_loss_func.center)
    assert scaca.dino_loss_func.center.abs().sum() > 0


def test_deepclusterv2_skips_the_ca_term_before_the_first_k_means():
    host, scaca = paired("deepclusterv2_scaca")
    for model in (host, scaca):
        model.assignments = -torch.ones_like(model.assignments)  # the host's epoch 0
    batch = tiny_batch()
    host_loss, loss = host.training_step(batch, 0), scaca.training_step(batch, 0)
    assert torch.equal(loss, host_loss) if torch.isfinite(host_loss) else torch.isnan(loss)
    loss.backward()  # the add-on is in the graph with zero gradients, as DDP requires
    assert scaca.ca_head.phi_q.weight.grad is not None
    assert not scaca.ca_head.phi_q.weight.grad.any()


def test_deepclusterv2_s_ca_term_is_zero_for_a_batch_without_assignments():
    """After a k-means, a batch of unassigned images (-1) still runs the CA term (the same
    collectives in every process), at zero."""
    host, scaca = paired("deepclusterv2_scaca")
    batch_part = -torch.ones_like(scaca.assignments)  # the batch's images 0-7: unassigned
    scaca.assignments = torch.cat([batch_part, torch.zeros_like(batch_part)], dim=1)
    recorded = []
    ca_loss = scaca.ca_loss
    scaca.ca_loss = lambda *a: recorded.append(ca_loss(*a)) or recorded[-1]
    scaca.training_step(tiny_batch(), 0)
    assert len(recorded) == 1 and recorded[0] == 0 and recorded[0].requires_grad


def test_dino_with_a_vit_trains_a_step_with_the_add_on():
    torch.manual_seed(0)
    model = ready_for_steps(METHODS["dino_scaca"](tiny_cfg("dino_scaca", [
        "backbone.name=vit_tiny", "++backbone.kwargs.img_size=32",
        "++backbone.kwargs.patch_size=8"], crop_size=32)))
    loss = model.training_step(tiny_batch(size=32), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.ca_head.phi_q.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name, override, message", [
    ("byol_scaca", "method_kwargs.ca_pairing=prototype", r"ca_pairing='prototype' is invalid "
     r"for byol_scaca: allowed values are \('nn', 'self', 'random'\)"),
    ("simclr_scaca", "method_kwargs.ca_pairing=prototype", "allowed values are"),
    ("dino_scaca", "+method_kwargs.ca_partner_weight=1.0", "unknown method_kwargs"),
    ("deepclusterv2_scaca", "method_kwargs.ca_weight=-1", "ca_weight=-1"),
    ("byol_scaca", "optimizer.batch_size=1", "optimizer.batch_size=1 is invalid for byol_scaca"),
])
def test_bad_configs_fail_at_config_time_naming_the_key(name, override, message):
    with pytest.raises(ValueError, match=message):
        METHODS[name](tiny_cfg(name, [override]))


@pytest.mark.parametrize("name", NAMES)
def test_masks_are_drawn_for_every_method_s_checkpoint(name, tmp_path):
    """``solo-scaca-masks``' loading and pairing: the method's own codes (SwAV's Sinkhorn,
    DINO's teacher, DeepClusterV2's predictions) or, without codes, the projections."""
    import json

    from omegaconf import OmegaConf

    from solo_scaca.evaluation.mask_view import batch_masks, load_method

    cfg = tiny_cfg(name)
    ckpt = tmp_path / f"{name}-ep=0.ckpt"
    torch.save({"state_dict": METHODS[name](cfg).state_dict()}, ckpt)
    (tmp_path / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    model = load_method(ckpt)
    assert type(model) is METHODS[name] and not model.training
    result = batch_masks(model, torch.randn(6, 3, 16, 16))
    assert result.masks.shape == (6, 3, 3) and torch.all(result.partners != torch.arange(6))
    torch.testing.assert_close(result.masks.flatten(1).sum(1), torch.ones(6))
