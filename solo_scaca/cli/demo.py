"""``solo-scaca-demo``: the README's main job, on CPU in about 3 minutes.

Generates the toy-shapes dataset (plain backgrounds by default), pretrains ``swav_scaca`` on it
through the plugin's pretraining command, prints the k-NN top-1 (the host's
``WeightedKNNClassifier``, k=20) of the learned backbone next to that of the same backbone at
random initialisation, and draws what the learned model looks at: its cross-attention masks
(``solo-scaca-masks``) and the class activation maps of a few validation images.
"""

import argparse
import time
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from hydra import compose, initialize_config_module
from lightning.pytorch import seed_everything
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader

from solo_scaca.cli.pretrain import pretrain
from solo_scaca.data.toy_shapes import generate_toy_shapes
from solo_scaca.evaluation.cam import class_activation_maps, train_linear_head
from solo_scaca.host.backbone_io import build_backbone, load_backbone
from solo_scaca.host.features import extract_features, image_folder_loader, knn_accuracy

# the embedded default, chosen so that pretraining visibly learns in minutes on 2 cores (README:
# the shipped seed and 3 others, measured): Wide ResNet-28-2 at 32 px (an 8x8 map for the
# add-on), 1000 plain-background images, 15 epochs of 15 steps of 64, and a strong colour
# augmentation: colour (random per image, not per class) is the shortcut to close, or SwAV
# clusters by colour and the learned backbone is no better than a random one (measured with
# the toy config's mild jitter: 23.5% against 26.5% at random init)
IMAGE_SIZE = 32
EPOCHS = 15
TRAIN_PER_CLASS = 100
SEED = 5
RECIPE = (
    "backbone.name=wide_resnet28w2",
    "optimizer.batch_size=64",
    "augmentations.0.rrc.crop_min_scale=0.5",
    "augmentations.0.color_jitter.prob=1.0",
    "augmentations.0.color_jitter.brightness=0.8",
    "augmentations.0.color_jitter.contrast=0.8",
    "augmentations.0.color_jitter.saturation=1.0",
    "augmentations.0.color_jitter.hue=0.5",
    "augmentations.0.grayscale.prob=0.5",
)


def draw_cams(backbone: torch.nn.Module, train: Tuple[torch.Tensor, torch.Tensor],
              loader: DataLoader, out: Path, rows: int = 6) -> Path:
    """CAMs of the true class for ``rows`` validation images spread over the classes, from a
    linear head trained on the backbone's training features ``train``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = loader.dataset.classes
    head = train_linear_head(*train, num_classes=len(classes))
    picks = torch.linspace(0, len(loader.dataset) - 1, rows).long().tolist()
    images = torch.stack([loader.dataset[i][0] for i in picks])
    labels = torch.tensor([loader.dataset[i][1] for i in picks])
    cams = class_activation_maps(backbone, head, images, labels)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    fig, axes = plt.subplots(1, rows, figsize=(1.6 * rows, 2.0), squeeze=False)
    for ax, image, cam, label in zip(axes[0], images, cams, labels):
        ax.imshow((image * std + mean).permute(1, 2, 0).clamp(0, 1).numpy())
        ax.imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(classes[label], fontsize=7)
        ax.axis("off")
    fig.suptitle("class activation maps of the learned backbone (linear head on its features)",
                 fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="folder for data and checkpoints")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--method", default="swav_scaca", help="swav_scaca, or swav to compare")
    parser.add_argument("--train-per-class", type=int, default=TRAIN_PER_CLASS,
                        help="toy training images per class")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--background", choices=("plain", "cluttered"), default="plain")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides, key=value")
    args = parser.parse_args(argv)
    if args.image_size < 32 or args.epochs < 1 or args.train_per_class < 1:
        parser.error(f"--image-size={args.image_size} (>= 32), --epochs={args.epochs} (>= 1) "
                     f"and --train-per-class={args.train_per_class} (>= 1) are out of range")
    start = time.time()

    out = Path(args.out)
    data = generate_toy_shapes(
        out / f"toy_shapes_{args.background}_{args.image_size}px_{args.train_per_class}",
        train_per_class=args.train_per_class,
        image_size=args.image_size,
        clutter=args.background == "cluttered",
    )
    with initialize_config_module("solo_scaca.configs", version_base="1.2"):
        cfg = compose(
            "swav_scaca_toy",
            overrides=[
                f"method={args.method}",
                f"name={args.method}-toy-seed{args.seed}",
                f"data.train_path={data / 'train'}",
                f"checkpoint.dir={out / 'trained_models'}",
                f"++default_root_dir={out}",  # Lightning's own logs: there, not in the cwd
                "++enable_model_summary=False",  # one screen: the summary at the end
                f"max_epochs={args.epochs}",
                f"augmentations.0.crop_size={args.image_size}",
                f"seed={args.seed}",
                *RECIPE,
                *args.overrides,
            ],
        )
    pretrain_start = time.time()
    ckpt = pretrain(cfg)
    pretrain_s = time.time() - pretrain_start

    loaders = [image_folder_loader(data / split, args.image_size) for split in ("train", "val")]
    seed_everything(args.seed)
    backbones = {
        "random init": build_backbone(cfg.backbone.name, cfg.data.dataset),
        args.method: load_backbone(ckpt),
    }
    accuracy, features = {}, {}
    for name, backbone in backbones.items():
        features[name], val = (extract_features(backbone, loader) for loader in loaders)
        (accuracy[name], _), = knn_accuracy(features[name], val, ks=(20,)).values()
    pictures = [draw_cams(backbones[args.method], features[args.method], loaders[1],
                          out / "cams.png")]
    where = None  # where the masks sit against the toy shapes' boxes
    if args.method == "swav_scaca":
        from solo_scaca.cli.masks import main as masks_main

        where = masks_main(["--ckpt", str(ckpt), "--images", str(data / "val"), "--out",
                            str(out / "masks.png"), "--n", "6", "--batch", "64"])
        pictures.insert(0, out / "masks.png")

    gain = accuracy[args.method] - accuracy["random init"]
    n_train, n_val = (len(loader.dataset) for loader in loaders)
    print("\n".join([
        "",
        "== solo-scaca demo ==",
        f"data       {n_train} training / {n_val} validation toy-shapes images, 10 classes, "
        f"{args.image_size} px, {args.background} backgrounds: {data}",
        f"pretrained {args.method} ({cfg.backbone.name}), {args.epochs} epochs, seed "
        f"{args.seed}, in {pretrain_s:.0f} s: {ckpt}",
        f"kNN-20 top-1 on validation: random init {accuracy['random init']:.1f}%, "
        f"{args.method} {accuracy[args.method]:.1f}% ({gain:+.1f} points)",
        *([f"masks      {where}"] if where else []),
        f"pictures   {', '.join(str(p) for p in pictures)}",
        f"total      {time.time() - start:.0f} s",
    ]))


if __name__ == "__main__":
    main()
