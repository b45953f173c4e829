#!/usr/bin/env bash
# Reproduces splitnet/assets/tinydet_synth_split.pt from ../shared (about 4 h on 2 CPU cores).
# 1. The small detector, trained on 12,000 synthetic scenes of training-split CIFAR objects.
# 2. One slimmable bottleneck per split point (layer2 and layer3 in parallel, one thread each),
#    trained by head distillation (stage 1: the features) then output distillation (stage 2: KL on
#    the heatmaps, weighted L1 on the boxes, plus the detection loss) on 12,000 other synthetic scenes.
# 3. The merge, then an object filter at each split point (threshold: at most 1 % of the
#    held-out frames with objects dropped, and none more than the empty frames it drops need).
# Every training step checkpoints to a .work/ folder beside its output and resumes when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${S:-.venv/bin/splitnet}
R=${R:-runs/det}
B=${B:-$R/long}  # the bottleneck runs
mkdir -p "$R" "$B"
$S --threads 1 train detector --out "$R/tinydet.pt"
COMMON="--teacher tinydet_synth --weights $R/tinydet.pt --detection-images 12000 --latent-channels 32 \
  --hidden-channels 64 --stage1-lmbda 1e-3 --lmbda 1e-3 --width-rate-scale 2 1 0.5 0.25 --epochs 3 \
  --finetune-epochs 12 --batch-size 64"
$S --threads 1 train bottleneck $COMMON --split layer2 --downsample 1 --out "$B/layer2.pt" > "$B/layer2.log" 2>&1 &
P2=$!
$S --threads 1 train bottleneck $COMMON --split layer3 --downsample 1 --out "$B/layer3.pt" > "$B/layer3.log" 2>&1 &
P3=$!
wait $P2 $P3
$S checkpoint merge "$B/layer2.pt" "$B/layer3.pt" --out "$B/merged.pt"
$S --threads 2 train filter --checkpoint "$B/merged.pt" --split layer2 --out "$B/filtered.pt"
$S --threads 2 train filter --checkpoint "$B/filtered.pt" --split layer3 --out "$B/filtered2.pt"
# 4. A light encoder on the image rebuilding layer1's output (1.6-13.5 % of the MACs on the device; about
#    45 min on 2 cores); the output keeps the layer2 and layer3 splits and their filters.
$S --threads 2 train bottleneck --teacher tinydet_synth --weights "$B/filtered2.pt" --encoder light --split layer1 \
  --downsample 3 --latent-channels 32 --hidden-channels 16 --decoder-channels 64 --decoder-depth 2 --epochs 3 \
  --finetune-epochs 16 --widths-per-step 1 --stage1-lmbda 5e-6 --lmbda 2e-4 --lr 2e-3 --finetune-lr 1e-3 \
  --tail-lr-scale 0.3 --batch-size 64 --detection-images 12000 --work-dir "$B/light1.work" \
  --out splitnet/assets/tinydet_synth_split.pt
# The demo scenes: 40 scenes of validation objects.
$S data detection --objects ../shared/data/cifar10/val.npz --scenes 40 --seed 7 --out splitnet/assets/detection_demo.npz
