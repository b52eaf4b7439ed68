#!/bin/bash
# Device run 4 of issue 30: a second seed (1: other initial weights and other batches) of the
# shipped family's recipe (3000 steps) at N = 6, 12 and 24, all three sharing the GPU, to
# measure the run-to-run spread that the gaps between depths must beat. Reports only.
# Usage (from the repository root): OUT=dir training/device/depth4.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name --format=csv,noheader
train() {  # $1 = N
    local name=speed_cycle_n${1}u3_steps3000_seed1 t0=$SECONDS
    timeout 540 python3 train.py --device cuda --fp16 --steps 3000 --seed 1 \
        --n-layers "$1" --unique-layers 3 --out "/tmp/$name.npz" --report "$OUT/$name.json" \
        > "/tmp/$name.stdout" 2>&1
    echo "$name exit $? wall $((SECONDS - t0)) s $(grep -E 'held-out at step (1500|3000)' $OUT/$name.log | tr -s ' ' | tr '\n' '|')"
}
for n in 6 12 24; do train $n & done
wait
ls -la "$OUT"
