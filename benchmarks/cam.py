"""CAM localization: MaxBoxAcc of swav against swav_scaca backbones (docs/method.md section 8).

For every checkpoint: a linear head is trained on the frozen pooled features of a dataset's
train split; the CAMs of the true classes of its val split (GT-known) are scored with MaxBoxAcc
(Choe et al., CVPR 2020: box of the largest connected component of ``CAM >= t``, IoU >= 0.5,
best of t in 0, 0.01, ..., 0.99). Two datasets: (a) the generated toy shapes (val split and its
boxes), (b) real CIFAR-10 test images pasted on collages of other classes
(``solo_scaca.data.collage``). Mean and std over the checkpoints of each method.

    python3 -m benchmarks.cam --ckpt swav=A.ckpt --ckpt swav=B.ckpt \\
        --ckpt swav_scaca=C.ckpt --ckpt swav_scaca=D.ckpt   # writes benchmarks/results/cam.*
    python3 -m benchmarks.cam --from-runs benchmarks/results/gpu/runs   # the accuracy runs'
    python3 -m benchmarks.cam --tiny --out /tmp/x   # seconds; tiny random-init checkpoints (CI)

A checkpoint is a pretraining checkpoint with the host's ``args.json`` beside it, or one exported
by ``solo-scaca-export``. Writes ``cam.md``/``cam.csv`` (per method), ``cam_runs.md``/``.csv``
(per checkpoint) and ``cam_grid_<dataset>.png`` (image | CAM of each method's first checkpoint,
with its box at its best threshold | ground-truth box).
"""

import argparse
import json
import shutil
import statistics
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from benchmarks.cam_eval import evaluate, normalization, split_data
from benchmarks.common import RESULTS, metadata, write_table
from benchmarks.data import shared_data_dir
from solo_scaca.evaluation.cam import center_gaussian_maps, max_box_acc
from solo_scaca.data.collage import generate_localization_set
from solo_scaca.data.toy_shapes import generate_toy_shapes
from solo_scaca.host.backbone_io import load_backbone, read_pretrain_args
from solo_scaca.host.checkpoints import load_checkpoint

DEFAULT_CIFAR = shared_data_dir() / "cifar10" / "test.tar.gz"
DATA_DIR = Path("~/.cache/solo-scaca/cam").expanduser()  # generated data: outside the repository
DATASET_NAMES = {"toy": "toy_shapes", "cifar": "cifar_loc"}
# (train per class, val per class, image side) of each dataset, full and --tiny
SIZES = {False: {"toy": (100, 50, 64), "cifar": (400, 100, 64)},
         True: {"toy": (2, 1, 32), "cifar": (2, 1, 32)}}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def prepare_dataset(kind: str, tiny: bool, data_dir: Path, cifar_source: Path) -> Path:
    """Generates (or finds, cached) the dataset ``kind`` (toy | cifar) and returns its root."""
    train, val, size = SIZES[tiny][kind]
    if kind == "toy":
        root = data_dir / f"toy_shapes_{size}px_{train}x{val}"
        return generate_toy_shapes(root, train_per_class=train, val_per_class=val,
                                   image_size=size, seed=0)
    root = data_dir / f"cifar_loc_{size}px_{train}x{val}"
    return generate_localization_set(root, cifar_source, train_per_class=train,
                                     val_per_class=val, canvas_size=size,
                                     min_side=round(size * 3 / 8), max_side=round(size * 3 / 4),
                                     seed=0)


# --------------------------------------------------------------------------------------------
# pictures and tables
# --------------------------------------------------------------------------------------------


