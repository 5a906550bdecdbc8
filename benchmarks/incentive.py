"""Does a CA objective prefer the object? Forward passes on a frozen SwAV checkpoint, before any
training run (docs/method.md, "Objectives").

    python3 -m benchmarks incentive --profile cpu [--ckpt SWAV.ckpt] [--clutter DIR]

For every objective of ``solo_scaca.addon.objectives``, on clutter test images (two views each:
random resized crops and flips of one canvas, as training draws them; the object's box follows
the crop; with ``--pair-with SET`` the second view is a crop of SET's canvas of the same
object, on another background, so the object is all the two views share): the objective's loss
with (a) uniform masks, (b) box masks (uniform inside the object's box), (b') the placebo: the
box mirrored through the crop's centre (same size, same distance from the border, elsewhere),
and (c) masks optimised for that loss alone (free per-image mask logits, backbone and head
frozen), with the optimised masks' mask-in-box and border share, and (d) the same optimisation
with each mask kept at least as spread as its box mask (an entropy floor): where (c) finds a few
cells off the object, (d) tells whether the object is still the best place of its size. (b)
against (b') tells a loss that prefers the object from one that prefers any compact mask away
from the border. ``fixed`` has no free
mask: its own mutual-nearest-neighbour mask stands in (c). ``attend`` pools the *partner*: its
masks and boxes are the partner's. An objective passes when its loss prefers the box to the
uniform mask and its optimised mask gathers in the box (thresholds in the table's notes); one
that does not pass gets no training run.
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from benchmarks.common import RESULTS, metadata, write_table
from benchmarks.data import clutter_images, default_clutter_root
from solo_scaca.addon import objectives as obj
from solo_scaca.addon.mechanism_metrics import mask_entropies
from solo_scaca.evaluation.box_metrics import border_share, box_coverage, box_masks, mask_in_box

# passes: box loss below uniform by at least this many nats, and optimised mask-in-box >= this
MIN_BOX_GAIN_NATS = 0.01
MIN_OPTIMISED_IN_BOX = 1.2
LAMBDA_BG, LAMBDA_AREA = 1.0, 0.1  # the complement objective's weights (its defaults)
CROP_RATIO = (3 / 4, 4 / 3)  # the host's random resized crop (the scale: the checkpoint's)


@dataclasses.dataclass
class Views:
    """Two crops of each image through the frozen model (no gradient)."""

    fmaps: List[torch.Tensor]      # per view, B x C x H x W spatial maps
    codes: List[torch.Tensor]      # per view, B x K Sinkhorn codes of the whole-image feature
    boxes: List[torch.Tensor]      # per view, B x 4 boxes in the crop's pixels
    labels: torch.Tensor           # B class labels
    image_size: int


def crop_with_box(image: torch.Tensor, box: Sequence[float], size: int,
                  scale: Tuple[float, float],
                  generator: torch.Generator) -> Tuple[torch.Tensor, Tuple[float, ...]]:
    """A random resized crop and flip (``random_crop``) that keeps at least one map cell's
    area (an eighth of the side, squared) of the object's box; the whole image after 20
    tries. The check is about where the object is, so a crop must hold some of it."""
    for _ in range(20):
        crop, moved = random_crop(image, box, size, scale, generator)
        if (moved[2] - moved[0]) * (moved[3] - moved[1]) >= (size / 8) ** 2:
            return crop, moved
    return random_crop(image, box, size, scale, generator, whole=True)


def random_crop(image: torch.Tensor, box: Sequence[float], size: int,
                scale: Tuple[float, float], generator: torch.Generator,
                whole: bool = False) -> Tuple[torch.Tensor, Tuple[float, ...]]:
    """A random resized crop (area share in ``scale``, CROP_RATIO; ``whole``: the image) and
    flip of a C x S x S image, resized to ``size``, and the box moved with it (clipped)."""
    _, h, w = image.shape
    for _ in range(10):
        area = h * w * float(torch.empty(1).uniform_(*scale, generator=generator))
        log_r = torch.empty(1).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]),
                                        generator=generator)
        ratio = math.exp(float(log_r))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if not whole and 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw, ch = w, h
    x = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    y = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    crop = F.interpolate(image[None, :, y:y + ch, x:x + cw], size=(size, size), mode="bilinear",
                         align_corners=False, antialias=True)[0]
    x0, y0, x1, y1 = box
    sx, sy = size / cw, size / ch
    moved = [min(max((x0 - x) * sx, 0), size), min(max((y0 - y) * sy, 0), size),
             min(max((x1 - x) * sx, 0), size), min(max((y1 - y) * sy, 0), size)]
    if bool(torch.rand(1, generator=generator) < 0.5):
        crop = crop.flip(-1)
        moved = [size - moved[2], moved[1], size - moved[0], moved[3]]
    return crop, tuple(moved)


class FrozenSwAV:
    """A trained SwAV model's backbone map, head and Sinkhorn, frozen."""

    def __init__(self, model: torch.nn.Module, backbone_name: str):
        from solo.utils.sinkhorn_knopp import SinkhornKnopp

        from solo_scaca.addon.spatial_maps import SpatialMapHook

        self.model = model.eval().requires_grad_(False)
        self.hook = SpatialMapHook(model.backbone, backbone_name)
        self.temperature = float(model.temperature)
        self.sinkhorn = SinkhornKnopp(model.sk_iters, model.sk_epsilon, 1)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.prototypes(F.normalize(self.model.projector(feats), dim=1))

    @torch.no_grad()
    def codes(self, logits: torch.Tensor) -> torch.Tensor:
        return self.sinkhorn(logits.detach())

    @torch.no_grad()
    def fmap(self, images: torch.Tensor) -> torch.Tensor:
        with self.hook.capture() as captured:
            self.model.backbone(images)
        return captured.fmap


