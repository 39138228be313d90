#!/usr/bin/env bash
# avslkit quickstart on synthetic data: synth -> preprocess -> extend-testset -> baselines ->
# load a training batch -> train SLAVC briefly -> evaluate it on the extended test set.
# Usage: bash examples/quickstart.sh [OUT_DIR]   (default: quickstart/; about 2-4 minutes on 2 CPU cores)
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HERE/.venv/bin:$PATH"
OUT="${1:-quickstart}"
TOY="$OUT/toy"
mkdir -p "$OUT"

echo "== 1. synthetic toy benchmark (real mp4 clips + VGG-SS style annotations)"
avslkit synth "$TOY" --clips 96 --classes 6 --size 112 --duration 4 --fps 10 --test-fraction 0.25 --size-range 0.25 0.6 --seed 0

echo "== 2. preprocess train and test videos into HDF5 stores"
avslkit preprocess "$TOY/train.txt" --root "$TOY/videos" --out "$OUT/train.h5" \
    --timestamps "$TOY/timestamps.csv" --labels "$TOY/annotations.json" --workers 2 --frame-size 128
avslkit preprocess "$TOY/test_videos.txt" --root "$TOY/videos" --out "$OUT/test.h5" \
    --timestamps "$TOY/timestamps.csv" --labels "$TOY/annotations.json" --workers 2 --frame-size 128
avslkit store info "$OUT/train.h5"

echo "== 3. extended test set (one negative per positive: real off-screen clips + mismatched pairs)"
avslkit extend-testset "$OUT/test.h5" --annotations "$TOY/annotations.json" --real-negatives "$TOY/offscreen.txt"

echo "== 4. a training batch through the Dataset API"
python "$HERE/examples/load_batch.py" "$OUT/train.h5" --annotations "$TOY/annotations.json"

echo "== 5. trivial baselines on the extended test set"
for b in center full; do
  avslkit eval --baseline "$b" --test "$OUT/test.h5" --annotations "$TOY/annotations.json" \
      --test-list "$TOY/test.csv" --extended --out "$OUT/baseline-$b/metrics.json"
done

echo "== 6. train SLAVC for a short CPU run, then evaluate it"
avslkit train slavc --data "$OUT/train.h5" --out "$OUT/runs/slavc" --epochs 1 --batch-size 16 \
    --image-size 112 --workers 0 --device cpu --set model.visual_weights=none
avslkit eval "$OUT/runs/slavc" --test "$OUT/test.h5" --annotations "$TOY/annotations.json" \
    --test-list "$TOY/test.csv" --extended --out "$OUT/runs/slavc/eval/metrics.json"
echo "quickstart done: see $OUT/ (stores, runs/slavc, metrics.json files)"
