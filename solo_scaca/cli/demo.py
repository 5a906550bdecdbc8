"""``solo-scaca-demo``: the README's main job, on CPU in a few minutes.

Generates the toy-shapes dataset, pretrains ``swav_scaca`` on it through the plugin's pretraining
command, then prints the k-NN top-1 of the learned backbone (host's ``WeightedKNNClassifier``)
next to that of the same backbone at random initialisation.
"""

import argparse
from pathlib import Path
from typing import List, Optional

from hydra import compose, initialize_config_module
from lightning.pytorch import seed_everything

from solo_scaca.cli.pretrain import pretrain
from solo_scaca.data.toy_shapes import generate_toy_shapes
from solo_scaca.host.export import build_backbone, load_backbone
from solo_scaca.host.knn import extract_features, image_folder_loader, knn_accuracy

IMAGE_SIZE = 64


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="folder for data and checkpoints")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--method", default="swav_scaca", help="swav_scaca, or swav to compare")
    parser.add_argument("--train-per-class", type=int, default=50, help="toy training images")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides, key=value")
    args = parser.parse_args(argv)

    out = Path(args.out)
    data = generate_toy_shapes(
        out / f"toy_shapes_{args.train_per_class}",
        train_per_class=args.train_per_class,
        image_size=IMAGE_SIZE,
    )
    with initialize_config_module("solo_scaca.configs", version_base="1.2"):
        cfg = compose(
            "swav_scaca_toy",
            overrides=[
                f"method={args.method}",
                f"name={args.method}-toy",
                f"data.train_path={data / 'train'}",
                f"checkpoint.dir={out / 'trained_models'}",
                f"max_epochs={args.epochs}",
                *args.overrides,
            ],
        )
    ckpt = pretrain(cfg)
    print(f"checkpoint: {ckpt}")

    loaders = [image_folder_loader(data / split, IMAGE_SIZE) for split in ("train", "val")]
    seed_everything(cfg.seed)
    backbones = {
        "random init": build_backbone(cfg.backbone.name, cfg.data.dataset),
        args.method: load_backbone(ckpt),
    }
    for name, backbone in backbones.items():
        train, val = (extract_features(backbone, loader) for loader in loaders)
        (acc1, _), = knn_accuracy(train, val, ks=(20,)).values()
        print(f"kNN top-1 (k=20, cosine) on toy-shapes val, {name}: {acc1:.2f}%")


if __name__ == "__main__":
    main()
