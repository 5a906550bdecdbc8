"""``ca_objective``: objectives in which the uniform mask is not optimal. The pieces on hand-made
maps where the right answer is known, one training step of every objective on every method, its
``ca_mask=uniform`` control, and config errors."""

import pytest
import torch
from solo.methods import METHODS

from solo_scaca.addon import objectives as obj
from solo_scaca.addon.cross_attention import SpatialCrossAttention
from tests.conftest import ready_for_steps, tiny_batch
from tests.test_scaca_methods import NAMES, paired, tiny_cfg


def shared_patch_maps(batch: int = 3, channels: int = 16, side: int = 4, seed: int = 0):
    """Maps of image i and partner j: random everywhere, except one location of each (i at
    (1, 2), j at (3, 0)) holding the same distinctive vector."""
    g = torch.Generator().manual_seed(seed)
    fi = torch.randn(batch, channels, side, side, generator=g)
    fj = torch.randn(batch, channels, side, side, generator=g)
    shared = 6 * torch.randn(batch, channels, generator=g)
    fi[:, :, 1, 2] = shared
    fj[:, :, 3, 0] = shared
    return fi, fj, 1 * side + 2, 3 * side + 0


def unit(f):
    return torch.nn.functional.normalize(f.flatten(2), dim=1)


def test_mutual_nearest_neighbours_put_the_mask_on_the_shared_patch():
    fi, fj, ui, _ = shared_patch_maps()
    mask = obj.mutual_nn_mask(fi, fj, floor=0.0).flatten(1)
    assert torch.equal(mask.argmax(dim=1), torch.full((3,), ui))
    torch.testing.assert_close(mask.sum(dim=1), torch.ones(3))


def test_co_attention_masks_both_images_on_what_they_share():
    fi, fj, ui, uj = shared_patch_maps()
    r_i, r_j = obj.co_responses(unit(fi), unit(fj), attn_temperature=0.1)
    assert torch.equal(r_i.argmax(dim=1), torch.full((3,), ui))
    assert torch.equal(r_j.argmax(dim=1), torch.full((3,), uj))


def test_attend_rebuilds_the_image_from_the_partner_s_matching_part():
    fi, fj, _, uj = shared_patch_maps()
    feat, attn = obj.attend_pool(unit(fi), unit(fj), fj, 0.05, 0.1)
    assert torch.equal(attn.argmax(dim=1), torch.full((3,), uj))
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(3))
    # a uniform attention would give the partner's GAP
    _, flat = obj.attend_pool(torch.zeros_like(unit(fi)), unit(fj), fj, 1.0, 1.0)
    torch.testing.assert_close(obj.weighted_pool(fj, flat), fj.mean(dim=(2, 3)))


def test_complement_mask_holds_the_shared_patch_and_leaves_out_the_rest():
    fi, fj, ui, _ = shared_patch_maps()
    ca = SpatialCrossAttention(16, mask="cross", keys="features", objective="complement")
    out = ca([fi, fj], [(1, torch.arange(3)), (0, torch.arange(3))])
    assert torch.equal(out.masks[0].flatten(1).argmax(dim=1), torch.full((3,), ui))
    soft = obj.complement_mask(torch.tensor([[0.0, 1.0]]), 0.1)
    assert soft[0, 1] > 0.99 and soft[0, 0] < 0.01  # sigmoid of the centred response
    assert len(out.background) == 2 and out.area[0].shape == (3,)


def test_box_pooling_beats_the_uniform_mask_where_only_the_object_predicts_the_code():
    """The background penalty and the cross entropy prefer the object's pooling."""
    targets = torch.eye(4)[[0, 1, 2, 3]]
    obj_logits = 5 * targets
    clutter_logits = 5 * torch.eye(4)[[1, 2, 3, 0]]
    ce_object = obj.soft_cross_entropy(targets, obj_logits, 1.0).mean()
    ce_mixed = obj.soft_cross_entropy(targets, (obj_logits + clutter_logits) / 2, 1.0).mean()
    assert ce_object < ce_mixed
    assert (obj.background_penalty(clutter_logits, targets, 1.0)
            < obj.background_penalty(obj_logits, targets, 1.0)).all()
    assert obj.area_penalty(torch.tensor([0.5])) == 0 < obj.area_penalty(torch.tensor([0.05]))


