"""The method class: registration, spatial maps, training step against the host's SwAV, and
config checks that fail before training."""

import pytest
import solo.losses
import solo.methods
import torch
from solo.methods import METHODS
from solo.methods.swav import SwAV

import solo_scaca
from solo_scaca import SwAVSCACA
from tests.conftest import assert_same_step, make_cfg, ready_for_steps, tiny_batch


def test_registration_is_idempotent_and_keeps_host_entries():
    host = dict(METHODS)
    solo_scaca.register()
    solo_scaca.register()
    assert METHODS["swav_scaca"] is SwAVSCACA and METHODS["swav"] is SwAV
    assert {k: v for k, v in METHODS.items() if k != "swav_scaca"} == {
        k: v for k, v in host.items() if k != "swav_scaca"
    }
    assert solo.losses.swav_scaca_loss_func is solo_scaca.ca_loss_func


def test_an_existing_entry_is_never_replaced():
    sentinel = object()
    METHODS["swav_scaca"] = sentinel
    try:
        with pytest.warns(UserWarning, match="already registered"):
            solo_scaca.register()
        assert METHODS["swav_scaca"] is sentinel
    finally:
        METHODS["swav_scaca"] = SwAVSCACA


def test_forward_exposes_the_spatial_map_and_keeps_the_host_features():
    model = SwAVSCACA(make_cfg()).eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    assert out["fmap"].shape == (2, 512, 3, 3)
    assert torch.equal(out["feats"], model.backbone(x))
    torch.testing.assert_close(out["fmap"].mean(dim=(2, 3)), out["feats"])


def _paired_models(ca_overrides):
    """A host SwAV and a SwAVSCACA holding the same weights."""
    torch.manual_seed(0)
    swav = ready_for_steps(SwAV(make_cfg(method="swav")))
    scaca = ready_for_steps(SwAVSCACA(make_cfg(ca_overrides)))
    missing, unexpected = scaca.load_state_dict(swav.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("ca_head.") for k in missing)
    return swav, scaca


@pytest.mark.parametrize("pairing", ["prototype", "nn", "self", "random"])
def test_training_step_adds_a_positive_ca_term_to_the_host_swav_loss(pairing):
    swav, scaca = _paired_models([f"method_kwargs.ca_pairing={pairing}"])
    batch = tiny_batch()
    swav_loss = swav.training_step(batch, 0)
    loss = scaca.training_step(batch, 0)
    assert torch.isfinite(loss) and loss > swav_loss + 1e-3
    loss.backward()
    assert scaca.ca_head.phi_q.weight.grad.abs().sum() > 0
    assert scaca.ca_head.phi_k.weight.grad.abs().sum() > 0
    assert scaca.backbone.layer4[-1].conv2.weight.grad.abs().sum() > 0


def test_ca_weight_zero_is_exactly_the_host_swav():
    swav, scaca = _paired_models(["method_kwargs.ca_weight=0"])
    assert scaca.ca_head is None
    assert_same_step(swav, scaca, tiny_batch())


def test_ca_weight_ramps_linearly_over_the_warmup_epochs():
    from types import SimpleNamespace

    model = SwAVSCACA(make_cfg(["method_kwargs.ca_warmup_epochs=2"]))
    assert model.ca_ramp(0) == 0.0  # no trainer: epoch 0, start of the ramp
    for epoch, batch, expected in ((0, 5, 0.25), (1, 0, 0.5), (1, 5, 0.75), (2, 0, 1.0),
                                   (3, 7, 1.0)):
        model._trainer = SimpleNamespace(current_epoch=epoch, num_training_batches=10)
        assert model.ca_ramp(batch) == pytest.approx(expected), (epoch, batch)
    model._trainer = None
    model_no_warmup = SwAVSCACA(make_cfg())
    assert model_no_warmup.ca_ramp(0) == 1.0
    default = SwAVSCACA(make_cfg(["~method_kwargs.ca_warmup_epochs"])).cfg.method_kwargs
    assert default.ca_warmup_epochs == default.freeze_prototypes_epochs


