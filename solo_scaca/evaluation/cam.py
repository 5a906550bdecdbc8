"""Class activation maps (CAM) of a frozen backbone and their MaxBoxAcc localization score.

CAM of class c (Zhou et al., CVPR 2016) for a backbone with last spatial map F and a linear
classifier W on its pooled features: ``CAM_c(u) = W_c . F(u)``, upsampled (bilinear) to the
image and min-max normalised per image. MaxBoxAcc (Choe et al., CVPR 2020, "Evaluating Weakly
Supervised Object Localization Methods Right"), GT-known (c = the true class): for every
threshold t, the box of the largest connected component of ``CAM >= t``; the accuracy at t is
the share of images whose box has IoU >= 0.5 with the ground-truth box; the score is the best
threshold's accuracy.

F comes from the backbone family's ``solo_scaca.addon.spatial_maps.spatial_spec`` (ResNet ``layer4``,
ViT patch tokens, ...). Each location goes through the family's ``feature_head`` (what the
backbone applies after pooling: ConvNeXt's norm, identity elsewhere), i.e. a location is scored
as if it were the whole pooled feature. For families whose features are the average of F
(ResNet, Wide ResNet, Swin, PoolFormer) the mean of the raw CAM plus the bias is the class
logit. ViT's features are its class token, so its CAM (on the patch tokens) is not.

Boxes are ``(x0, y0, x1, y1)`` pixels with x1/y1 exclusive, as in ``boxes.csv``.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

from solo_scaca.addon.spatial_maps import SpatialMapHook


Box = Tuple[int, int, int, int]
DEFAULT_THRESHOLDS = np.arange(0, 1, 0.01)
# 8-connectivity, as the contour tracing (OpenCV) of Choe et al.'s reference code
_CONNECTIVITY = np.ones((3, 3), dtype=bool)
_STACK_CONNECTIVITY = np.stack([np.zeros((3, 3), bool), _CONNECTIVITY, np.zeros((3, 3), bool)])

# class name in the backbone's MRO -> host backbone family (a prefix of spatial_maps.SPATIAL_SPECS)
_FAMILIES = {
    "WideResNet": "wide_resnet",
    "ResNet": "resnet",
    "VisionTransformer": "vit",
    "SwinTransformer": "swin",
    "PoolFormer": "poolformer",
    "ConvNeXt": "convnext",
}


# --------------------------------------------------------------------------------------------
# CAMs
# --------------------------------------------------------------------------------------------


def backbone_family(backbone: nn.Module) -> str:
    """The host backbone family of a module (``resnet``, ``vit``, ...), from its class."""
    for cls in type(backbone).__mro__:
        if cls.__name__ in _FAMILIES:
            return _FAMILIES[cls.__name__]
    raise ValueError(
        f"cannot tell the backbone family of {type(backbone).__name__}; pass backbone_name "
        f"(a host backbone name such as 'resnet18')"
    )


@torch.no_grad()
def location_features(
    backbone: nn.Module, images: torch.Tensor, backbone_name: Optional[str] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The backbone's pooled features (B x D) and its per-location features (B x h x w x D).

    A location's feature is ``feature_head(F(u))``: what the backbone would output if its
    pooling gave F(u). The backbone runs in eval mode (its previous mode is restored).
    """
    hook = SpatialMapHook(backbone, backbone_name or backbone_family(backbone))
    was_training = backbone.training
    backbone.eval()
    try:
        device = next(backbone.parameters()).device
        with hook.capture():
            pooled = backbone(images.to(device))
    finally:
        backbone.train(was_training)
        hook.remove()
    fmap = hook.fmap.float()
    b, c, h, w = fmap.shape
    per_location = hook.feature_head(fmap.permute(0, 2, 3, 1).reshape(-1, c))
    return pooled.float(), per_location.reshape(b, h, w, -1)


