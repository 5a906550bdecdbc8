"""Is the cross-attention alive? The mechanism metrics, the extra-loss control
(``ca_mask=uniform``), the raw-feature keys and the response variants (docs/method.md section 6)."""

import math

import pytest
import torch
import torch.nn.functional as F

from solo_scaca import SwAVSCACA
from solo_scaca.addon.cross_attention import SpatialCrossAttention, cross_correlation_mask
from solo_scaca.addon.mechanism_metrics import (
    distance_to_uniform,
    labels_are_real,
    mask_distance,
    mask_entropy,
    mask_peak,
)
from tests.conftest import make_cfg, tiny_batch
from tests.test_swav_scaca import _paired_models

FIVE = ("train_ca_mask_entropy", "train_ca_mask_peak", "train_ca_partner_sensitivity",
        "train_ca_partner_same_prototype", "train_ca_partner_same_class")


def test_metrics_of_uniform_and_one_hot_masks():
    uniform = torch.full((3, 4, 4), 1 / 16)
    one_hot = torch.zeros(3, 4, 4)
    one_hot[:, 1, 2] = 1
    assert mask_entropy(uniform).item() == pytest.approx(1.0)
    assert mask_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    assert mask_peak(uniform).item() == pytest.approx(1.0)
    assert mask_peak(one_hot).item() == pytest.approx(16.0)
    assert distance_to_uniform(uniform).item() == pytest.approx(0.0)
    assert distance_to_uniform(one_hot).item() == pytest.approx(2 * 15 / 16)
    assert mask_distance(one_hot, one_hot).item() == 0
    half = 0.5 * uniform + 0.5 * one_hot
    assert 0 < mask_entropy(half).item() < 1
    assert labels_are_real(torch.tensor([0, 3])) and not labels_are_real(torch.tensor([-1, -1]))


def _logged(model):
    """Replaces ``model.log`` by a recorder (no Trainer needed)."""
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    return logged


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_uniform_mask_is_the_host_swav_loss_counted_one_plus_lambda_times(weight):
    swav, scaca = _paired_models(["method_kwargs.ca_mask=uniform", f"method_kwargs.ca_weight={weight}"])
    assert list(scaca.ca_head.parameters()) == []  # nothing to learn: no unused DDP params
    host_log, log = _logged(swav), _logged(scaca)
    batch = tiny_batch()
    host_total = swav.training_step(batch, 0)  # L_swav + the online classifier's loss
    total = scaca.training_step(batch, 0)
    torch.testing.assert_close(log["train_ca_loss"], host_log["train_swav_loss"])
    torch.testing.assert_close(total, host_total + weight * host_log["train_swav_loss"])
    assert log["train_ca_mask_entropy"].item() == pytest.approx(1.0)
    assert log["train_ca_mask_peak"].item() == pytest.approx(1.0)
    assert log["train_ca_partner_sensitivity"].item() == 0


def test_training_step_logs_the_five_metrics_and_same_class_only_for_real_labels():
    _, scaca = _paired_models([])
    log = _logged(scaca)
    scaca.training_step(tiny_batch(), 0)
    assert set(FIVE) <= set(log)
    assert 0 <= log["train_ca_partner_same_class"].item() <= 1
    assert 0 < log["train_ca_mask_entropy"].item() <= 1
    assert log["train_ca_partner_sensitivity"].item() > 0  # random maps: the partner matters

    log.clear()
    unlabelled = tiny_batch()
    unlabelled[-1] = torch.full_like(unlabelled[-1], -1)  # the host's no_labels datasets
    scaca.training_step(unlabelled, 0)
    assert "train_ca_partner_same_class" not in log and "train_ca_mask_entropy" in log


