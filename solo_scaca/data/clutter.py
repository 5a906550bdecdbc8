"""``cifar10-clutter``: CIFAR-10 objects on cluttered canvases, a bench where looking somewhere
can pay.

CIFAR-10 objects fill their 32 px frame, so global pooling already looks at the object and a
spatial mask has nothing to look away from. Here each image is scaled to s x s (s drawn in
[14, 22] px by default) and pasted at a random position of a 32 px canvas whose background is a
mosaic of patches of images of *other* classes of the same split (the collage of
``solo_scaca.data.collage``). The training split's objects come from CIFAR-10's
training split, the test split's from its test split, so the test objects are unseen.

Per class, the source's files sorted by name give the objects (the first ``train_per_class`` of
the training split, the first ``test_per_class`` of the test split); each canvas is drawn with
its own generator seeded by ``(seed, split, label, index)``: the same seed and source give
byte-identical files. Layout under ``root`` (the toy shapes' ``boxes.csv`` format)::

    train/<class_name>/<nnnn>.png   RGB PNG, 32 x 32 (ImageFolder layout)
    test/<class_name>/<nnnn>.png
    boxes.csv                       split,path,class_name,label,x0,y0,x1,y1 (x1, y1 exclusive)
    sources.csv                     path,source (the pasted object's file in the source)
    DONE                            written last; holds the generation parameters
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from solo_scaca.data.collage import Opener, read_source, write_collages
from solo_scaca.data.layout import clear, finished

SPLITS = ("train", "test")
CANVAS_SIZE = 32
MIN_SIDE, MAX_SIDE = 14, 22


def source_of(cifar: Path, split: str) -> Path:
    """``cifar/<split>`` if it is a folder, else ``cifar/<split>.tar.gz`` (the shared data's
    layout)."""
    for candidate in (cifar / split, cifar / f"{split}.tar.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{cifar} has neither {split}/ nor {split}.tar.gz: pass --cifar the "
                            "folder of CIFAR-10's train and test splits (folders or tarballs)")


def _objects(source: Dict[str, List[Tuple[str, Opener]]], per_class: Optional[int],
             where: Path) -> Dict[str, List[Tuple[str, Opener]]]:
    """The first ``per_class`` files of every class (all with None); too few is an error."""
    short = {k: len(v) for k, v in source.items() if per_class is not None and len(v) < per_class}
    if short:
        raise ValueError(f"{where}: classes with fewer than {per_class} images: {short}")
    return {k: v[:per_class] for k, v in source.items()}


def generate_clutter(root: str | Path, cifar: str | Path, train_per_class: Optional[int] = 500,
                     test_per_class: Optional[int] = 1000, seed: int = 0,
                     canvas_size: int = CANVAS_SIZE, min_side: int = MIN_SIDE,
                     max_side: int = MAX_SIDE, overwrite: bool = False) -> Path:
    """Writes the clutter set under ``root`` and returns ``root``.

    ``None`` per class takes every image of that split. A finished set (``DONE``) with the same
    parameters is returned at once; one with other parameters raises ValueError unless
    ``overwrite``; an unfinished one is cleared and redone. Only the files this function writes
    are ever removed.
    """
    for name, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 (or None for all), got {value}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 1 <= min_side <= max_side <= canvas_size:
        raise ValueError(f"need 1 <= min_side <= max_side <= canvas_size, got {min_side}, "
                         f"{max_side}, {canvas_size}")
    root, cifar = Path(root), Path(cifar)
    sources = {split: source_of(cifar, split) for split in SPLITS}
    params = json.dumps({"cifar": str(cifar.resolve()), "train_per_class": train_per_class,
                         "test_per_class": test_per_class, "seed": seed,
                         "canvas_size": canvas_size, "min_side": min_side,
                         "max_side": max_side}, sort_keys=True) + "\n"
    if finished(root, params, overwrite, hint="pass --overwrite"):
        return root
    clear(root, SPLITS, ("boxes.csv", "sources.csv"))
    counts = {"train": train_per_class, "test": test_per_class}
    objects = [(split, _objects(read_source(sources[split]), counts[split], sources[split]))
               for split in SPLITS]
    write_collages(root, objects, seed, canvas_size, min_side, max_side)
    (root / "DONE").write_text(params)
    return root


def _per_class(value: str) -> Optional[int]:
    return None if value.lower() in ("all", "none") else int(value)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``solo-scaca-clutter-data --cifar DIR --out DIR [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--cifar", required=True, type=Path,
                        help="CIFAR-10's folder: train/ and test/ ImageFolders, or "
                             "train.tar.gz and test.tar.gz of them")
    parser.add_argument("--out", required=True, type=Path, help="dataset root folder")
    parser.add_argument("--train-per-class", type=_per_class, default=500,
                        help="objects per class in train/ ('all': 5000)")
    parser.add_argument("--test-per-class", type=_per_class, default=1000,
                        help="objects per class in test/ ('all': 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-side", type=int, default=MIN_SIDE)
    parser.add_argument("--max-side", type=int, default=MAX_SIDE)
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if the folder holds a finished set")
    args = parser.parse_args(argv)
    try:
        root = generate_clutter(args.out, args.cifar, args.train_per_class, args.test_per_class,
                                args.seed, CANVAS_SIZE, args.min_side, args.max_side,
                                args.overwrite)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    counts = {s: sum(1 for _ in (root / s).rglob("*.png")) for s in SPLITS}
    print(f"{root}: {counts['train']} train + {counts['test']} test images, boxes in "
          f"{root / 'boxes.csv'}")


if __name__ == "__main__":
    main()