@torch.no_grad()
def cams_from_features(
    per_location: torch.Tensor, classifier: nn.Linear, labels: torch.Tensor
) -> torch.Tensor:
    """``W_c . f(u)`` for c = ``labels`` from per-location features (B x h x w x D): B x h x w,
    no bias (a constant per image, removed by the normalisation anyway)."""
    weights = classifier.weight.to(per_location.device, torch.float32)
    return torch.einsum("bhwd,bd->bhw", per_location, weights[labels.to(per_location.device)])


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation of each map (B x H x W) to [0, 1]; a constant map gives zeros."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    span = flat.max(dim=1).values[:, None, None] - lo
    out = (maps - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, out, torch.zeros_like(out))


def upsample_and_normalize(raw: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Raw CAMs (B x h x w) upsampled (bilinear) to ``size``, then min-max normalised per image
    (the order of Choe et al.'s code, so every map reaches exactly 0 and 1 unless constant)."""
    up = F.interpolate(raw[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return normalize_maps(up[:, 0])


@torch.no_grad()
def class_activation_maps(
    backbone: nn.Module,
    classifier: nn.Linear,
    images: torch.Tensor,
    labels: torch.Tensor,
    backbone_name: Optional[str] = None,
    raw: bool = False,
) -> torch.Tensor:
    """CAMs of the classes ``labels`` for ``images`` (B x 3 x H x W): B x H x W in [0, 1],
    upsampled (bilinear) to the image and min-max normalised per image (``cams_from_features``
    then ``upsample_and_normalize``); ``raw=True``: ``W_c . F(u)`` at the spatial map's
    resolution (B x h x w), no bias. ``backbone_name`` (a host backbone name such as
    ``resnet18``) is inferred from the module's class when omitted."""
    maps = cams_from_features(location_features(backbone, images, backbone_name)[1], classifier,
                              labels)
    return maps if raw else upsample_and_normalize(maps, tuple(images.shape[-2:]))


def center_gaussian_maps(n: int, height: int, width: int, sigma: float = 0.25) -> torch.Tensor:
    """The "centre" baseline of Choe et al.: an isotropic Gaussian at the image centre, for
    every image (n x H x W in [0, 1]); ``sigma`` is a fraction of the image side."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
    return normalize_maps(g.expand(n, height, width).clone())


# --------------------------------------------------------------------------------------------
# MaxBoxAcc
# --------------------------------------------------------------------------------------------


def largest_component_box(mask: np.ndarray) -> Optional[Box]:
    """Box (x1/y1 exclusive) of the largest 8-connected component of a boolean mask; None if
    the mask is empty. Ties go to the component found first (raster order)."""
    labelled, n = ndimage.label(mask, structure=_CONNECTIVITY)
    if n == 0:
        return None
    sizes = np.bincount(labelled.ravel(), minlength=n + 1)
    sizes[0] = 0
    rows, cols = ndimage.find_objects(labelled)[int(sizes.argmax()) - 1]
    return cols.start, rows.start, cols.stop, rows.stop


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1), x1/y1 exclusive."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _as_numpy(cams) -> np.ndarray:
    if isinstance(cams, torch.Tensor):
        cams = cams.detach().cpu().numpy()
    cams = np.asarray(cams, dtype=np.float32)
    if cams.ndim != 3:
        raise ValueError(f"cams must be N x H x W, got shape {cams.shape}")
    return cams


def estimated_boxes(cams, threshold: float) -> List[Optional[Box]]:
    """The box of the largest connected component of ``CAM >= threshold``, per image."""
    return [largest_component_box(cam >= threshold) for cam in _as_numpy(cams)]


def _largest_component_boxes(masks: np.ndarray) -> np.ndarray:
    """``largest_component_box`` of every mask of a stack (N x H x W) in one labelling pass:
    N x 4 boxes, -1 rows for empty masks."""
    labelled, n = ndimage.label(masks, structure=_STACK_CONNECTIVITY, output=np.int32)
    out = np.full((len(masks), 4), -1, dtype=np.int64)
    if n == 0:
        return out
    sizes = np.bincount(labelled[masks], minlength=n + 1)[1:]
    # labels are numbered in raster order, so each image holds a contiguous range of them
    last = np.maximum.accumulate(labelled.reshape(len(masks), -1).max(axis=1))
    ids = np.arange(1, n + 1)
    image = np.searchsorted(last, ids, side="left")
    order = np.lexsort((ids, -sizes, image))  # per image: largest first, then first found
    images, first = np.unique(image[order], return_index=True)
    chosen = np.zeros(len(masks), dtype=np.int32)
    chosen[images] = ids[order][first]
    component = labelled == chosen[:, None, None]  # all False where an image has no component
    rows, cols = component.any(axis=2), component.any(axis=1)
    h, w = masks.shape[1:]
    boxes = np.stack([cols.argmax(1), rows.argmax(1), w - cols[:, ::-1].argmax(1),
                      h - rows[:, ::-1].argmax(1)], axis=1)
    out[images] = boxes[images]
    return out


def _box_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise ``box_iou`` of two N x 4 arrays; rows of -1 in ``pred`` (no box) give 0."""
    iw = np.clip(np.minimum(pred[:, 2], gt[:, 2]) - np.maximum(pred[:, 0], gt[:, 0]), 0, None)
    ih = np.clip(np.minimum(pred[:, 3], gt[:, 3]) - np.maximum(pred[:, 1], gt[:, 1]), 0, None)
    inter = iw * ih
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(pred) + area(gt) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.where(pred[:, 0] >= 0, iou, 0.0)


def box_accuracy_curve(
    cams, boxes, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, iou: float = 0.5
) -> np.ndarray:
    """BoxAcc at each threshold: share of images whose estimated box has IoU >= ``iou`` with
    their ground-truth box. ``cams``: N x H x W normalised maps; ``boxes``: N x 4."""
    cams = _as_numpy(cams)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if len(boxes) != len(cams):
        raise ValueError(f"{len(cams)} CAMs but {len(boxes)} boxes")
    if len(cams) == 0:
        raise ValueError("no CAMs to evaluate")
    curve = np.zeros(len(thresholds))
    for i, t in enumerate(thresholds):
        curve[i] = np.mean(_box_ious(_largest_component_boxes(cams >= t), boxes) >= iou)
    return curve


def max_box_acc(
    cams, boxes, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, iou: float = 0.5
) -> Tuple[float, float]:
    """MaxBoxAcc (Choe et al., CVPR 2020, GT-known): ``(accuracy, best_threshold)``, accuracy
    in [0, 1]; the lowest threshold wins a tie."""
    curve = box_accuracy_curve(cams, boxes, thresholds, iou)
    best = int(np.argmax(curve))
    return float(curve[best]), float(thresholds[best])


# --------------------------------------------------------------------------------------------
# Linear head
# --------------------------------------------------------------------------------------------


def train_linear_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 100,
    lr: float = 1e-2,
    batch_size: int = 256,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> nn.Linear:
    """A linear classifier on frozen pooled features (N x D), trained with Adam and
    cross-entropy on standardised features; the standardisation is folded into the returned
    layer, so it applies to raw features (and its weights W give the CAM). On CPU, eval mode."""
    features = features.detach().float().cpu()
    labels = labels.detach().long().cpu()
    if features.ndim != 2 or len(features) != len(labels) or len(labels) == 0:
        raise ValueError(f"features must be N x D with N = len(labels) > 0, got "
                         f"{tuple(features.shape)} and {len(labels)} labels")
    mean = features.mean(dim=0)
    std = features.std(dim=0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    x = (features - mean) / std

    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.01)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(x[idx]), labels[idx]).backward()
            opt.step()
        sched.step()

    folded = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        folded.weight.copy_(head.weight / std)
        folded.bias.copy_(head.bias - folded.weight @ mean)
    return folded.eval()
