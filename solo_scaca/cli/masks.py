"""``solo-scaca-masks``: what a ``*_scaca`` checkpoint attends to. Rows of (image, the partner its
own pairing chose from the batch, the mask upsampled over the image). For a ``*_lewel``
checkpoint: rows of (image, its M alignment maps side by side)."""

import argparse
from collections import defaultdict
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms

from solo_scaca.addon.lewel import lewel_maps
from solo_scaca.addon.mechanism_metrics import mask_entropy, mask_peak
from solo_scaca.data.layout import IMAGE_EXTENSIONS, boxes_in_crop, is_image
from solo_scaca.evaluation.box_metrics import border_share, mask_in_box
from solo_scaca.evaluation.mask_view import batch_masks, load_method
from solo_scaca.host.checkpoints import add_trust_option
from solo_scaca.registration import LEWEL_METHODS

SCALE = 3.0  # colour scale of the mask x HW: 0 (blue) to 3x uniform (red); uniform is 1
BOX_NOTE = "; dashed: the object's box"


def image_files(root: Path, count: int) -> List[Path]:
    """Up to ``count`` images of ``root``, taken in turn from each sub-folder (class), so that
    a batch mixes classes as a shuffled training batch does."""
    groups = defaultdict(list)
    for path in sorted(root.rglob("*")):
        if is_image(path.name):
            groups[path.parent].append(path)
    if not groups:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    files, queues = [], [list(v) for _, v in sorted(groups.items())]
    while len(files) < count and any(queues):
        for queue in queues:
            if queue and len(files) < count:
                files.append(queue.pop(0))
    return files


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, title: str) -> Path:
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def _outline(ax, box: Optional[tuple]) -> None:
    """The object's box (x0, y0, x1, y1 in pixels) over a mask or map, where the set has one."""
    if box is not None:
        from matplotlib.patches import Rectangle

        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor="white", linewidth=1.0, linestyle="--"))


def draw(images: torch.Tensor, partners: torch.Tensor, masks: torch.Tensor, rows: int,
         out: Path, title: str, boxes: Optional[List[tuple]] = None) -> Path:
    plt = _pyplot()

    size = images.shape[-2:]
    # in units of the uniform mask, on one fixed scale: a near-uniform mask looks flat
    relative = masks * masks[0].numel()
    up = F.interpolate(relative[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows + 0.4), squeeze=False)
    for r in range(rows):
        j = int(partners[r])
        mask = masks[r : r + 1]
        for ax, picture, label in (
            (axes[r, 0], images[r], f"image {r}"),
            (axes[r, 1], images[j], f"partner {j}"),
            (axes[r, 2], images[r], f"mask: entropy {mask_entropy(mask):.2f}, "
                                    f"peak {mask_peak(mask):.1f}"),
        ):
            ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(label, fontsize=7)
            ax.axis("off")
        axes[r, 2].imshow(up[r].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=SCALE)
        _outline(axes[r, 2], boxes[r] if boxes else None)
    return _save(fig, out, title)


def draw_maps(images: torch.Tensor, maps: torch.Tensor, rows: int, out: Path,
              title: str, boxes: Optional[List[tuple]] = None) -> Path:
    """A ``*_lewel`` checkpoint's alignment maps (B x M x H x W): one row per image, the image
    then its M maps over it, on the masks' colour scale."""
    plt = _pyplot()

    relative = maps * maps[0, 0].numel()
    up = F.interpolate(relative, size=images.shape[-2:], mode="bilinear", align_corners=False)
    cols = 1 + maps.size(1)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows + 0.4), squeeze=False)
    for r in range(rows):
        picture = images[r].permute(1, 2, 0).clamp(0, 1).numpy()
        for c, ax in enumerate(axes[r]):
            ax.imshow(picture)
            ax.axis("off")
            if c == 0:
                ax.set_title(f"image {r}", fontsize=7)
                continue
            one = maps[r, c - 1 : c]
            ax.imshow(up[r, c - 1].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=SCALE)
            _outline(ax, boxes[r] if boxes else None)
            ax.set_title(f"map {c - 1}: entropy {mask_entropy(one):.2f}, "
                         f"peak {mask_peak(one):.1f}", fontsize=7)
    return _save(fig, out, title)


