"""How much a training step of a ``*_scaca`` method costs against its host method: step time
and memory on the same batches and weights, steps interleaved, median of repeats, as ratios;
and the exported backbone's inference time. Used by the overhead benchmark
(``benchmarks/overhead.py``) and the device run (``benchmarks/device.py``).

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated``; on CPU (no allocator
statistics) the training state: parameters, gradients and SGD momentum, plus the tensors
autograd saves for backward (deduplicated by storage), which is what a step adds.
"""

import statistics
import time
from typing import Dict, List

import torch
from solo.methods import METHODS
from solo.methods.swav import SwAV

from solo_scaca import SwAVSCACA
from benchmarks.tiny_models import make_cfg, make_method_cfg, ready_for_steps

SETTINGS = {
    # name: (config overrides, image size, batch size)
    "resnet18-cifar-32px": (["data.dataset=cifar10", "backbone.name=resnet18"], 32, 64),
    # the controls campaign's backbone: an 8x8 map, where the (HW)^2 cross-correlation costs most
    "wide_resnet28w2-32px": (["data.dataset=cifar10", "backbone.name=wide_resnet28w2"], 32, 64),
    "resnet50-imagenet-64px": (["data.dataset=imagenet100", "backbone.name=resnet50"], 64, 32),
}
# GPU sizes (the default on CUDA, besides the above): the gpu controls profile's batch, and
# ResNet-50 at ImageNet's 224 px (7x7 map)
GPU_SETTINGS = {
    "wide_resnet28w2-32px-b256": (["data.dataset=cifar10", "backbone.name=wide_resnet28w2"],
                                  32, 256),
    "resnet50-imagenet-224px": (["data.dataset=imagenet100", "backbone.name=resnet50"], 224, 128),
}
SWAV_HEAD = ["method_kwargs.proj_hidden_dim=2048", "method_kwargs.num_prototypes=3000",
             "method_kwargs.ca_dim=128"]


HOST_METHODS = ("swav", "deepclusterv2", "dino", "byol", "simclr")


def _models(overrides: List[str], batch: int, host: str = "swav", size: int = 32):
    """The host method and its ``_scaca`` subclass with the same weights: SwAV from the toy
    config with SwAV's full-size head, any other method from its shipped cifar config (the
    host's head sizes)."""
    torch.manual_seed(0)
    common = [*overrides, f"optimizer.batch_size={batch}"]
    if host == "swav":
        base = ready_for_steps(SwAV(make_cfg([*SWAV_HEAD, *common], method="swav")))
        scaca = ready_for_steps(SwAVSCACA(make_cfg([*SWAV_HEAD, *common])))
    else:
        base = ready_for_steps(METHODS[host](make_method_cfg(host, common, size)), batch)
        scaca = ready_for_steps(METHODS[f"{host}_scaca"](
            make_method_cfg(f"{host}_scaca", common, size)), batch)
    scaca.load_state_dict(base.state_dict(), strict=False)
    return {host: base, f"{host}_scaca": scaca}


def _step(model, opt, batch) -> None:
    opt.zero_grad(set_to_none=True)
    model.training_step(batch, 0).backward()
    opt.step()


def _saved_bytes(model, batch) -> int:
    """Bytes autograd keeps for backward in one training step (each storage counted once)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.training_step(batch, 0)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def _state_bytes(model) -> int:
    """Parameters, their gradients and SGD momentum."""
    return 3 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def measure(name: str, overrides: List[str], size: int, batch: int, repeats: int,
            device: str, host: str = "swav") -> List[Dict]:
    models = {k: m.to(device) for k, m in _models(overrides, batch, host, size).items()}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in models.items()}
    g = torch.Generator().manual_seed(0)
    data = [torch.arange(batch).to(device),
            [torch.randn(batch, 3, size, size, generator=g).to(device) for _ in range(2)],
            torch.randint(0, 10, (batch,)).to(device)]
    times = {k: [] for k in models}
    memory = {}
    for k in models:  # warm-up (allocator, caches) and memory
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _step(models[k], opts[k], data)
        if device == "cuda":
            torch.cuda.synchronize()
            memory[k] = torch.cuda.max_memory_allocated()
        else:
            memory[k] = _state_bytes(models[k]) + _saved_bytes(models[k], data)
    for _ in range(repeats):  # interleaved: both methods see the same machine load
        for k in models:
            start = time.perf_counter()
            _step(models[k], opts[k], data)
            if device == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - start)

    rows = []
    for k in models:
        step = statistics.median(times[k])
        rows.append({"setting": name, "method": k, "batch": batch, "image_px": size,
                     "step_s_median": step, "images_per_s": batch / step,
                     "memory_MiB": memory[k] / 2**20})
    base, ours = rows
    rows.append({"setting": name, "method": f"ratio scaca/{host}", "batch": batch,
                 "image_px": size,
                 "step_s_median": ours["step_s_median"] / base["step_s_median"],
                 "images_per_s": ours["images_per_s"] / base["images_per_s"],
                 "memory_MiB": ours["memory_MiB"] / base["memory_MiB"]})
    rows += _inference(name, models, data[1][0], repeats, device, host)
    return rows


@torch.no_grad()
def _inference(name: str, models, images, repeats: int, device: str,
               host: str = "swav") -> List[Dict]:
    """Exported-backbone forward time: the ``_scaca`` method's backbone against the host
    method's (same architecture)."""
    backbones = {k: m.backbone.eval() for k, m in models.items()}
    times = {k: [] for k in backbones}
    for _ in range(repeats + 1):
        for k, b in backbones.items():
            start = time.perf_counter()
            b(images)
            if device == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - start)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    return [{"setting": name, "method": f"inference {k} backbone", "batch": len(images),
             "image_px": images.shape[-1], "step_s_median": med[k],
             "images_per_s": len(images) / med[k]} for k in backbones] + [
        {"setting": name, "method": f"inference ratio scaca/{host}", "batch": len(images),
         "image_px": images.shape[-1],
         "step_s_median": med[f"{host}_scaca"] / med[host]}]
