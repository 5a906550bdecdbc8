"""Shared fixtures: tiny swav / swav_scaca configs and models built through the host's parser."""

import os
import sys
from pathlib import Path
from typing import List

import pytest
import torch

# the tests import these from here
from benchmarks.tiny_models import TINY, make_cfg, make_method_cfg, ready_for_steps  # noqa: F401


def tiny_batch(batch_size: int = 8, size: int = 16, seed: int = 0):
    """A [indexes, [view1, view2], targets] batch of random images."""
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(batch_size, 3, size, size, generator=g) for _ in range(2)]
    return [torch.arange(batch_size), views, torch.randint(0, 10, (batch_size,), generator=g)]


def assert_same_step(host: torch.nn.Module, model: torch.nn.Module, batch) -> None:
    """One training step of each gives the same loss and the same gradients, parameter by
    parameter (``model`` holds ``host``'s weights)."""
    host_loss, loss = host.training_step(batch, 0), model.training_step(batch, 0)
    assert torch.equal(loss, host_loss)
    host_loss.backward()
    loss.backward()
    for (key, a), (_, b) in zip(host.named_parameters(), model.named_parameters()):
        assert (a.grad is None) == (b.grad is None), key
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad), key


def host_checkout() -> Path:
    """The host's repository files (main_pretrain.py ...): $SOLO_LEARN_ROOT, else /opt/solo-learn."""
    return Path(os.environ.get("SOLO_LEARN_ROOT", "/opt/solo-learn"))


def pretrain_command(entry: str) -> List[str]:
    """``plugin``: the plugin's pretraining command; ``host``: the host's unmodified
    main_pretrain.py (skipped, with the reason, without a checkout)."""
    if entry == "plugin":
        return ["solo-scaca-pretrain"]
    main_pretrain = host_checkout() / "main_pretrain.py"
    if not main_pretrain.exists():
        pytest.skip(f"no solo-learn checkout at {main_pretrain.parent} (set SOLO_LEARN_ROOT)")
    return [sys.executable, str(main_pretrain)]


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    """A small generated toy-shapes dataset (64 px, 8 train and 4 val images per class)."""
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(
        tmp_path_factory.mktemp("toy") / "toy_shapes",
        train_per_class=8, val_per_class=4, image_size=64,
    )
