#!/bin/bash
# Device run 2 of issue 14: the target with small exit-loss weights w at every stage
# boundary (run 1's w = 0.2 left the exit after layer 2 only 0.05 nats behind the final
# head). Two streams share the GPU; w = 0.005 runs twice to check reproducibility.
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/training"
mkdir -p /tmp/r
one() {  # $1 = tag, $2 = exit weight
    python3 train.py --device cuda --fp16 --steps 1500 --exit-weight "$2" \
        --out "$OUT/$1.npz" --report "/tmp/r/$1.json" 2>&1 | grep -E "^step +(0|1499) |held-out at|exit" | grep -v -i warn
}
( one w005 0.005; one w001 0.001 ) > /tmp/r/streamA.txt &
( one w02 0.02; one w005b 0.005 ) > /tmp/r/streamB.txt &
wait
cat /tmp/r/streamA.txt /tmp/r/streamB.txt | grep -E "held-out at step 1500|^step +1499"
python3 - <<'PY'
import json, glob, hashlib, os
for f in sorted(glob.glob(os.environ["OUT"] + "/*.npz")):
    print(f.split("/")[-1], hashlib.sha256(open(f, "rb").read()).hexdigest()[:16])
for f in sorted(glob.glob("/tmp/r/*.json")):
    m = json.load(open(f)); h = m["heldout"]; g = m["greedy"]
    print(f.split("/")[-1], m["train_seconds"], {k: round(v, 4) for k, v in h.items() if k != "tokens" and not k.startswith("ppl")},
          {k: round(v, 4) for k, v in g.items()})
PY
tar czf "$OUT/reports.tar.gz" -C /tmp/r .
ls -la "$OUT"