def _allowed(name):
    return METHODS[name].CA_SCHEMA["ca_objective"].allowed


CASES = [(n, o) for n in NAMES for o in obj.OBJECTIVES if o in _allowed(n)]


@pytest.mark.parametrize("name, objective", CASES)
def test_every_objective_trains_a_step_of_every_method(name, objective):
    host, scaca = paired(name, [f"method_kwargs.ca_objective={objective}"])
    batch = tiny_batch()
    host_loss, loss = host.training_step(batch, 0), scaca.training_step(batch, 0)
    assert torch.isfinite(loss) and abs(loss - host_loss) > 1e-6
    loss.backward()
    assert scaca.backbone.layer4[-1].conv2.weight.grad.abs().sum() > 0
    if objective == "fixed":  # a mask not learned: no projections at all
        assert list(scaca.ca_head.parameters()) == []
    else:
        assert scaca.ca_head.phi_q.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name, objective", CASES)
def test_every_objective_has_its_uniform_control(name, objective):
    _, scaca = paired(name, [f"method_kwargs.ca_objective={objective}",
                             "method_kwargs.ca_mask=uniform"])
    loss = scaca.training_step(tiny_batch(), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert scaca.backbone.layer4[-1].conv2.weight.grad.abs().sum() > 0


def test_complement_s_background_branch_trains_the_mask_not_the_head(monkeypatch):
    """The background penalty reaches the projections (the mask), never the head."""
    _, scaca = paired("swav_scaca", ["method_kwargs.ca_objective=complement",
                                     "method_kwargs.ca_bg_weight=1.0"])
    loss_of = scaca.ca_loss
    calls = []

    def only_background(outputs, *rest):  # the main term as a constant: only the penalty
        loss = loss_of(outputs, *rest)
        calls.append(loss)
        return loss.detach() if len(calls) == 1 else loss

    monkeypatch.setattr(scaca, "ca_loss", only_background)
    monkeypatch.setattr(scaca, "ca_area_weight", 0.0)
    scaca.ca_objective_loss  # noqa: B018 (exists)
    batch = tiny_batch()
    scaca._step_outs = []
    host_loss = METHODS["swav"].training_step(scaca, batch, 0)  # the host's step
    outs, targets = scaca._step_outs[:2], scaca.ca_targets(batch)
    scaca._step_outs = None
    pairing = scaca._pair(outs, targets, batch, False)
    ca = scaca.ca_head([o["fmap"] for o in outs], pairing.partners)
    scaca.zero_grad()
    scaca.ca_objective_loss(ca, targets, batch, None).backward()
    assert scaca.ca_head.phi_q.weight.grad.abs().sum() > 0
    assert scaca.projector[0].weight.grad is None or not scaca.projector[0].weight.grad.any()
    assert torch.isfinite(host_loss)


@pytest.mark.parametrize("name, override, message", [
    ("swav_scaca", "method_kwargs.ca_objective=mystery",
     r"ca_objective='mystery' is invalid for swav_scaca: allowed values are \('self', "
     r"'self_masked', 'co', 'complement', 'fixed', 'attend'\)"),
    ("deepclusterv2_scaca", "method_kwargs.ca_objective=co",
     r"ca_objective='co' is invalid for deepclusterv2_scaca: allowed values are \('self', "
     r"'complement', 'fixed', 'attend'\)"),
    ("swav_scaca", "method_kwargs.ca_bg_weight=-1", r"ca_bg_weight=-1 is invalid"),
])
def test_objective_config_errors_name_the_key_and_the_allowed_values(name, override, message):
    with pytest.raises(ValueError, match=message):
        METHODS[name](tiny_cfg(name, [override]))


def test_contrast_response_is_only_for_the_self_objectives():
    with pytest.raises(ValueError, match="ca_response='contrast' is invalid with "
                                         "ca_objective='co'"):
        METHODS["swav_scaca"](tiny_cfg("swav_scaca", ["method_kwargs.ca_objective=co",
                                                      "method_kwargs.ca_response=contrast"]))
