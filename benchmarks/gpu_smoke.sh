#!/usr/bin/env bash
# GPU smoke test: one SLAVC and one DMT epoch slice at the papers' image size with bf16 autocast and
# channels_last; prints step time, data-wait fraction and peak memory per method.
#   bash benchmarks/gpu_smoke.sh                    # CUDA, bf16, channels_last, batch 128, 224 px
#   DEVICE=cpu AMP=none BATCH=8 SIZE=96 STEPS=3 CLIPS=48 bash benchmarks/gpu_smoke.sh   # dry run of the script on CPU
# Random init (no ImageNet weights needed); data: a synthetic benchmark made on the spot.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"; AMP="${AMP:-bf16}"; BATCH="${BATCH:-128}"; SIZE="${SIZE:-224}"; STEPS="${STEPS:-30}"
CLIPS="${CLIPS:-600}"; WORKERS="${WORKERS:-8}"; WORK="${WORK:-${TMPDIR:-/tmp}/avslkit_gpu_smoke}"
CL=(--no-channels-last); [ "$DEVICE" != cpu ] && CL=(--channels-last)
mkdir -p "$WORK"
avsl() { "$PY" -m avslkit --quiet "$@"; }
if [ ! -f "$WORK/train.h5" ]; then
  avsl synth "$WORK/toy" --clips "$CLIPS" --classes 8 --size 256 --duration 4 --fps 10 --test-fraction 0.05 --workers "$(nproc)"
  avsl preprocess "$WORK/toy/train.txt" --root "$WORK/toy/videos" --out "$WORK/train.h5" --timestamps "$WORK/toy/timestamps.csv" \
      --labels "$WORK/toy/annotations.json" --workers "$(nproc)"
fi
common=(--data "$WORK/train.h5" --device "$DEVICE" --amp "$AMP" "${CL[@]}" --batch-size "$BATCH" --image-size "$SIZE"
        --workers "$WORKERS" --max-steps "$STEPS" --epochs 100 --set model.visual_weights=none --set log.every_steps=1)
rm -rf "$WORK/runs"
avsl train slavc --out "$WORK/runs/slavc" "${common[@]}"
avsl train dmt --out "$WORK/runs/dmt" "${common[@]}" --annotations "$WORK/toy/annotations.json" --labeled "$((BATCH))" \
    --val-labeled "$((BATCH / 4 > 2 ? BATCH / 4 : 2))" --set ssl.warmup_unit=labeled --set ssl.warmup_epochs=1 \
    --set ssl.log_val_quality=false --set validation.held_out=false
"$PY" - "$WORK" "$DEVICE" "$AMP" "$BATCH" "$SIZE" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
work, device, amp, batch, size = sys.argv[1:]
print(f"\ndevice {device}, amp {amp}, channels_last {device != 'cpu'}, batch {batch}, {size} px")
print("| method | steps timed | step s (median, after 3) | samples/s | data-wait fraction | peak memory MiB |")
print("|---|---:|---:|---:|---:|---:|")
for method in ("slavc", "dmt"):
    log = [json.loads(l) for l in (Path(work) / "runs" / method / "log.jsonl").read_text().splitlines() if l.strip()]
    steps = [r for r in log if r["type"] == "step"][3:] or [r for r in log if r["type"] == "step"]
    step_s = statistics.median(r["step_s"] for r in steps)
    wait = sum(r["data_wait_s"] for r in steps) / max(1e-9, sum(r["step_s"] for r in steps))
    peak = max((r.get("peak_memory_mib") or 0 for r in log if r["type"] == "epoch"), default=0)
    print(f"| {method} | {len(steps)} | {step_s:.3f} | {int(batch) / step_s:.0f} | {wait:.2f} | {peak or '–'} |")
PYEOF
