"""``solo-scaca-knn``: k-NN accuracy of a pretrained backbone on ImageFolder data, CPU or GPU."""

import argparse
from typing import List, Optional

import torch

from solo_scaca.host.backbone_io import load_backbone
from solo_scaca.host.checkpoints import add_trust_option
from solo_scaca.host.features import extract_features, image_folder_loader, knn_accuracy


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", required=True, help="pretraining or exported checkpoint")
    parser.add_argument("--train-path", required=True, help="ImageFolder of the k-NN memory")
    parser.add_argument("--val-path", required=True, help="ImageFolder to classify")
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--k", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--distance", choices=["cosine", "euclidean"], default="cosine")
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=2)
    add_trust_option(parser)
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = load_backbone(args.ckpt, args.trust_checkpoint).to(device)
    train, val = (
        extract_features(
            backbone,
            image_folder_loader(path, args.image_size, args.batch_size, args.num_workers),
        )
        for path in (args.train_path, args.val_path)
    )
    for k, (acc1, acc5) in knn_accuracy(train, val, args.k, args.distance,
                                        args.temperature).items():
        print(f"kNN k={k} ({args.distance}): top-1 {acc1:.2f}%  top-5 {acc5:.2f}%")


if __name__ == "__main__":
    main()
