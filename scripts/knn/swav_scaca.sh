#!/usr/bin/env bash
# k-NN evaluation of a swav_scaca backbone with the plugin's solo-scaca-knn (the host's
# WeightedKNNClassifier, on GPU or CPU: the host's main_knn.py needs CUDA).
# Replaces the host's scripts/knn/imagenet-100/knn.sh (python3 main_knn.py ...), with the same
# ImageNet-100 paths, batch size, workers and k values as defaults.
#
# Usage: bash swav_scaca.sh CKPT [solo-scaca-knn options]
#   CKPT: a swav_scaca pretraining checkpoint (its args.json beside it, as the host's Checkpointer
#   writes) or a backbone written by solo-scaca-export. The host's script takes the checkpoint's
#   folder instead.
# Data paths and image size: TRAIN_PATH, VAL_PATH and IMAGE_SIZE in the environment, or options
# after CKPT (a later option wins), e.g.
#   TRAIN_PATH=/data/in100/train VAL_PATH=/data/in100/val bash swav_scaca.sh model.ckpt
#   bash swav_scaca.sh model.ckpt --distance euclidean --temperature 0.1 --k 20 200
# One distance and one temperature per run (the host's script sweeps several):
#   solo-scaca-knn --help lists the options.
set -euo pipefail
CKPT="${1:?usage: bash swav_scaca.sh CKPT [solo-scaca-knn options]}"
shift
exec solo-scaca-knn \
    --ckpt "$CKPT" \
    --train-path "${TRAIN_PATH:-./datasets/imagenet-100/train}" \
    --val-path "${VAL_PATH:-./datasets/imagenet-100/val}" \
    --image-size "${IMAGE_SIZE:-224}" \
    --batch-size 16 \
    --num-workers 10 \
    --k 1 2 5 10 20 50 100 200 \
    --distance cosine \
    --temperature 0.07 \
    "$@"
