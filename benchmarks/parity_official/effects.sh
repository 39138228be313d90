#!/bin/bash
# Effect of each convention where avslkit's defaults differ from SLAVC/EZ-VSL test.py, on the synthetic benchmark.
set -e
W=${1:?usage: effects.sh WORK (the --work of bench_learning.py)}; T=$W/toy; O=$W/conv
mkdir -p $O
E="avslkit --quiet eval --test $W/test.h5 --annotations $T/annotations.json --test-list $T/test.csv --extended"
R=$W/runs/slavc
# maps computed by the model (one per inference setting)
$E $R --save-maps --out $O/default.json
$E $R --set inference.use_momentum_eval=false --save-maps --out $O/online.json
$E $R --set inference.decoder=pil --set inference.float_rule=reference --set inference.int16_scale=32767 --set inference.spectrogram_backend=scipy --save-maps --out $O/refinputs.json
$E $R --preset slavc-test --save-maps --out $O/slavc_test.json
$E $R --preset ezvsl-test --save-maps --out $O/ezvsl_test.json
# re-scored from the default maps (scoring conventions only)
M="--maps $O/default.maps.npz"
$E $M --set upsample=bilinear --out $O/bilinear.json
$E $M --set map_scale=tau_bounds --binarize absolute:0.5 --out $O/taubounds_abs.json
$E $M --set confidence_dtype=float32 --out $O/conf32.json
# audio window: the test store cut with window_rule=truncate
if [ ! -f $W/test_trunc.h5 ]; then
  avslkit --quiet preprocess $T/test_videos.txt --out $W/test_trunc.h5 --root $T/videos --timestamps $T/timestamps.csv --labels $T/annotations.json --workers 2 --frame-size 128 --set window_rule=truncate
  cp $W/test.h5.extended.csv $W/test_trunc.h5.extended.csv; cp $W/test.h5.extended.json $W/test_trunc.h5.extended.json
fi
avslkit --quiet eval $R --test $W/test_trunc.h5 --annotations $T/annotations.json --test-list $T/test.csv --extended --save-maps --out $O/truncate.json
O=$O python - <<'PY'
import json, os

import numpy as np

from avslkit.metrics.maps import upsample_maps, minmax_normalize, binarize
O = os.environ["O"]
rows = ["default", "online", "refinputs", "truncate", "bilinear", "taubounds_abs", "conf32", "slavc_test", "ezvsl_test"]
print(f"{'variant':<14} {'LocAcc':>7} {'cIoU':>7} {'AUC':>7} {'AP':>7} {'maxF1':>7}")
for r in rows:
    m = json.load(open(f"{O}/{r}.json"))
    print(f"{r:<14} {100*m['locacc']:7.2f} {100*m['mean_ciou']:7.2f} {100*m['auc']:7.2f} {100*m['ap']:7.2f} {100*m['max_f1']:7.2f}")
d = np.load(f"{O}/default.maps.npz")["maps"]
for a, b in (("default", "online"), ("default", "refinputs"), ("default", "truncate")):
    x, y = np.load(f"{O}/{a}.maps.npz")["maps"], np.load(f"{O}/{b}.maps.npz")["maps"]
    print(f"maps {a} vs {b}: max |diff| {np.abs(x - y).max():.3g}, mean |diff| {np.abs(x - y).mean():.3g} (cos/tau units)")
bi = binarize(minmax_normalize(upsample_maps(d, 224, "bicubic")), "relative")
bl = binarize(minmax_normalize(upsample_maps(d, 224, "bilinear")), "relative")
print(f"pixels flipped bicubic vs bilinear under relative: {100 * (bi != bl).mean():.2f}% (maps {d.shape})")
PY