def make_views(frozen: FrozenSwAV, images: torch.Tensor, boxes: torch.Tensor,
               labels: torch.Tensor, size: int, scale: Tuple[float, float], seed: int,
               second: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> Views:
    """Two crops of every image (area share in ``scale``, normalised as the host does), their
    maps and codes; with ``second`` (images, boxes), the second view is cropped from those
    canvases."""
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    generator = torch.Generator().manual_seed(seed)
    fmaps, codes, view_boxes = [], [], []
    for view in range(2):
        canvases, canvas_boxes = second if view == 1 and second is not None else (images, boxes)
        crops, moved = zip(*(crop_with_box(img, box.tolist(), size, scale, generator)
                             for img, box in zip(canvases, canvas_boxes)))
        fmap = frozen.fmap((torch.stack(crops) - mean) / std)
        fmaps.append(fmap)
        codes.append(frozen.codes(frozen.head(fmap.mean(dim=(2, 3)))))
        view_boxes.append(torch.tensor(moved))
    return Views(fmaps, codes, view_boxes, labels, size)


def partners_of(views: Views, mode: str, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each image's partner in the other view: ``prototype`` (the add-on's pairing by the codes)
    or ``class`` (a random other image of the same class: the oracle). Returns the partner
    indices and a mask of the pairs that count (``prototype``: code argmax shared)."""
    from solo_scaca.addon.pairing import select_partners

    b = views.labels.numel()
    if mode == "prototype":
        (_, index), _ = select_partners("prototype", views.codes)
        keep = views.codes[0].argmax(1) == views.codes[1][index].argmax(1)
        return index, keep
    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(b)
    keep = torch.zeros(b, dtype=torch.bool)
    for i in range(b):
        same = (views.labels == views.labels[i]).nonzero().flatten()
        same = same[same != i]
        if len(same):
            index[i] = same[torch.randint(len(same), (1,), generator=generator)]
            keep[i] = True
    return index, keep


def objective_loss(name: str, frozen: FrozenSwAV, views: Views, masks: List[torch.Tensor],
                   partner: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The objective's loss for the given masks (per view, B x H x W). Distributions for every
    objective but ``complement`` (soft masks in (0, 1)) and ``attend`` (distributions over the
    partner's locations, partner in the other view)."""
    tau = frozen.temperature
    f, q = views.fmaps, views.codes
    losses = []
    for v in range(2):
        other = 1 - v
        if name in ("self", "fixed"):
            losses.append(obj.soft_cross_entropy(
                q[other], frozen.head(obj.weighted_pool(f[v], masks[v])), tau))
        elif name == "self_masked":
            target = frozen.codes(frozen.head(obj.weighted_pool(f[other], masks[other])))
            losses.append(obj.soft_cross_entropy(
                target, frozen.head(obj.weighted_pool(f[v], masks[v])), tau))
        elif name == "co":  # i (view v) against its partner j (the other view), both masked
            target = frozen.codes(frozen.head(obj.weighted_pool(f[other], masks[other])))
            loss = obj.soft_cross_entropy(
                target[partner], frozen.head(obj.weighted_pool(f[v], masks[v])), tau)
            losses.append(loss[keep])
        elif name == "complement":
            fg = frozen.head(obj.weighted_pool(f[v], masks[v]))
            bg = frozen.head(obj.weighted_pool(f[v], 1 - masks[v]))
            losses.append(obj.soft_cross_entropy(q[other], fg, tau)
                          + LAMBDA_BG * obj.background_penalty(bg, q[other], tau)
                          + LAMBDA_AREA * obj.area_prior(masks[v]))
        elif name == "attend":  # i's other-view codes from its partner's attended parts
            rebuilt = obj.weighted_pool(f[other][partner], masks[v])
            losses.append(obj.soft_cross_entropy(q[other], frozen.head(rebuilt), tau)[keep])
        else:
            raise ValueError(f"objective {name!r}: allowed values are {obj.OBJECTIVES}")
    return torch.cat(losses).mean()


def mirrored(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Boxes (x0, y0, x1, y1) reflected through the centre of a ``size`` px crop: the placebo
    of the same size and distance from the border as the object's box."""
    return size - boxes[:, [2, 3, 0, 1]]


def reference_masks(name: str, views: Views, partner: torch.Tensor,
                    kind: str) -> List[torch.Tensor]:
    """Per view, the ``uniform``, ``box`` or ``mirror`` (placebo box) masks in the form the
    objective takes."""
    b, _, h, w = views.fmaps[0].shape
    boxes = [views.boxes[1 - v][partner] if name == "attend" else views.boxes[v]
             for v in range(2)]
    if kind == "mirror":
        boxes, kind = [mirrored(bx, views.image_size) for bx in boxes], "box"
    if name == "complement":
        if kind == "uniform":
            return [torch.full((b, h, w), 0.5) for _ in range(2)]
        return [box_coverage(bx, views.image_size, (h, w)) for bx in boxes]
    if kind == "uniform":
        return [torch.full((b, h, w), 1 / (h * w)) for _ in range(2)]
    return [box_masks(bx, views.image_size, (h, w)) for bx in boxes]


def own_masks(name: str, views: Views, partner: torch.Tensor, steps: int, lr: float,
              frozen: FrozenSwAV, keep: torch.Tensor,
              floor: Optional[List[torch.Tensor]] = None) -> List[torch.Tensor]:
    """(c): masks optimised for the objective alone (free logits, Adam), or ``fixed``'s own
    mutual-nearest-neighbour masks with the partner. ``floor`` (per view, B entropies): (d),
    each mask kept at least that spread (a penalty of ``FLOOR_WEIGHT`` per nat below it)."""
    if name == "fixed":
        return [obj.mutual_nn_mask(views.fmaps[v], views.fmaps[1 - v][partner]) for v in range(2)]
    b, _, h, w = views.fmaps[0].shape
    logits = torch.zeros(2, b, h * w, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=lr)

    def masks_of(x: torch.Tensor) -> List[torch.Tensor]:
        m = torch.sigmoid(x) if name == "complement" else torch.softmax(x, dim=2)
        return [m[v].view(b, h, w) for v in range(2)]

    for _ in range(steps):
        optimiser.zero_grad()
        masks = masks_of(logits)
        loss = objective_loss(name, frozen, views, masks, partner, keep)
        if floor is not None:
            loss = loss + FLOOR_WEIGHT * sum(F.relu(f - mask_entropies(m)).mean()
                                             for f, m in zip(floor, masks))
        loss.backward()
        optimiser.step()
    return [m.detach() for m in masks_of(logits)]


def spatial_of(name: str, masks: List[torch.Tensor], views: Views,
               partner: torch.Tensor) -> Tuple[float, float]:
    """Mean mask-in-box and border share over both views (``attend``: the partner's box)."""
    dist = [m / m.sum(dim=(1, 2), keepdim=True) for m in masks]  # soft masks -> distributions
    boxes = [views.boxes[1 - v][partner] if name == "attend" else views.boxes[v] for v in range(2)]
    valid = [(bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1]) for bx in boxes]  # box still in crop
    inside = torch.cat([mask_in_box(d[ok], bx[ok], views.image_size)
                        for d, bx, ok in zip(dist, boxes, valid)])
    border = torch.cat([border_share(d) for d in dist])
    return float(inside.mean()), float(border.mean())


PARTNERED = {"co", "attend", "fixed"}
# (d): objectives with distributions as masks get a second optimisation, its masks no sharper
# than the box mask (an entropy floor); FLOOR_WEIGHT: nats of loss per nat below the floor
SIZED = {"self", "self_masked", "co", "attend"}
FLOOR_WEIGHT = 10.0


def incentive_rows(frozen: FrozenSwAV, views: Views, objectives: Sequence[str], steps: int,
                   lr: float, seed: int,
                   log: Callable[[str], None] = print) -> List[Dict[str, object]]:
    """One row per (objective, partners): losses at (a), (b), (b'), (c), the optimised masks'
    spatial metrics, (d)'s mask-in-box and the verdict."""
    rows = []
    for name in objectives:
        for pairing in (("prototype", "class") if name in PARTNERED else ("-",)):
            partner, keep = (partners_of(views, pairing, seed) if pairing != "-"
                             else (torch.arange(views.labels.numel()),
                                   torch.ones(views.labels.numel(), dtype=torch.bool)))
            on_box = reference_masks(name, views, partner, "box")
            with torch.no_grad():
                uniform, mirror = (objective_loss(name, frozen, views,
                                                  reference_masks(name, views, partner, kind),
                                                  partner, keep) for kind in ("uniform", "mirror"))
                box = objective_loss(name, frozen, views, on_box, partner, keep)
            masks = own_masks(name, views, partner, steps, lr, frozen, keep)
            with torch.no_grad():
                optimised = objective_loss(name, frozen, views, masks, partner, keep)
            in_box, border = spatial_of(name, masks, views, partner)
            sized_in_box = ""
            if name in SIZED:
                floor = [mask_entropies(m) for m in on_box]
                sized = own_masks(name, views, partner, steps, lr, frozen, keep, floor)
                sized_in_box = f"{spatial_of(name, sized, views, partner)[0]:.2f}"
            passes = (float(uniform - box) >= MIN_BOX_GAIN_NATS
                      and in_box >= MIN_OPTIMISED_IN_BOX)
            same_class = float((views.labels[partner] == views.labels)[keep].float().mean())
            row = {"objective": name, "partners": pairing,
                   "pairs_counted": f"{int(keep.sum())}/{keep.numel()}",
                   "partner_same_class": f"{same_class:.2f}" if pairing != "-" else "",
                   "loss_uniform": f"{float(uniform):.3f}", "loss_box": f"{float(box):.3f}",
                   "loss_own": f"{float(optimised):.3f}",
                   "box_gain_nats": f"{float(uniform - box):+.3f}",
                   "loss_mirror": f"{float(mirror):.3f}",
                   "object_gain_nats": f"{float(mirror - box):+.3f}",
                   "own_mask_in_box": f"{in_box:.2f}", "own_border_share": f"{border:.2f}",
                   "sized_mask_in_box": sized_in_box,
                   "verdict": "passes" if passes else "no training run"}
            log(f"[incentive] {json.dumps(row)}")
            rows.append(row)
    return rows


def load_swav(ckpt: Path) -> Tuple[torch.nn.Module, str, int, Tuple[float, float]]:
    """The whole SwAV model of a pretraining checkpoint, its backbone name, crop size and
    crops' area share (its training's: the views of the check are the views it learned on)."""
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    from solo_scaca.host.backbone_io import read_pretrain_args
    from solo_scaca.host.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(ckpt)
    args = read_pretrain_args(ckpt, checkpoint=checkpoint)
    if args["method"] not in ("swav", "swav_scaca"):
        raise SystemExit(f"{ckpt} is a {args['method']!r} checkpoint: the incentive check "
                         "needs swav (or swav_scaca)")
    model = METHODS[args["method"]](OmegaConf.create(args))
    state = checkpoint["state_dict"]
    model.load_state_dict({k: v for k, v in state.items() if k != "queue"}, strict=False)
    augmentation = args["augmentations"][0]
    return (model, args["backbone"]["name"], augmentation["crop_size"],
            (augmentation["rrc"]["crop_min_scale"], augmentation["rrc"]["crop_max_scale"]))


def default_checkpoint() -> Optional[Path]:
    """The clutter campaign's swav seed-0 checkpoint, if it is on this machine."""
    from benchmarks.data import DEFAULT_WORK_DIR

    found = sorted((DEFAULT_WORK_DIR / "clutter" / "swav" / "cpu" / "swav-seed0").rglob("*.ckpt"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Command-line entry point (also ``python3 -m benchmarks incentive``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks incentive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="the results subfolder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ckpt", type=Path, default=None,
                        help="a trained swav checkpoint (default: the clutter campaign's seed 0)")
    parser.add_argument("--clutter", type=Path, default=default_clutter_root(),
                        help="a clutter set (solo-scaca-clutter-data; default: the clutter "
                             "campaign's cpu profile set)")
    parser.add_argument("--pair-with", type=Path, default=None,
                        help="a clutter set of the same objects on other canvases "
                             "(solo-scaca-clutter-data with another --seed): second views "
                             "from it")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256, help="images per Sinkhorn batch")
    parser.add_argument("--steps", type=int, default=200, help="optimisation steps of (c)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objectives", nargs="+", choices=obj.OBJECTIVES,
                        default=list(obj.OBJECTIVES))
    args = parser.parse_args(argv)
    ckpt = args.ckpt or default_checkpoint()
    if ckpt is None:
        parser.error("no --ckpt given and no clutter swav seed-0 checkpoint on this machine: run "
                     "`python3 -m benchmarks clutter --profile cpu` first")
    torch.manual_seed(args.seed)
    model, backbone, size, scale = load_swav(ckpt)
    frozen = FrozenSwAV(model, backbone)
    images, boxes, labels = clutter_images(args.clutter, args.images, size)
    second = None if args.pair_with is None else paired_images(args.clutter, args.pair_with,
                                                               args.images, size)
    rows: Dict[Tuple[str, str], List[Dict[str, object]]] = {}
    num_codes = 0
    for start in range(0, len(images), args.batch):
        part = slice(start, start + args.batch)
        views = make_views(frozen, images[part], boxes[part], labels[part], size, scale,
                           args.seed + start,
                           None if second is None else (second[0][part], second[1][part]))
        num_codes = views.codes[0].shape[1]
        for row in incentive_rows(frozen, views, args.objectives, args.steps, args.lr,
                                  args.seed + start):
            rows.setdefault((row["objective"], row["partners"]), []).append(row)
    table = [average_rows(group) for group in rows.values()]
    views = ("two crops each" if second is None else
             f"two crops each, the second of the same object's canvas in `{args.pair_with.name}` "
             f"(another background: the object is all the views share)")
    notes = (f"Frozen checkpoint `{ckpt.name}` ({backbone}, {size} px); {len(images)} clutter "
             f"test images of `{args.clutter.name}` in Sinkhorn batches of {args.batch}, "
             f"{views} (scale {scale}, the checkpoint's own; flips; no colour jitter; each "
             f"crop keeps at least one map cell's area of the object); (c) {args.steps} Adam "
             f"steps at lr {args.lr} on free mask logits. Losses in nats (ln K = "
             f"{math.log(num_codes):.2f}), "
             f"averaged over batches. An objective passes when the box mask lowers its loss by "
             f">= {MIN_BOX_GAIN_NATS} nats and its optimised mask's mask-in-box is >= "
             f"{MIN_OPTIMISED_IN_BOX}. loss_mirror: the placebo, the box mirrored through the "
             f"crop's centre (same size and distance from the border); object_gain_nats = "
             f"loss_mirror - loss_box (> 0: the loss prefers the object, not just a compact "
             f"mask away from the border). sized_mask_in_box: (d), masks optimised as in (c) "
             f"but kept at least as spread as the box mask (an entropy floor, {FLOOR_WEIGHT:g} "
             f"nats of loss per nat below it): is the object the best place among masks of "
             f"its size? (Reported, not part of the verdict.) `attend`: masks over the "
             f"partner's locations, its box. "
             f"`co`, `attend`: pairs counted are those kept (prototype: code argmax shared). "
             f"complement: lambda_bg {LAMBDA_BG}, lambda_area {LAMBDA_AREA}.")
    name = "incentive" if second is None else "incentive-paired"
    out = write_table(name, "Incentive check: does each CA objective prefer the object?",
                      table, list(table[0]), metadata({"checkpoint": str(ckpt)}), notes,
                      args.out / args.profile)
    print(f"[incentive] -> {out}")
    return out


def paired_images(root: Path, other: Path, count: int,
                  size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``other``'s canvases of the objects that ``clutter_images(root, count, size)`` picks
    (images, boxes); an error unless both sets pasted the same source file at each of them."""
    import csv

    from benchmarks.data import clutter_picks

    def picks(r: Path) -> List[Tuple[str, str]]:  # (path, source file) of the picked images
        with (r / "sources.csv").open() as f:
            source = {row["path"]: row["source"] for row in csv.DictReader(f)}
        return [(b["path"], source.get(b["path"], "")) for b in clutter_picks(r, count)]

    mine, theirs = picks(root), picks(other)
    if mine != theirs:
        differ = [a for a, b in zip(mine, theirs) if a != b] or mine[len(theirs):]
        raise ValueError(f"--pair-with {other}: its objects differ from {root}'s (e.g. "
                         f"{(differ or theirs)[0][0]}): generate it from the same CIFAR-10 "
                         f"with another --seed and enough test objects per class for "
                         f"--images {count}")
    images, boxes, _ = clutter_images(other, count, size)
    return images, boxes


def average_rows(group: List[Dict[str, object]]) -> Dict[str, object]:
    """Rows of one (objective, partners) over batches: numbers averaged, verdict recomputed."""
    first = dict(group[0])
    for key in ("loss_uniform", "loss_box", "loss_own", "box_gain_nats", "loss_mirror",
                "object_gain_nats", "own_mask_in_box", "own_border_share", "sized_mask_in_box",
                "partner_same_class"):
        if first[key] == "":
            continue
        value = sum(float(r[key]) for r in group) / len(group)
        first[key] = f"{value:+.3f}" if key.endswith("_gain_nats") else (
            f"{value:.2f}" if key.startswith(("own", "sized")) or key == "partner_same_class"
            else f"{value:.3f}")
    counted = [r["pairs_counted"].split("/") for r in group]
    first["pairs_counted"] = f"{sum(int(a) for a, _ in counted)}/{sum(int(b) for _, b in counted)}"
    passes = (float(first["box_gain_nats"]) >= MIN_BOX_GAIN_NATS
              and float(first["own_mask_in_box"]) >= MIN_OPTIMISED_IN_BOX)
    first["verdict"] = "passes" if passes else "no training run"
    return first


if __name__ == "__main__":
    main()
