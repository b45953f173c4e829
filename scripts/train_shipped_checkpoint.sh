#!/usr/bin/env bash
# Reproduces splitnet/assets/resnet56_cifar_split.pt from ../shared (about 10 h on 2 CPU cores).
# The teacher first (fine-tuned from the third-party weights on the training split), then one
# slimmable bottleneck on the teacher's features at layer1 and layer3 (in parallel, one thread each), the light
# encoder at relu (on the image; its decoder rebuilds the stem's output), a merge, then the light encoder
# whose decoder rebuilds layer2's output (about 70 min, then 12 more stage-2 epochs, about 40 min).
# Every training step checkpoints to <out>.<split>.work/ and resumes when rerun with the same flags.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${S:-.venv/bin/splitnet}
R=${R:-runs}
mkdir -p "$R/ckpt" "$R/teacher56"
$S train teacher --model resnet56_cifar --init-weights ../shared/weights/resnet56-4bfd9763.th --epochs 20 \
  --lr 0.02 --weight-decay 1e-4 --warmup-epochs 0.5 --seed 0 --out "$R/teacher56/teacher.pt"
T="$R/teacher56/teacher.pt"
COMMON="--teacher resnet56_cifar --weights $T --latent-channels 32 --hidden-channels 64 --stage1-lmbda 1e-3 \
  --width-rate-scale 2 1 0.5 0.25 --epochs 3"
$S --threads 1 train bottleneck $COMMON --split layer1 --downsample 2 --lmbda 1e-3 --finetune-epochs 6 \
  --out "$R/ckpt/layer1.pt" > "$R/ckpt/layer1.log" 2>&1 &
P1=$!
$S --threads 1 train bottleneck $COMMON --split layer3 --downsample 1 --lmbda 2e-3 --finetune-epochs 8 \
  --out "$R/ckpt/layer3.pt" > "$R/ckpt/layer3.log" 2>&1
wait $P1
$S --threads 2 train bottleneck --teacher resnet56_cifar --weights $T --encoder light --split relu --downsample 2 \
  --latent-channels 16 --hidden-channels 48 --decoder-channels 64 --epochs 2 --finetune-epochs 3 --widths-per-step 1 \
  --stage1-lmbda 1e-5 --lmbda 2e-4 --width-rate-scale 4 2 1 0.5 --finetune-lr 5e-4 --tail-lr-scale 0.1 \
  --out "$R/ckpt/relu.pt" \
  > "$R/ckpt/relu.log" 2>&1
$S checkpoint merge "$R/ckpt/layer1.pt" "$R/ckpt/layer3.pt" "$R/ckpt/relu.pt" --out "$R/ckpt/merged.pt"
$S --threads 2 train bottleneck --teacher resnet56_cifar --weights "$R/ckpt/merged.pt" --encoder light --split layer2 \
  --downsample 2 --latent-channels 16 --hidden-channels 64 --decoder-channels 64 --decoder-depth 3 --epochs 4 \
  --finetune-epochs 12 --widths-per-step 1 --stage1-lmbda 2e-5 --lmbda 3e-4 --lr 2e-3 --finetune-lr 1e-3 \
  --tail-lr-scale 0.3 --out "$R/ckpt/layer2.pt" > "$R/ckpt/layer2.log" 2>&1
# 12 more stage-2 epochs from that run's output, with a fresh schedule (kept on the training holdout)
$S --threads 2 train bottleneck --teacher resnet56_cifar --weights "$R/ckpt/layer2.pt" --init-from "$R/ckpt/layer2.pt" \
  --encoder light --split layer2 --downsample 2 --latent-channels 16 --hidden-channels 64 --decoder-channels 64 \
  --decoder-depth 3 --epochs 0 --finetune-epochs 12 --widths-per-step 1 --stage1-lmbda 2e-5 --lmbda 3e-4 --lr 2e-3 \
  --finetune-lr 5e-4 --tail-lr-scale 0.3 --out splitnet/assets/resnet56_cifar_split.pt > "$R/ckpt/layer2-more.log" 2>&1
