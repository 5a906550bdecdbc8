"""What the generated box datasets share (toy shapes, the collage set, cifar10-clutter): the
image files read, ``boxes.csv``, the ``DONE`` marker that caches a finished set, and the
command-line options. Plain Python: the data commands import neither torch nor the host."""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from typing import Iterable, Sequence

# the image files every reader of the plugin takes: torchvision's ImageFolder's (IMG_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
CSV_HEADER = ("split", "path", "class_name", "label", "x0", "y0", "x1", "y1")


def is_image(name: str | Path) -> bool:
    """Whether a file name has one of ``IMAGE_EXTENSIONS`` (any case)."""
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def finished(root: Path, params: str, overwrite: bool, what: str = "set",
             hint: str = "pass overwrite=True") -> bool:
    """True when ``root`` holds a finished set (``DONE``) generated with ``params`` (and not
    ``overwrite``); a finished set of other ``params`` raises ValueError naming ``hint``."""
    done = root / "DONE"
    if not done.exists() or overwrite:
        return False
    if done.read_text() != params:
        raise ValueError(f"{root} holds a {what} generated with {done.read_text().strip()}, "
                         f"not {params.strip()}; {hint} to regenerate it")
    return True


def clear(root: Path, splits: Sequence[str], files: Sequence[str]) -> None:
    """Removes what a generator writes under ``root`` (the ``splits`` folders, ``files`` and
    ``DONE``), never anything else."""
    for split in splits:
        shutil.rmtree(root / split, ignore_errors=True)
    for name in (*files, "DONE"):
        (root / name).unlink(missing_ok=True)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def read_boxes(root: str | Path) -> list[dict]:
    """Parses ``root/boxes.csv`` into dicts, with ``label`` and box coordinates as ints."""
    with open(Path(root) / "boxes.csv", newline="") as f:
        return [{k: (v if k in ("split", "path", "class_name") else int(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def boxes_in_crop(files: Sequence[Path], size: int) -> list[tuple] | None:
    """The ``boxes.csv`` boxes of ``files`` (a folder of a generated box dataset: ``boxes.csv``
    in the folder or one of its two parents), moved into the ``size`` x ``size`` frame that
    ``Resize(size)`` then ``CenterCrop(size)`` makes of each image. None when a file has no
    box there (a folder of another kind)."""
    from PIL import Image

    if not files:
        return None
    folder = Path(files[0]).parent
    root = next((d for d in (folder, *list(folder.parents)[:3]) if (d / "boxes.csv").is_file()),
                None)
    if root is None:
        return None
    boxes = {(root / r["path"]).resolve(): (r["x0"], r["y0"], r["x1"], r["y1"])
             for r in read_boxes(root)}
    moved = []
    for path in files:
        box = boxes.get(Path(path).resolve())
        if box is None:
            return None
        with Image.open(path) as image:
            width, height = image.size
        scale = size / min(width, height)
        dx, dy = (width * scale - size) / 2, (height * scale - size) / 2
        x0, y0, x1, y1 = (v * scale for v in box)
        moved.append((min(max(x0 - dx, 0), size), min(max(y0 - dy, 0), size),
                      min(max(x1 - dx, 0), size), min(max(y1 - dy, 0), size)))
    return moved


def dataset_parser(description: str, train_per_class: int,
                   val_per_class: int) -> argparse.ArgumentParser:
    """The options every generated box dataset takes: where, how many per class, the seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, help="dataset root folder")
    parser.add_argument("--train-per-class", type=int, default=train_per_class)
    parser.add_argument("--val-per-class", type=int, default=val_per_class)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if the folder holds a finished dataset")
    return parser
