#!/bin/bash
# Device run 3 of issue 30, on the machine still warm from run 2 (whose .npz files were in
# /tmp/depth2): N = 6 for 3000 steps like run 2's three, then PyTorch's expected logits of
# all four 3000-step models (the shipped depth family). Run 3 was typed as one command line;
# this file is that line, spelled out. The expected files of run 3 did not come back (the
# tar excluded *.npz), so make_expected.py ran again in two short calls (run 4: n6, n12,
# n24; run 5: n3 -- the working tree may travel only 64 MiB) on the downloaded weights.
R=/tmp/depth2
cp $R/*.npz "$OUT"/
cd "$(dirname "$0")/.."
timeout 400 python3 train.py --device cuda --fp16 --steps 3000 --n-layers 6 --unique-layers 3 \
    --out "$OUT/speed_cycle_n6u3_steps3000.npz" --report $R/speed_cycle_n6u3_steps3000.json > $R/n6.stdout 2>&1
echo n6 exit $?
grep held-out $R/speed_cycle_n6u3_steps3000.log
for f in "$OUT"/*.npz; do
    python3 make_expected.py --npz "$f" --out "$R/$(basename "$f" .npz)_expected.npz"
done
sha256sum "$OUT"/*.npz
tar czf "$OUT/depth3.tar.gz" -C $R --exclude='*.npz' .
