"""Run an official test.py (stoneMo/SLAVC or stoneMo/EZ-VSL, unmodified) on DATA and record what it computes.
Usage: run_official.py slavc|ezvsl DATA TESTSET OUT.npz [extra test.py args]"""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import offpatch  # noqa: F401
import torch
import torch.nn.functional as F

method, data, testset, out = sys.argv[1:5]
extra = sys.argv[5:]
repo = {"slavc": os.path.join(offpatch.OFFICIAL, "SLAVC"), "ezvsl": os.path.join(offpatch.OFFICIAL, "EZ-VSL")}[method]
work = f"{data}/run_{method}"
os.makedirs(work, exist_ok=True)
for f in ("metadata",):
    if os.path.lexists(f"{work}/{f}"):
        os.remove(f"{work}/{f}")
    os.symlink(f"{data}/metadata", f"{work}/{f}")
os.chdir(work)
sys.path.insert(0, repo)

calls = []
_interp = F.interpolate
def interpolate(x, *a, **k):
    calls.append(x.detach().clone())
    return _interp(x, *a, **k)
F.interpolate = interpolate

import datasets  # noqa: E402
_getitem = datasets.AudioVisualDataset.getitem
def getitem(self, idx):  # name negatives '<video>__<audio>' so they can be matched (naming only)
    out = _getitem(self, idx)
    if self.all_bboxes is not None and len(self.all_bboxes[idx]) == 0:
        out = (*out[:3], f"{out[3]}__{self.audio_files[idx].split('.wav')[0]}")
    return out
if method == "slavc":
    datasets.AudioVisualDataset.getitem = getitem
import utils  # noqa: E402
rec = {"names": [], "pred": [], "conf": [], "thr": [], "stats": None}
if method == "slavc":
    Base = utils.EvaluatorFull
    _update, _final = Base.update, Base.finalize_stats
    def update(self, bb, gt, conf, pred, pred_thr, name):
        if self.results_dir.endswith("/av"):
            rec["names"].append(name); rec["pred"].append(np.array(pred)); rec["conf"].append(conf); rec["thr"].append(pred_thr)
        return _update(self, bb, gt, conf, pred, pred_thr, name)
    def finalize_stats(self):
        s = _final(self)
        if self.results_dir.endswith("/av"):
            rec["stats"] = s
            rec["ciou"] = list(self.ciou_list)
            # the F1 values finalize_stats prints rounded to 0.1 %, recomputed at full precision with its own function
            for iou in self.iou_thrs:
                conf = self.confidence_list
                thrs = list(sorted(conf))[::max(1, len(conf) // 10)]
                pr = [self.calc_precision_recall(self.bb_list, self.ciou_list, conf, t, iou) for t in thrs]
                s[f"maxF1-all@{int(iou * 100)}"] = max(2 * r * p / (r + p) if r + p > 0 else 0. for p, r in pr)
        return s
    Base.update, Base.finalize_stats = update, finalize_stats
else:
    Base = utils.Evaluator
    made = []
    _init, _cal = Base.__init__, Base.cal_CIOU
    def __init__(self):
        _init(self); made.append(self)
    def cal_CIOU(self, infer, gtmap, thres=0.01):
        if self is made[0]:
            rec["pred"].append(np.array(infer)); rec["thr"].append(thres)
        return _cal(self, infer, gtmap, thres)
    Base.__init__, Base.cal_CIOU = __init__, cal_CIOU

import test  # noqa: E402
sys.argv = ["test.py", "--test_data_path", data + "/", "--test_gt_path", data + "/Annotations/", "--model_dir", data + "/ckpt",
            "--experiment_name", method, "--testset", testset, "--workers", "0"] + extra
args = test.get_arguments()
pass  # default threads, as avslkit eval
test.main(args)
if method == "ezvsl":
    ev = made[0]
    rec["stats"] = {"AP50": ev.finalize_AP50(), "cIoU": ev.finalize_cIoU(), "AUC": ev.finalize_AUC()}
    rec["ciou"] = list(ev.ciou)
    import csv
    ids = sorted({r[0] for r in csv.reader(open("metadata/" + {"flickr": "flickr_test.csv", "vggss": "vggss_test.csv"}[testset]))})
    rec["names"] = ids
av = [c for k, c in enumerate(calls) if k % 2 == 0]  # test.py interpolates the AV map, then the OGL map
np.savez(out, names=np.array(rec["names"]), raw=np.concatenate([a[:, 0].numpy() for a in av]), pred=np.stack(rec["pred"]),
         conf=np.array(rec["conf"] if rec["conf"] else [np.nan] * len(rec["pred"]), dtype=np.float64), ciou=np.array(rec["ciou"], dtype=np.float64),
         stats=json.dumps({k: (v if isinstance(v, str) else float(v)) for k, v in rec["stats"].items()}))
print("recorded", len(rec["pred"]), "samples ->", out)
