"""A localization set from real images: each image pasted on a cluttered collage of others.

Each object image (e.g. a 32 px CIFAR-10 test image) is resized to a random side (default
24-48 px) and pasted at a random position on a larger canvas (default 64 px), whose background
is a collage of random crops of images of OTHER classes from the same split: a grid of tiles
covering the canvas, then a few more crops at random places. The object's box is the pasted
square. Classes come from an ImageFolder source (a folder, or a ``.tar.gz`` of one, such as the
project's ``shared/data/cifar10/test.tar.gz``); the label of a class is its index in the sorted
class names, as torchvision's ImageFolder numbers them.

Per class, the source's files sorted by name give the split's objects: the first
``val_per_class`` to ``val``, the next ``train_per_class`` to ``train``; so train and val never
share a source image, and val does not change with the train count. Each canvas is drawn with its
own generator seeded by ``(seed, split, label, index)``: the same seed and source give
byte-identical files.

Layout written under ``root`` (the same as ``toy_shapes``: ``layout.read_boxes`` reads both)::

    train/<class_name>/<nnnn>.png   RGB PNG, canvas_size x canvas_size (ImageFolder layout)
    val/<class_name>/<nnnn>.png
    boxes.csv                       split,path,class_name,label,x0,y0,x1,y1
    sources.csv                     path,source (the pasted object's file in the source)
    DONE                            written last; holds the generation parameters
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from solo_scaca.data.layout import (CSV_HEADER, clear, dataset_parser, finished, is_image,
                                    write_csv)

SPLITS = ("train", "val")
# A background crop covers this fraction range of the source image's side.
CROP_FRACTION = (0.4, 1.0)

Opener = Callable[[], Image.Image]
Source = Dict[str, List[Tuple[str, Opener]]]  # class name -> sorted (file name, opener)


def _open_file(path: Path) -> Opener:
    def opener() -> Image.Image:
        with Image.open(path) as img:
            return img.convert("RGB")
    return opener


def _open_bytes(data: bytes) -> Opener:
    def opener() -> Image.Image:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    return opener


def read_source(source: str | Path) -> Source:
    """The images of an ImageFolder source, per class, sorted by file name.

    ``source`` is a folder of class folders, or a ``.tar``/``.tar.gz`` archive holding one (at
    any depth: the class of a file is its parent folder's name). Archives are read in memory.
    """
    source = Path(source)
    classes: Dict[str, List[Tuple[str, Opener]]] = {}
    if source.is_dir():
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p.name))
            classes[folder.name] = [(p.name, _open_file(p)) for p in files]
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source, "r|*") as tar:  # one streaming pass
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 2 and is_image(parts[-1]):
                    data = tar.extractfile(member).read()
                    classes.setdefault(parts[-2], []).append((parts[-1], _open_bytes(data)))
        classes = {k: sorted(v, key=lambda e: e[0]) for k, v in sorted(classes.items())}
    else:
        raise FileNotFoundError(f"{source} is neither an ImageFolder directory nor a tar archive")
    classes = {k: v for k, v in classes.items() if v}
    if len(classes) < 2:
        raise ValueError(f"{source} must hold images of at least 2 classes (the background is "
                         f"made of other classes), found {sorted(classes)}")
    return classes


def _check_args(train_per_class: int, val_per_class: int, canvas_size: int, min_side: int,
                max_side: int, seed: int) -> None:
    """Raises ValueError with a clear message for arguments the generator cannot honour."""
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError(f"need train_per_class >= 1 and val_per_class >= 1, got "
                         f"{train_per_class} and {val_per_class}")
    if canvas_size < 8:
        raise ValueError(f"canvas_size must be >= 8, got {canvas_size}")
    if not 1 <= min_side <= max_side <= canvas_size:
        raise ValueError(f"need 1 <= min_side <= max_side <= canvas_size, got "
                         f"{min_side}, {max_side}, {canvas_size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def _crop(rng: np.random.Generator, img: Image.Image, width: int, height: int) -> Image.Image:
    """A random crop of ``img`` (CROP_FRACTION of its sides) resized to width x height."""
    w, h = img.size
    cw = max(1, int(round(w * rng.uniform(*CROP_FRACTION))))
    ch = max(1, int(round(h * rng.uniform(*CROP_FRACTION))))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch)).resize((width, height), Image.BILINEAR)


def _collage(rng: np.random.Generator, pool: List[Opener], size: int) -> Image.Image:
    """A size x size background: a k x k grid of crops (k in 2..3), then 3-6 crops on top."""
    canvas = Image.new("RGB", (size, size))
    k = int(rng.integers(2, 4))
    edges = np.linspace(0, size, k + 1).round().astype(int)
    for i in range(k):
        for j in range(k):
            x0, x1, y0, y1 = edges[j], edges[j + 1], edges[i], edges[i + 1]
            tile = _crop(rng, pool[int(rng.integers(len(pool)))](), x1 - x0, y1 - y0)
            canvas.paste(tile, (int(x0), int(y0)))
    for _ in range(int(rng.integers(3, 7))):
        w, h = (int(v) for v in rng.integers(max(2, size // 8), max(3, size // 3) + 1, size=2))
        patch = _crop(rng, pool[int(rng.integers(len(pool)))](), w, h)
        x, y = (int(v) for v in rng.integers(-size // 8, size, size=2))
        canvas.paste(patch, (x, y))
    return canvas


def compose_image(rng: np.random.Generator, obj: Image.Image, background_pool: List[Opener],
                  canvas_size: int, min_side: int,
                  max_side: int) -> Tuple[Image.Image, Tuple[int, int, int, int]]:
    """``obj`` resized to a random side and pasted at a random place on a collage of crops of
    ``background_pool``; returns the canvas and the pasted square (x0, y0, x1, y1), x1/y1
    exclusive."""
    canvas = _collage(rng, background_pool, canvas_size)
    side = int(rng.integers(min_side, max_side + 1))
    x, y = (int(v) for v in rng.integers(0, canvas_size - side + 1, size=2))
    canvas.paste(obj.resize((side, side), Image.BILINEAR), (x, y))
    return canvas, (x, y, x + side, y + side)


def split_sources(source: Source, train_per_class: int,
                  val_per_class: int) -> Dict[str, Dict[str, List[Tuple[str, Opener]]]]:
    """The object images of each split and class: per class, the first ``val_per_class``
    sorted files to ``val``, the next ``train_per_class`` to ``train``."""
    short = {k: len(v) for k, v in source.items() if len(v) < train_per_class + val_per_class}
    if short:
        raise ValueError(f"classes with fewer than train_per_class + val_per_class = "
                         f"{train_per_class + val_per_class} images: {short}")
    return {"val": {k: v[:val_per_class] for k, v in source.items()},
            "train": {k: v[val_per_class:val_per_class + train_per_class]
                      for k, v in source.items()}}


def write_collages(root: Path, splits: Sequence[Tuple[str, Source]], seed: int,
                   canvas_size: int, min_side: int, max_side: int) -> None:
    """Every object of every split and class composed on a collage of the split's other classes
    (``compose_image``), written under ``root`` with ``boxes.csv`` and ``sources.csv``. The
    canvas of (split, label, index) is drawn with its own generator seeded by
    ``(seed, the split's position in splits, label, index)``."""
    rows, provenance = [], []
    for split_id, (split, objects) in enumerate(splits):
        class_names = sorted(objects)
        for label, class_name in enumerate(class_names):
            folder = root / split / class_name
            folder.mkdir(parents=True)
            pool = [opener for other in class_names if other != class_name
                    for _, opener in objects[other]]
            for index, (file_name, opener) in enumerate(objects[class_name]):
                rng = np.random.default_rng((seed, split_id, label, index))
                img, box = compose_image(rng, opener(), pool, canvas_size, min_side, max_side)
                rel = f"{split}/{class_name}/{index:04d}.png"
                img.save(root / rel, format="PNG")
                rows.append((split, rel, class_name, label, *box))
                provenance.append((rel, f"{class_name}/{file_name}"))
    write_csv(root / "boxes.csv", CSV_HEADER, rows)
    write_csv(root / "sources.csv", ("path", "source"), provenance)


def generate_localization_set(root: str | Path, source: str | Path, train_per_class: int = 400,
                              val_per_class: int = 100, canvas_size: int = 64,
                              min_side: int = 24, max_side: int = 48, seed: int = 0,
                              overwrite: bool = False) -> Path:
    """Writes the localization set under ``root`` and returns ``root`` as a Path.

    Caching as ``toy_shapes.generate_toy_shapes``: a finished set (``DONE``) with the same
    parameters is returned at once, one with other parameters raises ValueError unless
    ``overwrite``; an unfinished one is cleared and redone. Only the files this function writes
    are ever removed.
    """
    _check_args(train_per_class, val_per_class, canvas_size, min_side, max_side, seed)
    root = Path(root)
    params = json.dumps({"source": str(Path(source).resolve()), "train_per_class": train_per_class,
                         "val_per_class": val_per_class, "canvas_size": canvas_size,
                         "min_side": min_side, "max_side": max_side, "seed": seed},
                        sort_keys=True) + "\n"
    if finished(root, params, overwrite):
        return root
    splits = split_sources(read_source(source), train_per_class, val_per_class)
    clear(root, SPLITS, ("boxes.csv", "sources.csv"))
    write_collages(root, [(split, splits[split]) for split in SPLITS], seed, canvas_size,
                   min_side, max_side)
    (root / "DONE").write_text(params)
    return root


def main(argv: list[str] | None = None) -> None:
    """``python3 -m solo_scaca.data.collage --source SRC --out DIR``."""
    parser = dataset_parser(__doc__.splitlines()[0], 400, 100)
    parser.add_argument("--source", required=True,
                        help="ImageFolder directory or .tar.gz of one (e.g. cifar10/test.tar.gz)")
    parser.add_argument("--canvas-size", type=int, default=64)
    parser.add_argument("--min-side", type=int, default=24)
    parser.add_argument("--max-side", type=int, default=48)
    args = parser.parse_args(argv)
    try:
        root = generate_localization_set(
            args.out, args.source, args.train_per_class, args.val_per_class, args.canvas_size,
            args.min_side, args.max_side, args.seed, args.overwrite)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"{root}: {args.train_per_class} train + {args.val_per_class} val images per class")


if __name__ == "__main__":
    main()
