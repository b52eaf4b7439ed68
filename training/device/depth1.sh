#!/bin/bash
# Device run 1 of issue 30 (the depth family): U = 3 weight sets, d_model 384, train.py's
# default recipe (1500 steps x 128 x 256 bytes, every stage boundary an exit at w = 0.005)
# at N = 3, 6 and 24, plus N = 12 again (the shipped default's recipe, to check that it
# reproduces on this card), all four sharing the GPU. Then PyTorch's expected logits for
# CI. Usage (from the repository root): OUT=dir training/device/depth1.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
R=/tmp/depth && mkdir -p $R
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__)'
train() {  # $1 = N, $2 = output .npz
    local name=$(basename "$2" .npz)
    local t0=$SECONDS
    timeout 560 python3 train.py --device cuda --fp16 \
        --n-layers "$1" --unique-layers 3 --out "$2" --report "$R/$name.json" \
        > "$R/$name.stdout" 2>&1
    echo "$name exit $? wall $((SECONDS - t0)) s $(grep -E 'held-out at step 1500' $R/$name.log)"
    grep -E "Error|error:" "$R/$name.stdout" | tail -n 3
}
for n in 3 6 24; do train $n "$OUT/speed_cycle_n${n}u3.npz" & done
train 12 "$R/speed_cycle_n12u3_rerun.npz" &
wait
for n in 3 6 24; do
    python3 make_expected.py --npz "$OUT/speed_cycle_n${n}u3.npz" --out "$R/speed_cycle_n${n}u3_expected.npz"
done
sha256sum "$OUT"/*.npz "$R"/*rerun.npz
tar czf "$OUT/depth1.tar.gz" -C $R --exclude='*rerun.npz' .
ls -la "$OUT"