def grid_indices(n: int, k: int) -> List[int]:
    """``k`` val images spread evenly over the split (so over its classes)."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def _rect(ax, box, colour: str, style: str = "-") -> None:
    import matplotlib.patches as patches

    x0, y0, x1, y1 = box
    ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor=colour, linewidth=1.5, linestyle=style))


def save_grid(path: Path, images: List[str], gt_boxes: np.ndarray,
              columns: "OrderedDict[str, Dict]", input_size: Optional[int] = None) -> Path:
    """PNG grid: image | each method's CAM (overlay, dashed: its box at its best threshold) |
    ground-truth box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 + len(columns)
    fig, axes = plt.subplots(len(images), ncols, figsize=(1.8 * ncols, 1.8 * len(images)),
                             squeeze=False)
    for r, (img_path, gt) in enumerate(zip(images, gt_boxes)):
        with Image.open(img_path) as im:
            im = im.convert("RGB")
            if input_size:
                im = im.resize((input_size, input_size), Image.BILINEAR)
            img = np.asarray(im)
        axes[r, 0].imshow(img)
        for c, (label, result) in enumerate(columns.items(), start=1):
            axes[r, c].imshow(img)
            axes[r, c].imshow(result["grid_cams"][r].numpy(), cmap="jet", alpha=0.5, vmin=0,
                              vmax=1)
            if result["grid_boxes"][r] is not None:
                _rect(axes[r, c], result["grid_boxes"][r], "white", "--")
        axes[r, -1].imshow(img)
        _rect(axes[r, -1], gt, "lime")
    titles = ["image", *[f"{k} CAM\n(t={v['threshold']:.2f})" for k, v in columns.items()],
              "ground truth"]
    for c, title in enumerate(titles):
        axes[0, c].set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mean_std(values: List[float]) -> Tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: List[Dict]) -> List[Dict]:
    """One row per (dataset, method): mean and std (ddof 1; 0 for one checkpoint)."""
    groups: "OrderedDict[Tuple[str, str], List[Dict]]" = OrderedDict()
    for run in runs:
        groups.setdefault((run["dataset"], run["method"]), []).append(run)
    rows = []
    for (dataset, method), group in groups.items():
        row = {"dataset": dataset, "method": method, "checkpoints": len(group)}
        for key in ("MaxBoxAcc", "threshold", "linear_top1"):
            values = [g[key] for g in group if g[key] != ""]
            if values:
                row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parse_ckpt(value: str) -> Tuple[str, Path]:
    label, sep, path = value.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"--ckpt takes METHOD=PATH, got {value!r}")
    return label, Path(path)


def checkpoints_of_runs(runs_dir: Path) -> List[Tuple[str, Path]]:
    """(method, checkpoint) of every run file (``*.json`` with ``method`` and ``checkpoint``) of
    a folder, such as the accuracy benchmark's ``<out>/<profile>/runs/``, sorted by file name."""
    found = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        run = json.loads(path.read_text())
        if "method" in run and "checkpoint" in run:
            found.append((str(run["method"]), Path(run["checkpoint"])))
    return found


