#!/bin/bash
# Device run 2 of issue 30: a diagnostic, not shipped. Run 1 found held-out loss flat from
# N = 6 to N = 24 at train.py's token budget (1500 steps x 32,768 bytes). Is that the token
# budget? Train N = 3, 12 and 24 (U = 3, d 384, same recipe) for twice the steps (3000;
# the same warm-up, the cosine over the longer run), all three sharing the GPU; keep the
# reports and logs only. Usage (from the repository root): OUT=dir training/device/depth2.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
R=/tmp/depth2 && mkdir -p $R
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
train() {  # $1 = N
    local name=speed_cycle_n${1}u3_steps3000 t0=$SECONDS
    timeout 570 python3 train.py --device cuda --fp16 --steps 3000 \
        --n-layers "$1" --unique-layers 3 --out "$R/$name.npz" --report "$R/$name.json" \
        > "$R/$name.stdout" 2>&1
    echo "$name exit $? wall $((SECONDS - t0)) s $(grep -E 'held-out at step' $R/$name.log | tr -s ' ' | tr '\n' '|')"
    grep -E "Error|error:" "$R/$name.stdout" | tail -n 3
}
for n in 3 12 24; do train $n & done
wait
tar czf "$OUT/depth2.tar.gz" -C $R --exclude='*.npz' .
ls -la "$OUT"