def test_add_on_parameters_are_optimised_and_outside_the_backbone():
    model = SwAVSCACA(make_cfg())
    groups = {g["name"]: list(g["params"]) for g in model.learnable_params}
    assert {id(p) for p in groups["ca_head"]} == {id(p) for p in model.ca_head.parameters()}
    phi = [k for k in model.state_dict() if "phi_" in k]
    assert phi and all(k.startswith("ca_head.") for k in phi)


@pytest.mark.parametrize(
    "override, message",
    [
        ("method_kwargs.ca_pairing=foo", r"ca_pairing='foo'.*\('prototype', 'nn', 'self', 'random'\)"),
        ("method_kwargs.ca_weight=-1", r"ca_weight=-1.*>= 0"),
        ("method_kwargs.ca_attn_temperature=0", r"ca_attn_temperature=0.*> 0"),
        ("method_kwargs.ca_mask_temperature=-0.1", r"ca_mask_temperature=-0.1.*> 0"),
        ("method_kwargs.ca_dim=0", r"ca_dim=0.*integer > 0"),
        ("method_kwargs.ca_dim=1.5", r"ca_dim=1.5.*integer > 0"),
        ("method_kwargs.ca_partner_weight=-2", r"ca_partner_weight=-2.*>= 0"),
        ("method_kwargs.ca_warmup_epochs=-1", r"ca_warmup_epochs=-1.*>= 0"),
        ("method_kwargs.ca_weight=abc", r"ca_weight='abc'.*number >= 0"),
        ("optimizer.batch_size=1", r"optimizer.batch_size=1.*>= 2"),
        ("method_kwargs.ca_gather_partners=yes", r"ca_gather_partners='yes'.*True and False"),
        ("method_kwargs.ca_pairing=3", r"ca_pairing=3 is invalid.*'prototype'"),
        ("+method_kwargs.ca_wieght=1", r"unknown method_kwargs \['ca_wieght'\].*ca_weight"),
    ],
)
def test_bad_configs_fail_before_training_naming_key_and_allowed_values(override, message):
    with pytest.raises(ValueError, match=message):
        SwAVSCACA(make_cfg([override]))


def test_a_backbone_without_a_known_spatial_map_fails_at_config_time(monkeypatch):
    from solo.methods.base import BaseMethod

    monkeypatch.setitem(BaseMethod._BACKBONES, "my_net", lambda method, **kw: torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"backbone.name='my_net'.*supported families.*'resnet'"):
        SwAVSCACA(make_cfg(["backbone.name=my_net"]))


@pytest.mark.parametrize(
    "backbone, size, extra",
    [
        ("resnet18", 16, []),
        ("resnet50", 16, []),
        ("wide_resnet28w2", 16, []),
        ("vit_tiny", 32, ["+backbone.kwargs.img_size=32", "+backbone.kwargs.patch_size=8"]),
        ("swin_tiny", 64, ["+backbone.kwargs.img_size=64"]),
        ("poolformer_s12", 64, []),
        ("convnext_tiny", 64, []),
    ],
)
def test_every_backbone_family_trains_a_step_with_the_add_on(backbone, size, extra):
    model = ready_for_steps(SwAVSCACA(make_cfg([f"backbone.name={backbone}", *extra])))
    model.eval()
    out = model(torch.randn(2, 3, size, size))
    fmap = out["fmap"]
    assert fmap.dim() == 4 and fmap.shape[1] == model.features_dim and fmap.shape[2] >= 2
    if model.spatial_map_hook.spec.pooled_is_gap:  # a uniform mask gives the backbone's features
        pooled = model.spatial_map_hook.feature_head(fmap.mean(dim=(2, 3)))
        torch.testing.assert_close(pooled, out["feats"], rtol=1e-4, atol=1e-4)
    model.train()
    loss = model.training_step(tiny_batch(size=size), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.ca_head.phi_k.weight.grad.abs().sum() > 0
