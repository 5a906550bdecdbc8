"""Toy Shapes: a small, deterministic 10-class image dataset generated on the fly.

The project ships this generator instead of image files. The data serves the CPU demo of
self-supervised pretraining and, through ``boxes.csv``, CAM localization benchmarks.

Each image holds one object of its class (a plain shape) on a cluttered background (smooth
colour noise, small blobs, thin lines). Position, scale, colours and background are drawn
independently of the class, so only the shape identifies it. Each image is drawn with its
own generator, seeded by ``(seed, split, label, index)``: the same seed gives byte-identical
files, and an image does not change when the counts of other splits or classes change.

Layout written under ``root``::

    train/<class_name>/<nnnn>.png   RGB PNG, image_size x image_size (ImageFolder layout)
    val/<class_name>/<nnnn>.png
    boxes.csv                       split,path,class_name,label,x0,y0,x1,y1
    DONE                            written last; holds the generation parameters
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from solo_scaca.data.layout import CSV_HEADER, clear, dataset_parser, finished, write_csv

# The digit prefix makes ImageFolder's alphabetical label order equal to the list order.
CLASS_NAMES = (
    "0_circle",
    "1_square",
    "2_triangle",
    "3_cross",
    "4_ring",
    "5_star",
    "6_diamond",
    "7_hbar",
    "8_half_disc",
    "9_hollow_square",
)
SPLITS = ("train", "val")
MIN_IMAGE_SIZE = 32
# Object side as a fraction of the image side.
MIN_SCALE, MAX_SCALE = 0.3, 0.6
# Per-channel colour ranges: the background of an image lies in one band, its object in the
# other, so every object pixel differs from every background pixel by >= 60 in each channel.
# Which band the background takes is drawn per image, independently of the class.
DARK_BAND, LIGHT_BAND = (0, 100), (160, 255)

Shape = Callable[[ImageDraw.ImageDraw, int, int, int], None]


def _circle(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    d.ellipse([x, y, x + s - 1, y + s - 1], fill=255)


def _square(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    d.rectangle([x, y, x + s - 1, y + s - 1], fill=255)


def _triangle(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    d.polygon([(x, y + s - 1), (x + s - 1, y + s - 1), (x + (s - 1) / 2, y)], fill=255)


def _cross(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    t = max(3, s // 3)
    a = x + (s - t) // 2
    b = y + (s - t) // 2
    d.rectangle([a, y, a + t - 1, y + s - 1], fill=255)
    d.rectangle([x, b, x + s - 1, b + t - 1], fill=255)


def _ring(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    t = max(2, s // 5)
    d.ellipse([x, y, x + s - 1, y + s - 1], fill=255)
    d.ellipse([x + t, y + t, x + s - 1 - t, y + s - 1 - t], fill=0)


def _star(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    c, r = (s - 1) / 2, (s - 1) / 2
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    d.polygon([(x + c + q * np.cos(a), y + c + q * np.sin(a)) for a, q in zip(angles, radii)],
              fill=255)


def _diamond(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    c = (s - 1) / 2
    d.polygon([(x + c, y), (x + s - 1, y + c), (x + c, y + s - 1), (x, y + c)], fill=255)


def _hbar(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    t = max(3, s // 3)
    b = y + (s - t) // 2
    d.rectangle([x, b, x + s - 1, b + t - 1], fill=255)


def _half_disc(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    # Upper half of a disc of diameter s, flat side down, centred vertically in the square.
    top = y + s // 4
    d.pieslice([x, top, x + s - 1, top + s - 1], start=180, end=360, fill=255)


def _hollow_square(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    t = max(2, s // 6)
    d.rectangle([x, y, x + s - 1, y + s - 1], fill=255)
    d.rectangle([x + t, y + t, x + s - 1 - t, y + s - 1 - t], fill=0)


SHAPES: dict[str, Shape] = dict(zip(CLASS_NAMES, (
    _circle, _square, _triangle, _cross, _ring, _star, _diamond, _hbar, _half_disc,
    _hollow_square,
)))


def _colours(rng: np.random.Generator, band: tuple[int, int], n: int) -> np.ndarray:
    """Draws ``n`` random RGB colours with every channel inside ``band`` (n x 3, uint8)."""
    return rng.integers(band[0], band[1] + 1, size=(n, 3), dtype=np.uint8)


def _draw_background(rng: np.random.Generator, size: int, band: tuple[int, int],
                     clutter: bool = True) -> Image.Image:
    """Smooth colour noise, with small blobs and thin lines on top where ``clutter``, all inside
    ``band``."""
    cells = int(rng.integers(2, 7))
    grid = _colours(rng, band, cells * cells).reshape(cells, cells, 3)
    # Bilinear interpolation mixes band colours, so the result stays inside the band.
    img = Image.fromarray(grid, "RGB").resize((size, size), Image.BILINEAR)
    if not clutter:
        return img
    draw = ImageDraw.Draw(img)
    n_blobs = int(rng.integers(4, 10))
    for colour in _colours(rng, band, n_blobs):
        w, h = rng.integers(max(2, size // 16), max(3, size // 6), size=2)
        x, y = rng.integers(-size // 16, size, size=2)
        box = [int(x), int(y), int(x + w), int(y + h)]
        fill = tuple(int(c) for c in colour)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    n_lines = int(rng.integers(0, 5))
    for colour in _colours(rng, band, n_lines):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, size=4))
        draw.line([x0, y0, x1, y1], fill=tuple(int(c) for c in colour),
                  width=int(rng.integers(1, 3)))
    return img


def render_image(class_name: str, rng: np.random.Generator, image_size: int,
                 clutter: bool = True) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Draws one image of ``class_name`` and returns it with the object's tight box.

    The box ``(x0, y0, x1, y1)`` is in pixels with x1/y1 exclusive, computed from the drawn
    object mask (PIL draws without anti-aliasing, so the mask is exactly the object).
    """
    if rng.random() < 0.5:
        bg_band, obj_band = DARK_BAND, LIGHT_BAND
    else:
        bg_band, obj_band = LIGHT_BAND, DARK_BAND
    img = _draw_background(rng, image_size, bg_band, clutter)
    side = int(rng.integers(round(MIN_SCALE * image_size), round(MAX_SCALE * image_size) + 1))
    x, y = (int(v) for v in rng.integers(0, image_size - side + 1, size=2))
    mask = Image.new("L", (image_size, image_size), 0)
    SHAPES[class_name](ImageDraw.Draw(mask), x, y, side)
    colour = tuple(int(c) for c in _colours(rng, obj_band, 1)[0])
    img.paste(colour, mask=mask)
    ys, xs = np.nonzero(np.asarray(mask))
    return img, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _check_args(train_per_class: int, val_per_class: int, image_size: int, seed: int) -> None:
    """Raises ValueError with a clear message for arguments the generator cannot honour."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    if train_per_class < 1:
        raise ValueError(f"train_per_class must be >= 1, got {train_per_class}")
    if val_per_class < 1:
        raise ValueError(f"val_per_class must be >= 1, got {val_per_class}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def generate_toy_shapes(root: str | Path, train_per_class: int = 50,
                        val_per_class: int = 20, image_size: int = 64, seed: int = 0,
                        overwrite: bool = False, clutter: bool = True) -> Path:
    """Writes the Toy Shapes dataset under ``root`` and returns ``root`` as a Path.

    ``clutter=False``: plain smooth backgrounds, without the blobs and lines (the demo's data:
    at a CPU budget, shapes are then what self-supervision can learn).

    If ``root/DONE`` exists and ``overwrite`` is False, returns at once (repeated demo runs
    stay cheap); a DONE written with other parameters raises ValueError rather than hand back
    data of the wrong size or count. A run without DONE (interrupted) is cleared and redone.
    Only ``train/``, ``val/``, ``boxes.csv`` and ``DONE`` are removed, never other files.
    """
    _check_args(train_per_class, val_per_class, image_size, seed)
    root = Path(root)
    params = json.dumps({"train_per_class": train_per_class, "val_per_class": val_per_class,
                         "image_size": image_size, "seed": seed,
                         **({} if clutter else {"clutter": False})}, sort_keys=True) + "\n"
    if finished(root, params, overwrite, what="dataset"):
        return root
    clear(root, SPLITS, ("boxes.csv",))

    counts = {"train": train_per_class, "val": val_per_class}
    rows = []
    for split_id, split in enumerate(SPLITS):
        for label, class_name in enumerate(CLASS_NAMES):
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for index in range(counts[split]):
                rng = np.random.default_rng((seed, split_id, label, index))
                img, box = render_image(class_name, rng, image_size, clutter)
                rel = f"{split}/{class_name}/{index:04d}.png"
                img.save(root / rel, format="PNG")
                rows.append((split, rel, class_name, label, *box))

    write_csv(root / "boxes.csv", CSV_HEADER, rows)
    (root / "DONE").write_text(params)
    return root


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: ``python -m solo_scaca.data.toy_shapes --out DIR``."""
    parser = dataset_parser(__doc__.splitlines()[0], 50, 20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--plain", action="store_true",
                        help="plain backgrounds, without blobs and lines")
    args = parser.parse_args(argv)
    try:
        root = generate_toy_shapes(args.out, args.train_per_class, args.val_per_class,
                                   args.image_size, args.seed, args.overwrite, not args.plain)
    except ValueError as e:
        parser.error(str(e))
    n = len(CLASS_NAMES)
    print(f"{root}: {n} classes, {n * args.train_per_class} train + "
          f"{n * args.val_per_class} val images")


if __name__ == "__main__":
    main()
