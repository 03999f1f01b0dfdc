#!/usr/bin/env bash
# Trains LeNet (configs/lenet/lenet.yaml) twice for 1,000 iterations, with its SGD solver and
# with Adam (base_lr 0.001, fixed lr, as Caffe's lenet_solver_adam.prototxt), then draws both
# runs on the same axes: docs/images/lenet_sgd_vs_adam.png.
#   scripts/compare_lenet_solvers.sh [WORKDIR]      (default: a new temporary directory)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
SHORT='max_iter: 1000\ntest_interval: 100\ndisplay: 20\nsnapshot: 0\n'
{ printf "$SHORT"; printf 'snapshot_prefix: %s/sgd\n' "$WORK"
  grep -v -E '^(max_iter|test_interval|display|snapshot|snapshot_prefix):' \
    "$ROOT/configs/lenet/lenet.yaml"; } > "$WORK/sgd.yaml"
{ printf "$SHORT"; printf 'snapshot_prefix: %s/adam\n' "$WORK"
  printf 'type: Adam\nmomentum2: 0.999\n'
  grep -v -E '^(max_iter|test_interval|display|snapshot|snapshot_prefix|base_lr|lr_policy|gamma|power|weight_decay):' \
    "$ROOT/configs/lenet/lenet.yaml"
  printf 'base_lr: 0.001\nlr_policy: fixed\n'; } > "$WORK/adam.yaml"
for run in sgd adam; do
  caffelite train "$WORK/$run.yaml" --no-progress --quiet
done
caffelite plot "$WORK/sgd.metrics.jsonl" "$WORK/adam.metrics.jsonl" --smooth 5 --title "LeNet on the bundled MNIST sample, 1,000 iterations: SGD vs Adam" \
  -o "$ROOT/docs/images/lenet_sgd_vs_adam.png"
