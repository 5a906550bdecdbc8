#!/usr/bin/env bash
# Pretrains swav_lewel (SwAV + LEWEL's aligned term, a positive control) on
#   CIFAR-10 (data.dataset=cifar100 for CIFAR-100).
# Replaces the host's
#   python3 main_pretrain.py --config-path scripts/pretrain/cifar/ \
#       --config-name swav.yaml
#
# Settings: swav_lewel.yaml beside this script (augmentations/ and wandb/ as the host's), with
# the host's GPU defaults:
#   devices=[0] strategy=ddp sync_batchnorm=True precision=16-mixed.
# Overrides go after the script; set your data paths with data.train_path=... data.val_path=...
#   bash swav_lewel.sh data.train_path=./datasets data.val_path=./datasets
#   bash swav_lewel.sh "devices=[0,1,2,3]" method_kwargs.lewel_num_maps=8
# On a machine without CUDA, solo-scaca-pretrain applies the host's CPU settings itself
# (accelerator=cpu devices='1' strategy=auto sync_batchnorm=False precision=32
# wandb.enabled=False performance.disable_channel_last=True) and says so once.
#
# solo-scaca-pretrain runs the host's pretraining pipeline whether solo-learn came from pip or
# from a checkout. With a checkout, the host's own script runs this yaml unchanged too (the
# plugin's hydra plugin registers the method):
#   python3 /path/to/solo-learn/main_pretrain.py \
#       --config-path /abs/path/to/scripts/pretrain/cifar \
#       --config-name swav_lewel.yaml
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec solo-scaca-pretrain --config-path "$HERE" --config-name swav_lewel.yaml "$@"
