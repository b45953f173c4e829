#!/usr/bin/env bash
# Light-encoder training runs on the accelerator machine (issue 11), prepared so that a session lent one uses its
# few minutes on training, not on setting up. Nothing here runs in tests or CI.
#
# The machine (see the device tool's README) has python3 with torch and CUDA but not splitnet's other
# dependencies, nothing can be fetched there, ../shared does not travel, and a call carries 64 MiB with the
# working tree (~31 MB). So, here, once:
#     PY=.venv/bin/python bash scripts/accelerator/device.sh prepare   # .acc/wheels (cp312 wheels) + .acc/data/train-part{1..4}.npz
# then four device calls back to back (the machine stays warm ~30 s after a call and keeps what was written):
#     run carry [".acc/wheels", ".acc/data/train-part1.npz"]  "bash scripts/accelerator/device.sh stage 1 smoke"
#     run carry [".acc/data/train-part2.npz"]                 "bash scripts/accelerator/device.sh stage 2"
#     run carry [".acc/data/train-part3.npz"]                 "bash scripts/accelerator/device.sh stage 3"
#     run carry [".acc/data/train-part4.npz"], timeout_s 600  "bash scripts/accelerator/device.sh stage 4 train 7"
# `smoke` trains one stage-1 and one stage-2 epoch of each run on part 1 on the GPU (catches a broken setup for
# little device time) and times them; `train MINUTES` joins the parts into the training split, sizes each run's
# epochs from that timing to end within MINUTES (both runs share the GPU), runs them, and leaves in $OUT their
# logs and output checkpoints (cut into 15 MB pieces: a file that comes back is at most 16 MB). Here:
#     cat .../c.pt.part-* > runs/acc/layer2.pt         # then evaluate on the validation split as usual
# DEVICE=cpu runs the same steps on this machine's CPU (to check the script, with OUT set to a folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
ACC=/tmp/splitnet-acc
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-$ACC/out}

CLASSIFIER=(--teacher resnet56_cifar --weights splitnet/assets/resnet56_cifar_split.pt --encoder light
  --split layer2 --downsample 2 --latent-channels 16 --hidden-channels 64 --decoder-channels 96 --decoder-depth 4
  --widths-per-step 1 --stage1-lmbda 2e-5 --lmbda 1e-4 --width-rate-scale 3 1.5 1 0.7 --lr 2e-3
  --finetune-lr 1e-3 --tail-lr-scale 0.3)
DETECTOR=(--teacher tinydet_synth --weights splitnet/assets/tinydet_synth_split.pt --encoder light --split layer1
  --downsample 3 --latent-channels 32 --hidden-channels 16 --decoder-channels 64 --decoder-depth 2
  --widths-per-step 1 --stage1-lmbda 5e-6 --lmbda 2e-4 --lr 2e-3 --finetune-lr 1e-3 --tail-lr-scale 0.3
  --batch-size 64)
TRAIN_IMAGES=29000       # train.npz less the 1,000-image holdout
DETECTION_IMAGES=${DETECTION_IMAGES:-12000}  # LIMIT and DETECTION_IMAGES make a small run (a check on the CPU)

SMOKE_IMAGES=5000        # classifier smoke: --limit, of which 500 are held out
SMOKE_SCENES=2000        # detector smoke: --detection-images, of which 200 are held out

splitnet() {  # killed after LIMIT_S seconds where set (so that the logs still come back within the call)
  PYTHONPATH="$ACC/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout "${LIMIT_S:-0}" "$PY" -m splitnet_cli.main "$@"
}

