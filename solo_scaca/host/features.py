"""A backbone's pooled features of an image folder, and the host's ``WeightedKNNClassifier`` on
them (k-NN accuracy), on CPU or GPU.

The host's ``main_knn.py`` moves every batch to CUDA unconditionally; this runs wherever the
backbone is.
"""

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from solo.utils.knn import WeightedKNNClassifier
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder


def image_folder_loader(
    path: Union[str, Path], image_size: int, batch_size: int = 128, num_workers: int = 2,
    multiprocessing_context: Optional[str] = None,
) -> DataLoader:
    """Evaluation loader of an ImageFolder: resize, centre crop, ImageNet normalisation.

    ``multiprocessing_context="forkserver"`` starts the workers from a clean process: needed
    after a DALI pipeline ran in this one (forking its threads' locks deadlocks the workers)."""
    transform = transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ]
    )
    return DataLoader(ImageFolder(str(path), transform), batch_size=batch_size,
                      num_workers=num_workers,
                      multiprocessing_context=multiprocessing_context if num_workers else None)


@torch.no_grad()
def extract_features(backbone: nn.Module, loader: DataLoader) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled backbone features and labels of a whole loader (backbone in eval mode)."""
    backbone.eval()
    device = next(backbone.parameters()).device
    feats, labels = [], []
    for images, targets in loader:
        feats.append(backbone(images.to(device)).float().cpu())
        labels.append(targets)
    return torch.cat(feats), torch.cat(labels)


def knn_accuracy(
    train: Tuple[torch.Tensor, torch.Tensor],
    test: Tuple[torch.Tensor, torch.Tensor],
    ks: Sequence[int] = (20, 200),
    distance: str = "cosine",
    temperature: float = 0.07,
) -> Dict[int, Tuple[float, float]]:
    """Top-1 and top-5 accuracy (%) of the host's weighted k-NN classifier for each k."""
    results = {}
    for k in ks:
        knn = WeightedKNNClassifier(k=k, T=temperature, distance_fx=distance)
        knn(train_features=train[0], train_targets=train[1],
            test_features=test[0], test_targets=test[1])
        acc1, acc5 = knn.compute()
        results[k] = (float(acc1), float(acc5))
    return results
