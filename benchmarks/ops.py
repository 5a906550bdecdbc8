"""How many ops the add-on dispatches: the torch profiler's count of aten ops in one training step
(forward, losses, backward) of each ``<method>_scaca`` over its host method, on CPU.

    python3 -m benchmarks ops --profile cpu

Counts, not seconds, so the table does not depend on what else the machine runs. On a GPU each
op is a kernel launch at least: with small maps the add-on's cost there is its op count. Two
rows per method: a step that computes the mechanism metrics (every ``ca_metrics_every`` steps,
the logging interval) and one that does not; the amortised overhead weighs them 1 : N - 1.
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from benchmarks.common import RESULTS, metadata, write_table
from benchmarks.tiny_models import make_method_cfg, ready_for_steps

METHODS = ("swav", "deepclusterv2", "dino", "byol", "simclr")
TINY_HEADS = {  # per host method: small heads (the counts hardly depend on sizes)
    "swav": ["method_kwargs.num_prototypes=100", "method_kwargs.queue_size=0"],
    "deepclusterv2": ["method_kwargs.num_prototypes=[100,100]"],
    "dino": ["method_kwargs.num_prototypes=100"],
    "byol": [],
    "simclr": [],
}
TARGET = 0.25  # the add-on may add at most this share of the host method's ops


def batch_of(size: int, crop: int, crops: int = 2) -> List:
    g = torch.Generator().manual_seed(0)
    return [torch.arange(size), [torch.randn(size, 3, crop, crop, generator=g)
                                 for _ in range(crops)], torch.arange(size) % 10]


def count_ops(model: torch.nn.Module, batch: List, global_step: int) -> int:
    """aten ops dispatched by one training step at ``global_step`` (forward and backward). The
    add-on's metrics run by the ``ca_metrics_every`` stride alone (an epoch's first step, where
    they also run, is one more such step per epoch)."""
    from torch.profiler import ProfilerActivity, profile

    cls = type(model)
    saved = cls.__dict__.get("global_step")
    cls.global_step = property(lambda self: global_step)
    model.log = lambda *a, **k: None
    if hasattr(model, "ca_metrics_every"):
        model._metrics_step = lambda _: global_step % model.ca_metrics_every == 0
    try:
        model.zero_grad()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.training_step(batch, 0).backward()
    finally:
        if saved is None:
            del cls.global_step
        else:
            cls.global_step = saved
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def measure(host: str, backbone: str, crop: int, batch_size: int,
            metrics_every: int) -> Dict[str, object]:
    overrides = [f"backbone.name={backbone}", f"optimizer.batch_size={batch_size}",
                 "method_kwargs.ca_warmup_epochs=0", f"method_kwargs.ca_metrics_every="
                 f"{metrics_every}", *TINY_HEADS[host]]
    counts = {}
    for name in (host, f"{host}_scaca"):
        torch.manual_seed(0)
        from solo.methods import METHODS as REGISTRY

        cfg = make_method_cfg(name, overrides, crop)
        model = ready_for_steps(REGISTRY[name](cfg), batch_size)
        batch = batch_of(batch_size, crop)
        counts[name] = (count_ops(model, batch, 0), count_ops(model, batch, 1))
    base = counts[host][0]
    with_metrics, without = counts[f"{host}_scaca"]
    amortised = (with_metrics + (metrics_every - 1) * without) / metrics_every
    return {"method": f"{host}_scaca", "host ops": base,
            "add-on ops (metrics step)": with_metrics - base,
            "add-on ops (other steps)": without - base,
            "add-on / host (amortised)": f"{(amortised - base) / base:.2f}",
            f"<= {TARGET}": "yes" if (amortised - base) / base <= TARGET else "no"}


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Command-line entry point (also ``python3 -m benchmarks ops``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="the results subfolder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--backbone", default="wide_resnet28w2")
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--metrics-every", type=int, default=50)
    args = parser.parse_args(argv)
    rows = [measure(m, args.backbone, args.crop, args.batch, args.metrics_every)
            for m in args.methods]
    for row in rows:
        print(f"[ops] {row}", flush=True)
    notes = (f"One training step of `{args.backbone}` at {args.crop} px, batch {args.batch}, two "
             f"large crops, on CPU: aten ops counted by the torch profiler (nested ops "
             f"included), forward and backward. Metrics every {args.metrics_every} steps "
             f"(`ca_metrics_every`, the logging interval); amortised = (metrics step + "
             f"{args.metrics_every - 1} other steps) / {args.metrics_every}. Target: the add-on "
             f"adds at most {TARGET:.0%} of the host method's ops (the metrics also run at "
             f"each epoch's first step: one more per epoch). What remains above it: the masked "
             f"features' passes through the method's own head (projector, prototypes), one per "
             f"view and objective branch, kept apart from the host's passes so that the head's "
             f"batch-norm statistics stay the host's (with `ca_mask=uniform` the loss is then "
             f"exactly (1 + ca_weight) x the host's, tested); DeepClusterV2 scores them "
             f"against each of its prototype sets.")
    return write_table("ops", "Ops the add-on dispatches per training step", rows,
                       list(rows[0]), metadata(), notes, args.out / args.profile)


if __name__ == "__main__":
    main()
