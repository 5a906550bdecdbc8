"""Degenerate batches, mixed precision, non-finite losses and determinism of swav_scaca."""

import pytest
import torch

from solo_scaca import SwAVSCACA
from tests.conftest import make_cfg, ready_for_steps, tiny_batch


def _step(model, batch):
    loss = model.training_step(batch, 0)
    loss.backward()
    return loss


@pytest.mark.parametrize("pairing", ["prototype", "nn", "self", "random"])
def test_a_last_batch_of_two_images_trains(pairing):
    torch.manual_seed(0)
    model = ready_for_steps(SwAVSCACA(make_cfg([f"method_kwargs.ca_pairing={pairing}"])))
    loss = _step(model, tiny_batch(batch_size=2))
    assert torch.isfinite(loss)


def test_a_batch_of_one_image_skips_the_ca_term_with_a_warning():
    model = ready_for_steps(SwAVSCACA(make_cfg()))
    model.projector.eval()  # SwAV's own BatchNorm cannot train on one image
    with pytest.warns(UserWarning, match="batch of 1 image cannot be paired"):
        loss = model.training_step(tiny_batch(batch_size=1), 0)
    assert torch.isfinite(loss)


def test_bf16_mixed_precision_on_cpu_gives_finite_losses():
    torch.manual_seed(0)
    model = ready_for_steps(SwAVSCACA(make_cfg()))
    for step in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model.training_step(tiny_batch(seed=step), step)
        assert torch.isfinite(loss)
        loss.backward()


def test_a_non_finite_ca_loss_stops_with_a_message_naming_the_step(monkeypatch):
    model = ready_for_steps(SwAVSCACA(make_cfg()))
    monkeypatch.setattr(
        "solo_scaca.methods.swav_scaca.ca_loss_func", lambda *a, **k: torch.tensor(float("nan"))
    )
    with pytest.raises(FloatingPointError, match=r"CA loss is nan at epoch 0, global step 0 \(batch 3\)"):
        model.training_step(tiny_batch(), 3)


def test_same_seed_gives_identical_losses():
    def run():
        torch.manual_seed(7)
        model = ready_for_steps(SwAVSCACA(make_cfg(["method_kwargs.ca_pairing=random"])))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for step in range(3):
            loss = _step(model, tiny_batch(seed=step))
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        return losses

    first, second = run(), run()
    assert first == second
    assert len(set(first)) == 3  # the steps really differ
