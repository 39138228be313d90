"""Synthetic frames/ + audio/ dumps, VGG-SS-style and Flickr-style annotations, and random official-format checkpoints."""
import json, os, sys, shutil
import numpy as np
from PIL import Image
import scipy.io.wavfile as wf
import torch

root = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
rng = np.random.default_rng(seed)
shutil.rmtree(root, ignore_errors=True)
for d in ("frames", "audio", "metadata", "Annotations"):
    os.makedirs(f"{root}/{d}")
sizes = [(320, 240), (256, 256), (500, 375), (240, 320), (224, 224), (640, 360)]
lengths = [160000, 160001, 47999, 48001, 80003, 30001, 160000, 96001, 48000, 112345]
ids = [f"clip{k:03d}_{seed}" for k in range(14)]
extra = [f"extra{k:03d}_{seed}" for k in range(4)]  # outside the test list: real negatives
ann = []
for k, cid in enumerate(ids + extra):
    w, h = sizes[k % len(sizes)]
    small = rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255
    img = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    if k == 3:
        img = img.convert("L")  # a greyscale JPEG: the references convert it to RGB
    img.save(f"{root}/frames/{cid}.jpg", quality=int(rng.integers(70, 96)))
    n = lengths[k % len(lengths)] + int(rng.integers(0, 3))
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(n)
    if k == 5:
        x[:] = 0  # a silent clip (the references keep it)
    if k == 6:
        x[100] = -1.2  # a sample at -32768
    wf.write(f"{root}/audio/{cid}.wav", 16000, np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16))
    nb = 1 + int(rng.integers(0, 3))
    boxes = []
    for _ in range(nb):
        x1, y1 = rng.uniform(-0.05, 0.4, 2)
        bw, bh = rng.uniform(0.15, 0.9, 2)
        boxes.append([float(x1), float(y1), float(min(x1 + bw, 1.05)), float(min(y1 + bh, 1.0))])
    ann.append({"file": cid, "class": ["dog", "car", "piano"][k % 3], "bbox": boxes})
    # Flickr XML: boxes on the 256 grid, 1-3 annotators
    objs = "".join(f"<object><bbox><name>{j}</name><xmin>{int(np.clip(b[0],0,1)*256)}</xmin><ymin>{int(np.clip(b[1],0,1)*256)}</ymin>"
                   f"<xmax>{int(np.clip(b[2],0,1)*256)}</xmax><ymax>{int(np.clip(b[3],0,1)*256)}</ymax></bbox></object>"
                   for j, b in enumerate(boxes))
    open(f"{root}/Annotations/{cid}.xml", "w").write(f"<annotation>{objs}</annotation>")
json.dump(ann, open(f"{root}/metadata/vggss.json", "w"))
for name in ("vggss_test.csv", "flickr_test.csv"):
    open(f"{root}/metadata/{name}", "w").write("".join(f"{i}\n" for i in ids))
neg = [(e, e) for e in extra] + [(ids[i], ids[(i + 5) % len(ids)]) for i in range(0, len(ids), 2)]
for name in ("vggss_test_plus_silent.csv", "flickr_test_plus_silent.csv"):
    open(f"{root}/metadata/{name}", "w").write("video,audio,label\n" + "".join(f"{v},{a},non-sounding\n" for v, a in neg))

# Random official-format checkpoints (momentum encoders perturbed so the two SLAVC branches differ).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import offpatch  # noqa: F401  (resnet18 without downloads)
torch.manual_seed(seed)
sys.path.insert(0, os.path.join(offpatch.OFFICIAL, "SLAVC"))
from model import SLAVC  # noqa: E402
m = SLAVC(0.03, 512, 0.9, 0.0, 0.999, 0.999, False)
with torch.no_grad():
    for name, p in m.named_parameters():
        if name.startswith("momentum_"):
            p.add_(0.02 * torch.randn_like(p))
os.makedirs(f"{root}/ckpt/slavc", exist_ok=True)
torch.save({"model": {"module." + k: v for k, v in m.state_dict().items()}, "epoch": 20}, f"{root}/ckpt/slavc/latest.pth")
sys.path.remove(os.path.join(offpatch.OFFICIAL, "SLAVC")); del sys.modules["model"]
sys.path.insert(0, os.path.join(offpatch.OFFICIAL, "EZ-VSL"))
from model import EZVSL  # noqa: E402
e = EZVSL(0.03, 512)
os.makedirs(f"{root}/ckpt/ezvsl", exist_ok=True)
torch.save({"model": {"module." + k: v for k, v in e.state_dict().items()}, "epoch": 20}, f"{root}/ckpt/ezvsl/best.pth")
print("data in", root)
