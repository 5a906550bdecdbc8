"""CIFAR as image folders in the plugin's commands (``data.dataset=cifar10|cifar100`` with a
``train_path`` laid out as ``<class>/<image>``).

The host gives ResNet its CIFAR stem only for ``data.dataset=cifar10|cifar100``, and then reads
the data through torchvision's CIFAR classes, which download it. With image folders the plugin's
commands keep the dataset name (so the model, its stem and the CIFAR transforms are the host's)
and read the folders through the host's ``custom`` ImageFolder path. The host's own scripts keep
their behaviour.

With ``data.format=dali`` the host's ``parse_cfg`` accepts only ``imagenet100``, ``imagenet``
and ``custom``, although its DALI pretraining module reads any image folder and its DALI
augmentations have CIFAR's mean and std: ``parse_cfg_for_folders`` lets CIFAR image folders
through that check (and only those), so DALI pretraining keeps the CIFAR stem too.
"""

from pathlib import Path
from typing import Callable, Optional, Tuple, Union

from solo.data.classification_dataloader import (
    prepare_data,
    prepare_dataloaders,
    prepare_datasets,
    prepare_transforms,
)
from omegaconf import DictConfig
from torch.utils.data import DataLoader

CIFAR = ("cifar10", "cifar100")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_folder(path: Optional[Union[str, Path]]) -> bool:
    """Whether ``path`` holds class sub-folders of images (not torchvision's CIFAR files)."""
    if path is None or not Path(path).is_dir():
        return False
    for sub in sorted(p for p in Path(path).iterdir() if p.is_dir()):
        if any(f.suffix.lower() in IMAGE_EXTENSIONS for f in sub.iterdir()):
            return True
    return False


def loading_name(dataset: str, train_path: Optional[Union[str, Path]]) -> str:
    """The dataset name to load the data with: ``custom`` for CIFAR given as image folders."""
    return "custom" if dataset in CIFAR and is_image_folder(train_path) else dataset


def classification_loaders(
    dataset: str,
    train_path: Optional[Union[str, Path]],
    val_path: Optional[Union[str, Path]],
    data_format: str,
    batch_size: int,
    num_workers: int,
    auto_augment: bool = False,
) -> Tuple[DataLoader, DataLoader]:
    """The host's classification loaders (``prepare_data``); for CIFAR image folders, the
    host's CIFAR transforms over the host's ImageFolder datasets."""
    if loading_name(dataset, train_path) == dataset:
        return prepare_data(dataset, train_data_path=train_path, val_data_path=val_path,
                            data_format=data_format, batch_size=batch_size,
                            num_workers=num_workers, auto_augment=auto_augment)
    if auto_augment:
        raise ValueError(f"auto_augment=True is not supported for data.dataset={dataset} read "
                         "from image folders: the host's auto augment is ImageNet's (224 px)")
    if not is_image_folder(val_path):
        raise ValueError(f"data.train_path={train_path} is a {dataset} image folder, so "
                         f"data.val_path must be one too (class sub-folders), got {val_path}")
    t_train, t_val = prepare_transforms(dataset)
    train, val = prepare_datasets("custom", t_train, t_val, train_data_path=train_path,
                                  val_data_path=val_path, data_format="image_folder")
    return prepare_dataloaders(train, val, batch_size=batch_size, num_workers=num_workers)


def parse_cfg_for_folders(parse_cfg: Callable[[DictConfig], DictConfig]
                          ) -> Callable[[DictConfig], DictConfig]:
    """The host's pretraining ``parse_cfg``, which also accepts ``data.format=dali`` for CIFAR
    image folders: its only use of ``data.format`` is the assertion that a DALI dataset is
    ``imagenet100``, ``imagenet`` or ``custom``, so it parses such a config with
    ``image_folder`` and sets ``dali`` back. Any other config goes to ``parse_cfg`` as is."""

    def parse(cfg: DictConfig) -> DictConfig:
        if not (cfg.data.get("format") == "dali" and cfg.data.dataset in CIFAR
                and is_image_folder(cfg.data.train_path)):
            return parse_cfg(cfg)
        cfg.data.format = "image_folder"
        try:
            cfg = parse_cfg(cfg)
        finally:
            cfg.data.format = "dali"
        return cfg

    return parse