def test_feature_keys_are_the_raw_spatial_cross_correlation():
    ca = SpatialCrossAttention(8, keys="features", attn_temperature=0.1, mask_temperature=0.1)
    assert list(ca.parameters()) == []
    torch.manual_seed(0)
    fmaps = [torch.randn(4, 8, 3, 3, requires_grad=True) for _ in range(2)]
    partners = [(1, torch.tensor([1, 2, 3, 0])), (0, torch.tensor([3, 0, 1, 2]))]
    feats, masks = ca(fmaps, partners)[:2]
    q = F.normalize(fmaps[0].flatten(2), dim=1)
    k = F.normalize(fmaps[1].flatten(2), dim=1)[partners[0][1]]
    torch.testing.assert_close(masks[0].flatten(1), cross_correlation_mask(q, k, 0.1, 0.1))
    feats[0].sum().backward()
    assert fmaps[0].grad.abs().sum() > 0 and fmaps[1].grad.abs().sum() > 0


def test_mean_response_and_contrast_against_a_negative():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(2, 4, 6), dim=1)
    k = F.normalize(torch.randn(2, 4, 5), dim=1)
    sim = torch.bmm(q.transpose(1, 2), k)
    torch.testing.assert_close(cross_correlation_mask(q, k, 0.1, 0.5, "mean"),
                               torch.softmax(sim.mean(dim=2) / 0.5, dim=1))
    # the partner is the negative: nothing is shared beyond any image, the mask is uniform
    same = cross_correlation_mask(q, k, 0.1, 0.1, "contrast", negative_keys=k)
    torch.testing.assert_close(same, torch.full_like(same, 1 / 6))
    with pytest.raises(ValueError, match="negative"):
        cross_correlation_mask(q, k, 0.1, 0.1, "contrast")


def test_contrast_response_trains_through_the_method():
    _, scaca = _paired_models(["method_kwargs.ca_response=contrast"])
    log = _logged(scaca)
    loss = scaca.training_step(tiny_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss) and scaca.ca_head.phi_k.weight.grad.abs().sum() > 0
    assert 0 < log["train_ca_mask_entropy"].item() < 1


def test_probe_masks_equal_to_the_partners_give_zero_sensitivity():
    torch.manual_seed(0)
    ca = SpatialCrossAttention(8, ca_dim=4)
    fmaps = [torch.randn(4, 8, 3, 3) for _ in range(2)]
    partners = [(0, torch.tensor([1, 2, 3, 0])), (1, torch.tensor([3, 0, 1, 2]))]
    out = ca(fmaps, partners, probes=partners)
    for m, p in zip(out.masks, out.probe_masks):
        assert not p.requires_grad
        assert mask_distance(m, p).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("key,value", [("ca_mask", "gaussian"), ("ca_keys", "random"),
                                       ("ca_response", "max")])
def test_bad_choice_names_the_key_and_the_allowed_values(key, value):
    with pytest.raises(ValueError, match=rf"method_kwargs\.{key}='{value}'.*allowed values"):
        SwAVSCACA(make_cfg([f"method_kwargs.{key}={value}"]))


def test_entropy_is_normalised_by_ln_hw():
    masks = torch.softmax(torch.randn(5, 16), dim=1).view(5, 4, 4)
    flat = masks.flatten(1)
    expected = (-(flat * flat.log()).sum(1) / math.log(16)).mean()
    torch.testing.assert_close(mask_entropy(masks), expected)


def test_metrics_and_their_probe_masks_only_every_ca_metrics_every_steps(monkeypatch):
    _, scaca = _paired_models(["method_kwargs.ca_metrics_every=3"])
    log = _logged(scaca)
    drawn = []
    forward = scaca.ca_head.forward
    monkeypatch.setattr(scaca.ca_head, "forward",
                        lambda *a, **k: drawn.append(k.get("probes")) or forward(*a, **k))
    for step in range(6):  # steps 0-3 in one epoch, 4-5 in the next (batch_idx from 0 again)
        monkeypatch.setattr(type(scaca), "global_step", property(lambda self, s=step: s))
        log.clear()
        scaca.training_step(tiny_batch(), step if step < 4 else step - 4)
        assert ("train_ca_mask_entropy" in log) == (step in (0, 3, 4)), step
        assert "train_ca_loss" in log
    assert [p is not None for p in drawn] == [True, False, False, True, True, False]
