#!/usr/bin/env bash
# Linear evaluation of a dino_scaca backbone on CIFAR-10 (data.dataset=cifar100 for CIFAR-100).
# The host has no dino.yaml in scripts/linear/cifar/: dino_scaca.yaml is derived from its
# scripts/linear/imagenet-100/dino.yaml (see the yaml's header).
#
# Settings: dino_scaca.yaml beside this script (wandb/ as the host's), with the host's GPU
# defaults:
#   devices=[0] strategy=ddp sync_batchnorm=True precision=16.
# Give the checkpoint (a full dino_scaca pretraining checkpoint, or the backbone written by
# solo-scaca-export) and your data paths after the script, with any other override:
# (quote a path that holds '=', as the host's checkpoint names do)
#   bash dino_scaca.sh "pretrained_feature_extractor='trained_models/dino_scaca/ID/NAME-ep=N.ckpt'" \
#       data.train_path=./datasets data.val_path=./datasets
# On a machine without CUDA, solo-scaca-linear applies the host's CPU settings itself
# (accelerator=cpu devices='1' strategy=auto sync_batchnorm=False precision=32
# wandb.enabled=False performance.disable_channel_last=True) and says so once.
#
# solo-scaca-linear runs the host's linear pipeline whether solo-learn came from pip or from a
# checkout. With a checkout, the host's main_linear.py runs this yaml unchanged:
#   python3 /path/to/solo-learn/main_linear.py \
#       --config-path /abs/path/to/scripts/linear/cifar \
#       --config-name dino_scaca.yaml pretrained_feature_extractor=...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec solo-scaca-linear --config-path "$HERE" --config-name dino_scaca.yaml "$@"
