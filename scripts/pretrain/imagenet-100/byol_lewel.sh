#!/usr/bin/env bash
# Pretrains byol_lewel (BYOL + LEWEL's aligned term, a positive control) on
#   ImageNet-100.
# Replaces the host's
#   python3 main_pretrain.py --config-path scripts/pretrain/imagenet-100/ \
#       --config-name byol.yaml
#
# Settings: byol_lewel.yaml beside this script (augmentations/ and wandb/ as the host's), with
# the host's GPU defaults:
#   devices=[0,1] strategy=ddp sync_batchnorm=True precision=16-mixed data.format=dali.
# data.format=dali needs DALI and a GPU: add data.format=image_folder without them.
# Overrides go after the script; set your data paths with data.train_path=... data.val_path=...
#   bash byol_lewel.sh data.train_path=/data/in100/train data.val_path=/data/in100/val
#   bash byol_lewel.sh "devices=[0,1,2,3]" method_kwargs.lewel_num_maps=8
# On a machine without CUDA, solo-scaca-pretrain applies the host's CPU settings itself
# (accelerator=cpu devices='1' strategy=auto sync_batchnorm=False precision=32
# wandb.enabled=False performance.disable_channel_last=True) and says so once.
#
# solo-scaca-pretrain runs the host's pretraining pipeline whether solo-learn came from pip or
# from a checkout. With a checkout, the host's own script runs this yaml unchanged too (the
# plugin's hydra plugin registers the method):
#   python3 /path/to/solo-learn/main_pretrain.py \
#       --config-path /abs/path/to/scripts/pretrain/imagenet-100 \
#       --config-name byol_lewel.yaml
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec solo-scaca-pretrain --config-path "$HERE" --config-name byol_lewel.yaml "$@"
