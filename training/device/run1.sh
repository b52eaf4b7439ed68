#!/bin/bash
# Device run 1 of issue 14: train the target (defaults of train.py) and the draft, then
# write PyTorch's expected logits for CI. Everything lands in $OUT.
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/training"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__)'
python3 train.py --device cuda --fp16 --out "$OUT/speed_cycle_n12u3.npz" --report "$OUT/speed_cycle_n12u3.json"
python3 train.py --device cuda --fp16 --d-model 256 --n-heads 4 --d-ff 1024 --n-layers 2 --scheme none \
    --lr 2e-3 --out "$OUT/draft_n2_d256.npz" --report "$OUT/draft_n2_d256.json" \
    --target "$OUT/speed_cycle_n12u3.npz"
for m in speed_cycle_n12u3 draft_n2_d256; do
    python3 make_expected.py --npz "$OUT/$m.npz" --out "$OUT/${m}_expected.npz"
done
ls -la "$OUT"
