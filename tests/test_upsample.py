"""The compiled bicubic upsampler gives torch's CPU `interpolate(bicubic, align_corners=True)` bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from avslkit.metrics._upsample import bicubic_upsample  # noqa: E402
from avslkit.metrics.maps import upsample_maps  # noqa: E402


def _torch(x: np.ndarray, h: int, w: int) -> np.ndarray:
    return F.interpolate(torch.from_numpy(x)[:, None], size=(h, w), mode="bicubic", align_corners=True)[:, 0].numpy()


@pytest.mark.parametrize("shape", [(7, 7), (14, 14), (5, 9), (1, 1), (2, 2), (28, 28), (223, 224)])
def test_bicubic_upsample_is_torch_bit_for_bit(shape):
    rng = np.random.default_rng(sum(shape))
    for scale in (1e-3, 1.0, 1e4):
        x = (rng.normal(size=(4, *shape)) * scale).astype(np.float32)
        x[0] = np.round(x[0])  # ties and integers
        np.testing.assert_array_equal(bicubic_upsample(x, 224, 224), _torch(x, 224, 224), err_msg=f"{shape} {scale}")
    x = rng.normal(size=(2, *shape)).astype(np.float32)
    np.testing.assert_array_equal(bicubic_upsample(x, 61, 97), _torch(x, 61, 97))  # any output size


def test_upsample_maps_numpy_and_tensor_paths_agree():
    x = np.random.default_rng(0).normal(size=(3, 7, 7)).astype(np.float32)
    np.testing.assert_array_equal(upsample_maps(x), upsample_maps(torch.from_numpy(x)))  # compiled vs torch
    np.testing.assert_array_equal(upsample_maps(x, mode="bilinear"),
                                  F.interpolate(torch.from_numpy(x)[:, None], size=(224, 224), mode="bilinear",
                                                align_corners=True)[:, 0].numpy())
