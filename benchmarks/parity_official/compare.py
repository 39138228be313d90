"""avslkit (preset) vs the official test.py on the same data and weights: max |difference| of maps and metrics.
Usage: compare.py DATA slavc|ezvsl TESTSET OFFICIAL.npz AVSLKIT_METRICS.json"""
import csv
import json
import os
import sys
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from avslkit.metrics.maps import minmax_normalize, scale_maps, upsample_maps

data, method, testset, off_path, ak_path = sys.argv[1:6]
off = np.load(off_path)
ak = json.load(open(ak_path))
cfg = ak["protocol"]
z = np.load(ak_path.replace(".json", ".maps.npz"))
ak_maps = dict(zip([str(n) for n in z["names"]], z["maps"]))
rows = {r["name"]: r for r in csv.DictReader(open(ak_path.replace(".json", ".samples.csv")))}
names = [str(n) for n in off["names"]]
missing = [n for n in names if n not in ak_maps]
assert not missing, missing
assert len(names) == len(ak_maps), (len(names), len(ak_maps))
raw_ak = np.stack([ak_maps[n] for n in names])
up = upsample_maps(raw_ak, 224, "bicubic" if method == "slavc" else "bilinear")
if method == "slavc":
    pred_ak = scale_maps(up, "tau_bounds", 0.03)
    if "relative" in cfg["binarize"]:
        pred_ak = minmax_normalize(pred_ak)  # test.py --relative_prediction: normalize_img of the scores
else:
    pred_ak = minmax_normalize(up)
report = {"n": len(names), "maps_7x7_max_abs_diff": float(np.abs(off["raw"] - raw_ak).max()),
          "maps_224_max_abs_diff": float(np.abs(off["pred"] - pred_ak).max())}
pos = [k for k, n in enumerate(names) if "__" not in n]
ciou_ak = np.array([float(rows[names[k]]["ciou"]) for k in pos])
report["ciou_max_abs_diff"] = float(np.abs(off["ciou"][pos] - ciou_ak).max())
if method == "slavc":
    conf_ak = np.array([float(rows[n]["confidence"]) for n in names])
    report["confidence_max_abs_diff"] = float(np.abs(off["conf"] - conf_ak).max())
    st = json.loads(str(off["stats"]))
    pairs = {"AP-all@50": ak["ap"], "AP-all@75": ak["at_iou_0.75"]["ap"], "maxF1-all@50": ak["max_f1"],
             "maxF1-all@75": ak["at_iou_0.75"]["max_f1"], "Precision-visible@50": ak["locacc"],
             "Precision-visible@75": ak["at_iou_0.75"]["locacc"], "AUC-visible@50": ak["auc"],
             "AP-visible@50": ak["visible"]["@0.5"]["ap"], "AP-visible@75": ak["visible"]["@0.75"]["ap"]}
    for b in ("small", "medium", "large", "huge"):
        e = ak["by_size"][b]
        pairs.update({f"Precision-{b}@50": e["locacc"], f"AUC-{b}@50": e["auc"], f"AP-{b}@50": e["ap"]})
else:
    st = json.loads(str(off["stats"]))
    pairs = {"AP50": ak["locacc"], "cIoU": ak["mean_ciou"], "AUC": ak["auc"]}
diffs = {}
for k, v in pairs.items():
    o = st.get(k)
    if o is None or (isinstance(o, float) and np.isnan(o)):
        assert v is None, (k, o, v)
        diffs[k] = "both empty"
        continue
    diffs[k] = {"official": o, "avslkit": v, "abs_diff": abs(float(o) - float(v))}
report["metrics"] = diffs
report["max_metric_abs_diff"] = max((d["abs_diff"] for d in diffs.values() if isinstance(d, dict)), default=0.0)
print(json.dumps(report, indent=1))