prepare() {
  rm -rf .acc && mkdir -p .acc/wheels
  "$PY" scripts/accelerator/parts.py split ../shared/data/cifar10/train.npz .acc/data --parts 4
  # splitnet's imports that the machine's image lacks, for its Python 3.12 (compressai needs glibc 2.34)
  for spec in compressai==1.2.8 zstandard==0.25.0 pytorch-msssim==1.0.0 pycocotools==2.0.11; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .acc/wheels "$spec"
  done
  du -sh .acc/wheels .acc/data/*
}

stage() {  # stage K: keep part K (and install the wheels once) where later calls find them
  mkdir -p "$ACC"
  cp ".acc/data/train-part$1.npz" "$ACC/"
  if [ -d "${WHEELS:-.acc/wheels}" ] && [ ! -d "$ACC/site" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$ACC/site" "${WHEELS:-.acc/wheels}"/*.whl
  fi
  ls "$ACC"
}

smoke() {  # one epoch of each stage on part 1, timed: seconds per training image per epoch
  mkdir -p "$OUT"
  local t0 t1 t2
  t0=$(date +%s.%N)
  splitnet --threads 4 train bottleneck "${CLASSIFIER[@]}" --data "$ACC/train-part1.npz" --limit "$SMOKE_IMAGES" \
    --epochs 1 --finetune-epochs 1 --device "$DEVICE" --out "$ACC/smoke/c.pt" > "$OUT/smoke-classifier.log" 2>&1
  t1=$(date +%s.%N)
  splitnet --threads 4 train bottleneck "${DETECTOR[@]}" --data "$ACC/train-part1.npz" \
    --detection-images "$SMOKE_SCENES" --epochs 1 --finetune-epochs 1 --device "$DEVICE" --out "$ACC/smoke/d.pt" \
    > "$OUT/smoke-detector.log" 2>&1
  t2=$(date +%s.%N)
  # 2 epochs of the images and scenes left after the holdout (a tenth), start-up included
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$SMOKE_IMAGES" -v m="$SMOKE_SCENES" \
    'BEGIN { printf "%.6f %.6f\n", (b - a) / (2 * n * 0.9), (c - b) / (2 * m * 0.9) }' > "$ACC/seconds_per_image"
  awk -v n="$TRAIN_IMAGES" -v m="$DETECTION_IMAGES" '{ printf "smoke: classifier %.0f s/epoch, detector %.0f " \
    "s/epoch (full size, estimated)\n", $1 * n, $2 * m * 0.9 }' "$ACC/seconds_per_image" | tee "$OUT/smoke.txt"
  tail -n 5 "$OUT"/smoke-*.log
}

epochs_for() {  # epochs_for SECONDS_PER_IMAGE IMAGES MINUTES: epochs that fit, two runs sharing the GPU (x1.5)
  awk -v s="$1" -v n="$2" -v m="$3" 'BEGIN { e = int(m * 60 / (s * n * 1.5)); print (e < 4 ? 4 : e) }'
}

stages() {  # stages EPOCHS: the options that split them, an eighth (at least one) for stage 1
  echo "--epochs $(($1 / 8 + 1)) --finetune-epochs $(($1 - $1 / 8 - 1))"
}

train() {  # train MINUTES
  mkdir -p "$OUT"
  "$PY" scripts/accelerator/parts.py join "$ACC" "$ACC/train.npz"
  local sc sd ec ed limited=()
  read -r sc sd < "$ACC/seconds_per_image"
  ec=$(stages "$(epochs_for "$sc" "${LIMIT:-$TRAIN_IMAGES}" "$1")")
  ed=$(stages "$(epochs_for "$sd" $((DETECTION_IMAGES * 9 / 10)) "$1")")
  [ -n "${LIMIT:-}" ] && limited=(--limit "$LIMIT")
  echo "classifier: $ec; detector: $ed" | tee "$OUT/plan.txt"
  local -x LIMIT_S=$(( $1 * 60 + 60 ))
  # shellcheck disable=SC2086  # $ec and $ed are option lists
  splitnet --threads 6 train bottleneck "${CLASSIFIER[@]}" "${limited[@]}" --data "$ACC/train.npz" $ec \
    --device "$DEVICE" --out "$ACC/run/c.pt" > "$OUT/classifier.log" 2>&1 &
  local pc=$!
  # shellcheck disable=SC2086
  splitnet --threads 6 train bottleneck "${DETECTOR[@]}" --data "$ACC/train.npz" \
    --detection-images "$DETECTION_IMAGES" $ed --device "$DEVICE" --out "$ACC/run/d.pt" > "$OUT/detector.log" 2>&1 &
  local pd=$!
  wait "$pc" || echo "classifier run ended with $?" | tee -a "$OUT/plan.txt"
  wait "$pd" || echo "detector run ended with $?" | tee -a "$OUT/plan.txt"
  for f in c d; do
    if [ -f "$ACC/run/$f.pt" ]; then split -b 15000000 "$ACC/run/$f.pt" "$OUT/$f.pt.part-"; fi
  done
  grep -h "holdout" "$OUT/classifier.log" "$OUT/detector.log" || true
  ls -la "$OUT"
}

while [ $# -gt 0 ]; do
  case "$1" in
    prepare) prepare; shift ;;
    stage) stage "$2"; shift 2 ;;
    smoke) smoke; shift ;;
    train) train "$2"; shift 2 ;;
    *) echo "device.sh: unknown step '$1' (prepare, stage K, smoke, train MINUTES)" >&2; exit 2 ;;
  esac
done
