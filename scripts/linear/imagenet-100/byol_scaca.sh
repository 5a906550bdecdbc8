#!/usr/bin/env bash
# Linear evaluation of a byol_scaca backbone on ImageNet-100.
# Replaces the host's
#   python3 main_linear.py --config-path scripts/linear/imagenet-100/ \
#       --config-name byol.yaml
#
# Settings: byol_scaca.yaml beside this script (wandb/ as the host's), with the host's GPU
# defaults:
#   devices=[0] strategy=ddp sync_batchnorm=True precision=16 data.format=dali.
# data.format=dali needs DALI and a GPU: add data.format=image_folder without them.
# Give the checkpoint (a full byol_scaca pretraining checkpoint, or the backbone written by
# solo-scaca-export) and your data paths after the script, with any other override:
# (quote a path that holds '=', as the host's checkpoint names do)
#   bash byol_scaca.sh "pretrained_feature_extractor='trained_models/byol_scaca/ID/NAME-ep=N.ckpt'" \
#       data.train_path=/data/in100/train data.val_path=/data/in100/val
# On a machine without CUDA, solo-scaca-linear applies the host's CPU settings itself
# (accelerator=cpu devices='1' strategy=auto sync_batchnorm=False precision=32
# wandb.enabled=False performance.disable_channel_last=True) and says so once.
#
# solo-scaca-linear runs the host's linear pipeline whether solo-learn came from pip or from a
# checkout. With a checkout, the host's main_linear.py runs this yaml unchanged:
#   python3 /path/to/solo-learn/main_linear.py \
#       --config-path /abs/path/to/scripts/linear/imagenet-100 \
#       --config-name byol_scaca.yaml pretrained_feature_extractor=...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec solo-scaca-linear --config-path "$HERE" --config-name byol_scaca.yaml "$@"