def main(argv: Optional[List[str]] = None) -> Path:
    """Command-line entry point; returns the path of the summary table (``cam.md``)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=_parse_ckpt, action="append", default=[],
                        metavar="METHOD=PATH",
                        help="a checkpoint and its method label; repeat (several per method: "
                             "seeds)")
    parser.add_argument("--from-runs", type=Path, action="append", default=[], metavar="DIR",
                        help="also every checkpoint of a folder of run files (the accuracy "
                             "benchmark's <out>/<profile>/runs/: keys method and checkpoint)")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASET_NAMES),
                        default=list(DATASET_NAMES))
    parser.add_argument("--cifar-source", type=Path, default=DEFAULT_CIFAR,
                        help="CIFAR-10 test images: ImageFolder or its .tar.gz "
                             "(default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="where the datasets are generated (cached; default: %(default)s)")
    parser.add_argument("--head-epochs", type=int, default=100)
    parser.add_argument("--head-lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=None,
                        help="resize the images (and boxes) to this side before the backbone; "
                             "default: the datasets' own 64 px (ResNet-18's ImageNet stem then "
                             "gives a 2x2 layer4 map, the CIFAR stem 9x9)")
    parser.add_argument("--grid-images", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny data and head (CI), in a scratch folder; without --ckpt, tiny "
                             "random-init swav and swav_scaca checkpoints made there")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    for runs_dir in args.from_runs:
        found = checkpoints_of_runs(runs_dir)
        if not found:
            parser.error(f"no run file with a checkpoint in {runs_dir}")
        args.ckpt += found
    scratch = None
    if args.tiny:
        args.head_epochs = min(args.head_epochs, 5)
        args.grid_images = min(args.grid_images, 3)
        args.num_workers = 0
        # tiny data and checkpoints in a scratch folder, so that OUT holds only results
        scratch = Path(tempfile.mkdtemp(prefix="cam-tiny-"))
        if not args.ckpt:
            from benchmarks.tiny_models import make_tiny_checkpoint

            args.ckpt = [(m, make_tiny_checkpoint(scratch / m / "tiny.ckpt", m, seed))
                         for seed, m in enumerate(("swav", "swav_scaca"))]
        if args.data_dir == DATA_DIR:
            args.data_dir = scratch / "data"
    try:
        return _run(parser, args)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The benchmark proper, on parsed arguments."""
    if not args.ckpt:
        parser.error("give at least one --ckpt METHOD=PATH (or --tiny)")
    for _, path in args.ckpt:
        if not path.is_file():
            parser.error(f"checkpoint {path} not found")
    if "cifar" in args.datasets and not args.cifar_source.exists():
        message = (f"CIFAR-10 source {args.cifar_source} not found (unpacked test split or "
                   f"test.tar.gz; --cifar-source)")
        if not args.tiny:
            parser.error(message)
        print(f"[cam] {message}: CIFAR localization set skipped", flush=True)
        args.datasets = [d for d in args.datasets if d != "cifar"]

    roots = {}
    for kind in args.datasets:
        print(f"[cam] preparing {DATASET_NAMES[kind]} under {args.data_dir}", flush=True)
        roots[kind] = prepare_dataset(kind, args.tiny, args.data_dir, args.cifar_source)

    runs: List[Dict] = []
    grids: Dict[str, "OrderedDict[str, Dict]"] = {kind: OrderedDict() for kind in roots}
    grid_info = {}
    for kind, root in roots.items():  # centre baseline: no backbone
        loader, boxes, paths = split_data(root, "val", (0,) * 3, (1,) * 3, args.batch_size, 0,
                                          args.input_size)
        h, w = loader.dataset[0][0].shape[-2:]
        acc, threshold = max_box_acc(center_gaussian_maps(len(boxes), h, w), boxes)
        runs.append({"dataset": DATASET_NAMES[kind], "method": "centre baseline",
                     "checkpoint": "-", "pretrain_method": "-", "backbone": "-",
                     "MaxBoxAcc": 100 * acc, "threshold": threshold, "linear_top1": "",
                     "map": "-"})
        idx = grid_indices(len(boxes), args.grid_images)
        grid_info[kind] = (idx, [paths[i] for i in idx], boxes[idx])

    for label, path in args.ckpt:
        checkpoint = load_checkpoint(path)
        pretrain = read_pretrain_args(path, checkpoint=checkpoint)
        backbone_name = pretrain["backbone"]["name"]
        backbone = load_backbone(path, checkpoint=checkpoint).to(args.device)
        mean, std = normalization(pretrain)
        for kind, root in roots.items():
            print(f"[cam] {label} {path} on {DATASET_NAMES[kind]}", flush=True)
            result = evaluate(backbone, backbone_name, root, mean, std, args.head_epochs,
                              args.head_lr, args.batch_size, args.num_workers, grid_info[kind][0],
                              args.input_size)
            runs.append({"dataset": DATASET_NAMES[kind], "method": label,
                         "checkpoint": str(path), "pretrain_method": pretrain.get("method", "?"),
                         "backbone": backbone_name, "MaxBoxAcc": result["maxboxacc"],
                         "threshold": result["threshold"], "linear_top1": result["top1"],
                         "map": result["map"]})
            grids[kind].setdefault(label, result)  # the first checkpoint of each method

    for kind, columns in grids.items():
        _, images, boxes = grid_info[kind]
        save_grid(args.out / f"cam_grid_{DATASET_NAMES[kind]}.png", images, boxes, columns,
                  args.input_size)

    meta = metadata({
        "device": args.device,
        "input size": f"{args.input_size} px (resized)" if args.input_size else "native",
        "datasets": "; ".join(
            f"{DATASET_NAMES[k]}: {r}, {t} train + {v} val images per class, {s} px"
            for k, r in roots.items() for t, v, s in [SIZES[args.tiny][k]]),
        "linear head": f"Adam, {args.head_epochs} epochs, lr {args.head_lr}, batch "
                       f"{args.batch_size}, standardised frozen pooled features",
    })
    notes = (
        "MaxBoxAcc (%, Choe et al. CVPR 2020, GT-known: the CAM of the true class): for each "
        "threshold t in 0, 0.01, ..., 0.99 the box of the largest 8-connected component of "
        "CAM >= t; accuracy = share of val images whose box has IoU >= 0.5 with the ground-truth "
        "box; the best threshold's accuracy and that threshold. CAM_c(u) = W_c . F(u) on the "
        "backbone's last spatial map (ResNet layer4), upsampled bilinearly to the image and "
        "min-max normalised per image; W is a linear head trained on the frozen pooled features "
        "of the dataset's train split (linear_top1: its val top-1, %); map: the h x w of F. "
        "Mean and std (ddof 1) "
        "over the checkpoints of a method. 'centre baseline': a centred Gaussian as every CAM "
        "(Choe et al.'s centre baseline), no backbone. toy_shapes: generated shapes on cluttered "
        "backgrounds; cifar_loc: CIFAR-10 test images pasted at a random scale and place on "
        "collages of crops of other classes' images. Grids: cam_grid_<dataset>.png (dashed: "
        "the box at the checkpoint's best threshold; green: ground truth)."
    )
    columns = ["dataset", "method", "checkpoints", "MaxBoxAcc_mean", "MaxBoxAcc_std",
               "threshold_mean", "threshold_std", "linear_top1_mean", "linear_top1_std"]
    write_table("cam_runs", "CAM localization per checkpoint", runs,
                ["dataset", "method", "checkpoint", "pretrain_method", "backbone", "map",
                 "MaxBoxAcc", "threshold", "linear_top1"], meta, notes, args.out)
    summary = write_table("cam", "CAM localization (MaxBoxAcc)", summarize(runs), columns, meta,
                          notes, args.out)
    print(summary.read_text())
    return summary


if __name__ == "__main__":
    main()