def box_summary(masks: torch.Tensor, boxes: List[tuple], size: int) -> str:
    """Where masks (N x H x W) or alignment maps (N x M x H x W) sit against the objects' boxes:
    mask-in-box (1 = uniform, above 1 on the object) and border share (1 = uniform)."""
    per_map = masks[:, None] if masks.dim() == 3 else masks
    inside = torch.stack([mask_in_box(per_map[:, k], boxes, size).mean()
                          for k in range(per_map.size(1))])
    text = f"mask-in-box {inside.mean():.2f}"
    if per_map.size(1) > 1:
        text += f" (mean of {per_map.size(1)} maps; the map most on the object {inside.max():.2f})"
    if min(masks.shape[-2:]) >= 3:
        text += f", border share {border_share(per_map.flatten(0, 1)).mean():.2f}"
    return f"{text} over {len(boxes)} images with boxes (1 = uniform, above 1 on the object)"


def main(argv: Optional[List[str]] = None) -> Optional[str]:
    """Command-line entry point; returns the box summary it printed (None without boxes)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", required=True,
                        help="a *_scaca pretraining checkpoint (swav_scaca, byol_scaca, ...) "
                             "or a *_lewel one (its alignment maps)")
    parser.add_argument("--images", required=True, type=Path,
                        help="a folder of images (an ImageFolder: classes are interleaved)")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--n", type=int, default=8, help="rows to draw")
    parser.add_argument("--batch", type=int, default=64,
                        help="images the partners are chosen from (a training batch)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="default: the checkpoint's crop size")
    parser.add_argument("--seed", type=int, default=0)
    add_trust_option(parser)
    args = parser.parse_args(argv)
    if args.n < 1 or args.batch < max(2, args.n):
        parser.error(f"--n={args.n} and --batch={args.batch}: need 1 <= n <= batch, batch >= 2")

    model = load_method(args.ckpt, args.trust_checkpoint)  # reads the checkpoint (once)
    cfg = model.cfg  # the pretraining config, the method's defaults filled in
    size = args.image_size or cfg.augmentations[0].crop_size
    resize = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                 transforms.ToTensor()])
    files = image_files(args.images, args.batch)
    if len(files) < 2:
        parser.error(f"{args.images} has {len(files)} image: at least 2 are needed to pair")
    images = torch.stack([resize(Image.open(f).convert("RGB")) for f in files])
    boxes = boxes_in_crop(files, size)  # where the folder has a boxes.csv (generated sets)
    normalize = transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    if cfg.method in LEWEL_METHODS:  # no partners: the image's own alignment maps
        maps = lewel_maps(model, normalize(images))
        rows = min(args.n, len(files))
        title = (f"{Path(args.ckpt).name}\n{cfg.method}: {maps.size(1)} alignment maps, "
                 f"mean entropy {mask_entropy(maps.flatten(0, 1)):.3f}; colours: map x HW "
                 f"from 0 to {SCALE:g} (uniform = 1){BOX_NOTE if boxes else ''}")
        out = draw_maps(images, maps, rows, args.out, title, boxes)
        print(f"alignment maps of {rows} images -> {out}")
        return _print_boxes(maps, boxes, size)
    result = batch_masks(model, normalize(images), args.seed)
    kwargs = cfg.method_kwargs
    title = (f"{Path(args.ckpt).name}\nca_pairing={kwargs.ca_pairing}, "
             f"ca_mask={kwargs.ca_mask}, ca_keys={kwargs.ca_keys}, "
             f"ca_response={kwargs.ca_response}\nbatch of {len(files)}, "
             f"mean entropy {mask_entropy(result.masks):.3f}; colours: mask x HW from 0 to "
             f"{SCALE:g} (uniform = 1){BOX_NOTE if boxes else ''}")
    out = draw(images, result.partners, result.masks, min(args.n, len(files)), args.out, title,
               boxes)
    print(f"masks of {min(args.n, len(files))} images -> {out}")
    return _print_boxes(result.masks, boxes, size)


def _print_boxes(masks: torch.Tensor, boxes: Optional[List[tuple]], size: int) -> Optional[str]:
    summary = None if boxes is None else box_summary(masks, boxes, size)
    if summary:
        print(summary)
    return summary


if __name__ == "__main__":
    main()
