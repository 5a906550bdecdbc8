"""The cross-attention mask, the masked pooling and the CA loss (docs/method.md sections 2-3)."""

import torch
from solo.losses.swav import swav_loss_func

from solo_scaca.addon.cross_attention import SpatialCrossAttention, cross_correlation_mask, masked_pool
from solo_scaca.addon.losses import ca_loss_func


def _ca(channels=8, dim=4, seed=0):
    torch.manual_seed(seed)
    return SpatialCrossAttention(channels, ca_dim=dim, attn_temperature=0.1, mask_temperature=0.1)


def test_mask_is_a_distribution_over_the_query_locations():
    ca = _ca()
    fmaps = [torch.randn(5, 8, 3, 4), torch.randn(5, 8, 3, 4)]
    partners = [(0, torch.tensor([1, 2, 3, 4, 0])), (0, torch.tensor([4, 0, 1, 2, 3]))]
    feats, masks = ca(fmaps, partners)[:2]
    for f, m in zip(feats, masks):
        assert f.shape == (5, 8) and m.shape == (5, 3, 4)
        assert torch.all(m >= 0)
        torch.testing.assert_close(m.sum(dim=(1, 2)), torch.ones(5))
        assert not torch.allclose(m, torch.full_like(m, 1 / 12))  # random maps: not uniform


def test_uniform_mask_gives_gap_and_the_host_swav_loss():
    torch.manual_seed(0)
    fmaps = [torch.randn(6, 8, 3, 3).relu() for _ in range(2)]
    uniform = torch.full((6, 9), 1 / 9)
    gap = [f.mean(dim=(2, 3)) for f in fmaps]
    masked = [masked_pool(f, uniform) for f in fmaps]
    for m, g in zip(masked, gap):
        torch.testing.assert_close(m, g)

    prototypes = torch.nn.Linear(8, 5, bias=False)
    codes = [torch.softmax(torch.randn(6, 5), dim=1) for _ in range(2)]
    preds = [prototypes(torch.nn.functional.normalize(g)) for g in gap]
    masked_preds = [prototypes(torch.nn.functional.normalize(m)) for m in masked]
    torch.testing.assert_close(
        ca_loss_func(masked_preds, codes, 0.1), swav_loss_func(preds, codes, 0.1)
    )


def test_spatially_constant_maps_give_a_uniform_mask():
    ca = _ca()
    constant = torch.randn(4, 8, 1, 1).expand(4, 8, 3, 3).contiguous()
    feats, masks = ca([constant, constant], [(1, torch.arange(4)), (0, torch.arange(4))])[:2]
    torch.testing.assert_close(masks[0], torch.full((4, 3, 3), 1 / 9))
    torch.testing.assert_close(feats[0], constant.mean(dim=(2, 3)))


def test_mask_peaks_where_the_image_matches_its_partner():
    # queries/keys as given unit vectors: location 5 of the query matches the partner exactly
    d, hw = 4, 9
    partner = torch.nn.functional.normalize(torch.tensor([1.0, 1.0, 0.0, 0.0]), dim=0)
    queries = torch.nn.functional.normalize(torch.randn(1, d, hw).abs() * torch.tensor(
        [0.0, 0.0, 1.0, 1.0]).view(1, d, 1) + 1e-3, dim=1)
    queries[0, :, 5] = partner
    keys = partner.view(1, d, 1).expand(1, d, hw)
    mask = cross_correlation_mask(queries, keys, 0.1, 0.1)
    assert mask.argmax() == 5 and mask[0, 5] > 0.9


def test_gradients_reach_both_the_query_and_the_partner_maps():
    ca = _ca()
    query = torch.randn(3, 8, 2, 2, requires_grad=True)
    partner = torch.randn(3, 8, 2, 2, requires_grad=True)
    feats = ca([query, partner], [(1, torch.arange(3)), (0, torch.arange(3))]).feats
    (feats[0] * torch.randn_like(feats[0])).sum().backward()  # view 0 only: partner = keys only
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert partner.grad is not None and partner.grad.abs().sum() > 0
    assert ca.phi_q.weight.grad.abs().sum() > 0 and ca.phi_k.weight.grad.abs().sum() > 0


def test_partner_term_adds_the_cross_entropy_against_the_partner_codes():
    torch.manual_seed(1)
    preds = [torch.randn(4, 5) for _ in range(2)]
    codes = [torch.softmax(torch.randn(4, 5), dim=1) for _ in range(2)]
    partner = [torch.softmax(torch.randn(4, 5), dim=1) for _ in range(2)]
    base = ca_loss_func(preds, codes, 0.1)
    with_partner = ca_loss_func(preds, codes, 0.1, partner, partner_weight=0.5)
    expected = sum(
        -(q * torch.log_softmax(p / 0.1, dim=1)).sum(dim=1).mean() for p, q in zip(preds, partner)
    ) / 2
    torch.testing.assert_close(with_partner, base + 0.5 * expected)
    torch.testing.assert_close(ca_loss_func(preds, codes, 0.1, partner, 0.0), base)
