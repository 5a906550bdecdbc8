"""Overhead of the add-on: training-step time, memory and images/s of swav_scaca against the
host's swav on the same batches and weights, runs interleaved, median of repeats, as ratios;
and inference cost of the exported backbone against SwAV's.

    python3 -m benchmarks.overhead            # full setting, writes benchmarks/results/overhead.*
    python3 -m benchmarks.overhead --tiny --out /tmp/x   # seconds, to keep the script working

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated``; on CPU (no allocator
statistics) the training state: parameters, gradients and SGD momentum, plus the tensors
autograd saves for backward (deduplicated by storage), which is what a step adds.
"""

import argparse
from pathlib import Path

import torch

from benchmarks.common import RESULTS, metadata, write_table
from benchmarks.step_cost import GPU_SETTINGS, HOST_METHODS, SETTINGS, measure


def main(argv=None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--settings", nargs="+", default=None,
                        choices=[*SETTINGS, *GPU_SETTINGS],
                        help="default: the CPU settings, and on CUDA the GPU ones too")
    parser.add_argument("--methods", nargs="+", choices=HOST_METHODS, default=["swav"],
                        help="host methods, each against its _scaca method (default: swav; "
                             "other methods use the settings' backbone and image size with "
                             "their shipped cifar config)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, 2 repeats (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(torch.get_num_threads())

    every = {**SETTINGS, **GPU_SETTINGS}
    names = args.settings or [*SETTINGS, *(GPU_SETTINGS if device == "cuda" else ())]
    rows = []
    for name in names:
        overrides, size, batch = every[name]
        if args.tiny:
            size, batch, args.repeats = 16, 4, 2
        for host in args.methods:
            print(f"[overhead] {name} {host}: batch {batch}, {size}px, {args.repeats} repeats "
                  f"on {device}", flush=True)
            rows += measure(name, overrides, size, batch, args.repeats, device, host)
    notes = (
        "Training step = forward of both large crops, the method's (and CA) loss, backward, SGD "
        "step; the same random batch and the same initial weights for both methods, runs "
        "interleaved, median over repeats. Ratio rows divide `<method>_scaca` by the host's "
        "`<method>` (targets for ResNet-18/CIFAR at batch 64: step time <= 1.10, memory <= "
        "1.15); methods other than swav use their shipped cifar config's head sizes. Memory: "
        + ("peak CUDA allocation." if device == "cuda" else
           "parameters + gradients + momentum + tensors saved for backward (CPU has no "
           "allocator peak).")
    )
    stem = "overhead" if args.methods == ["swav"] else "overhead-methods"
    path = write_table(stem, "Overhead of the cross-attention add-on", rows,
                       ["setting", "method", "batch", "image_px", "step_s_median",
                        "images_per_s", "memory_MiB"], metadata({"device": device}), notes,
                       args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
