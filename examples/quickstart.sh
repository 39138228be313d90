#!/usr/bin/env bash
# avslkit quickstart on synthetic data: a toy benchmark, then the four commands of a workspace exactly as
# a user types them (docs/workspace.md). Every path after `synth` comes from the workspace file avslkit.yaml.
# Usage: bash examples/quickstart.sh [SCRATCH_DIR]   (default: quickstart/; about 2-3 minutes on 2 CPU cores)
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HERE/.venv/bin:$PATH"
SCRATCH="${1:-quickstart}"
mkdir -p "$SCRATCH"
cd "$SCRATCH"

# --preset cpu-small: the CPU-scale regime (narrow networks, small crops; avslkit/configs/presets/cpu-small.yaml).
# One epoch keeps the run to seconds; a real run uses the method's defaults on a GPU.
echo "== avslkit synth: a toy benchmark of real mp4 clips with VGG-SS style annotations and split files"
avslkit synth toy --preset cpu-small --clips 200 --seed 0

echo "== the four commands"
avslkit preprocess toy/
avslkit train dmt --labeled 64 --epochs 1 --preset cpu-small
avslkit eval --extended
avslkit viz

echo "== what the workspace knows"
avslkit status

echo "== the Python API: one training batch with ground-truth maps (examples/load_batch.py)"
python "$HERE/examples/load_batch.py" data/train.h5 --annotations toy/annotations.json
echo "quickstart done: open $SCRATCH/$(python -c 'import yaml; print(yaml.safe_load(open("avslkit.yaml"))["last_report"])')"
