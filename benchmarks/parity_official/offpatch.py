"""Imported first by the harness: patches so the official test.py runs offline with this environment (nothing here is used by avslkit):
resnet18(pretrained=True) → random init (the checkpoint overwrites the AV model; OGL is not compared),
stub modules for cv2 (visualisation only) and timm constants, sklearn.metrics.auc = its trapezoid rule,
PyAV >= 9 resampler API."""
import os
import sys
import types

import numpy as np
import torchvision.models as tvm

_orig = tvm.resnet18
def resnet18(pretrained=False, **kw):
    kw.pop("weights", None)
    return _orig(weights=None, **kw)
tvm.resnet18 = resnet18

sys.modules.setdefault("cv2", types.ModuleType("cv2"))
timm = types.ModuleType("timm"); data = types.ModuleType("timm.data"); const = types.ModuleType("timm.data.constants")
const.IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406); const.IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
sys.modules.update({"timm": timm, "timm.data": data, "timm.data.constants": const})
sk = types.ModuleType("sklearn"); skm = types.ModuleType("sklearn.metrics")
def auc(x, y):  # sklearn.metrics.auc: direction * trapezoid(y, x)
    x, y = np.asarray(x), np.asarray(y)
    dx = np.diff(x)
    direction = -1 if np.any(dx < 0) and np.all(dx <= 0) else 1
    return direction * np.trapezoid(y, x)
skm.auc = auc; sk.metrics = skm
sys.modules.update({"sklearn": sk, "sklearn.metrics": skm})
# PyAV >= 9: AudioResampler.resample returns a list of frames (PyAV 8, which the scripts target: one frame)
import av  # noqa: E402
import av.audio.resampler  # noqa: E402


_Real = av.audio.resampler.AudioResampler

class _Frames:
    def __init__(self, frames, layout_channels):
        self.frames = frames; self.ch = layout_channels
    def to_ndarray(self):
        if not self.frames:
            return np.zeros((self.ch, 0), np.int16)
        return np.concatenate([f.to_ndarray() for f in self.frames], axis=1)

class CompatResampler:
    def __init__(self, format=None, layout=None, rate=None):
        self.real = _Real(format=format, layout=layout, rate=rate)
        self.ch = 1 if layout == 'mono' else 2
    def resample(self, frame):
        return _Frames(self.real.resample(frame), self.ch)

av.audio.resampler.AudioResampler = CompatResampler


OFFICIAL = os.environ.get("AVSL_OFFICIAL", "/tmp/official")  # clones of stoneMo/SLAVC and stoneMo/EZ-VSL
