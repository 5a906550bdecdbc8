"""CAM MaxBoxAcc of a backbone on a dataset with boxes (``boxes.csv``: the toy shapes, the
collage set, cifar10-clutter): a linear head on the frozen pooled features of its train split,
the CAMs of the true classes of its val (or test) split (the cam and clutter benchmarks)."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder

from solo_scaca.data.layout import read_boxes
from solo_scaca.evaluation.cam import (cams_from_features, estimated_boxes, location_features,
                                       max_box_acc, train_linear_head, upsample_and_normalize)
from solo_scaca.host.features import extract_features

# the host's per-dataset normalisation (solo.data.pretrain_dataloader.build_transform_pipeline)
MEANS_N_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4914, 0.4823, 0.4466), (0.247, 0.243, 0.261)),
}
def normalization(args: Dict) -> Tuple[Sequence[float], Sequence[float]]:
    """Mean and std the pretraining used (the host's rule: per dataset, else the config's
    ``augmentations[0].mean/std``, else ImageNet's)."""
    dataset = args.get("data", {}).get("dataset")
    if dataset in MEANS_N_STD:
        return MEANS_N_STD[dataset]
    aug = (args.get("augmentations") or [{}])[0]
    return aug.get("mean", IMAGENET_DEFAULT_MEAN), aug.get("std", IMAGENET_DEFAULT_STD)


def split_data(root: Path, split: str, mean, std, batch_size: int, num_workers: int,
               input_size: Optional[int] = None) -> Tuple[DataLoader, np.ndarray, List[str]]:
    """Loader of a split, its boxes (N x 4) in loader order and the images' paths. Images keep
    their size unless ``input_size`` is given: then they are resized (bilinear) to it and the
    boxes scaled alike."""
    steps = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if input_size:
        steps.insert(0, transforms.Resize((input_size, input_size),
                                          transforms.InterpolationMode.BILINEAR))
    folder = ImageFolder(str(root / split), transforms.Compose(steps))
    by_path = {r["path"]: r for r in read_boxes(root) if r["split"] == split}
    rels = [Path(p).relative_to(root).as_posix() for p, _ in folder.samples]
    for rel, (_, label) in zip(rels, folder.samples):
        if rel not in by_path or by_path[rel]["label"] != label:
            raise ValueError(f"{root}/boxes.csv does not match {rel} (label {label})")
    boxes = np.array([[by_path[r][k] for k in ("x0", "y0", "x1", "y1")] for r in rels])
    if input_size:
        with Image.open(folder.samples[0][0]) as im:
            w, h = im.size
        boxes = np.round(boxes * np.array([input_size / w, input_size / h] * 2)).astype(int)
    loader = DataLoader(folder, batch_size=batch_size, num_workers=num_workers)
    return loader, boxes, [str(root / r) for r in rels]


def evaluate(backbone: torch.nn.Module, backbone_name: str, root: Path, mean, std,
             head_epochs: int, head_lr: float, batch_size: int, num_workers: int,
             grid: Sequence[int], input_size: Optional[int] = None,
             val_split: str = "val") -> Dict:
    """MaxBoxAcc, best threshold and the linear head's val top-1 of one backbone on one
    dataset, plus the CAMs and boxes of the ``grid`` val images."""
    train_loader, _, _ = split_data(root, "train", mean, std, batch_size, num_workers,
                                    input_size)
    val_loader, boxes, _ = split_data(root, val_split, mean, std, batch_size, num_workers,
                                      input_size)
    feats, labels = extract_features(backbone, train_loader)
    head = train_linear_head(feats, labels, len(train_loader.dataset.classes),
                             epochs=head_epochs, lr=head_lr)
    correct, cams = 0, []
    for images, targets in val_loader:  # one pass: pooled features for top-1, CAMs
        pooled, per_location = location_features(backbone, images, backbone_name)
        with torch.no_grad():
            correct += (head(pooled.cpu()).argmax(1) == targets).sum().item()
        raw = cams_from_features(per_location, head, targets)
        cams.append(upsample_and_normalize(raw, tuple(images.shape[-2:])).cpu())
    cams = torch.cat(cams)
    top1 = correct / len(cams)
    acc, threshold = max_box_acc(cams, boxes)
    grid_cams = cams[list(grid)]
    return {"maxboxacc": 100 * acc, "threshold": threshold, "top1": 100 * top1,
            "map": "x".join(str(v) for v in per_location.shape[1:3]),
            "grid_cams": grid_cams, "grid_boxes": estimated_boxes(grid_cams, threshold)}
