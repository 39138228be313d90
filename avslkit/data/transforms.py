"""Image transforms (torchvision ``transforms.v2``) that carry boxes and maps along.

Every transform here is a ``v2`` pipeline called on a dict::

    out = transform({"image": img, "boxes": BoundingBoxes(...), "mask": Mask(...)})

``image`` is a PIL image or a uint8 ``tv_tensors.Image``; ``boxes`` (XYXY, pixel coordinates of
that image) and ``mask`` (H×W) are optional and go through exactly the same geometric operations
as the pixels (torchvision does the geometry; nothing is hand-written here). So ground-truth maps
and DMT/XPL pseudo-labels follow the augmented view.

Registered names (``IMAGE_TRANSFORMS``; ``build_image_transform(name, image_size=224, ...)``):

- ``train``: resize the shorter side to ``int(1.1·S)`` (246 for S = 224, bicubic), random crop S,
  horizontal flip, float, ImageNet mean/std — the EZ-VSL/SLAVC training transform.
- ``weak``: the same geometry (resize, crop, flip) without photometric changes; DMT's "weak"
  augmentation, identical to ``train`` and registered so configs can say what they mean.
- ``strong``: ``train`` + RandAugment (2 ops, magnitude 9). Its geometric ops (shear, translate,
  rotate) are applied to boxes and masks too (``BoxAwareRandAugment``).
- ``strong_photometric``: ``train`` + RandAugment restricted to photometric ops, so a map
  predicted on the weak view of the same crop stays aligned.
- ``test``: resize to S×S (bicubic, aspect not kept), float, ImageNet mean/std. Normalised box
  coordinates are unchanged by it (``PRESERVES_NORMALISED_GEOMETRY``).

Interpolation is bicubic with antialiasing; PIL inputs reproduce the references' PIL pipeline
pixel for pixel; uint8 tensor inputs use torch's bicubic (measured: at most 1 grey level from PIL).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import PIL.Image
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._auto_augment import _get_fill
from torchvision.transforms.v2._utils import check_type, is_pure_tensor

from avslkit.errors import AvslError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_TRANSFORMS",
    "PRESERVES_NORMALISED_GEOMETRY",
    "BoxAwareRandAugment",
    "build_image_transform",
    "default_resize",
    "normalize_images",
    "ToNormalizedFloat",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 1.1  # EZ-VSL/SLAVC: Resize(int(224 * 1.1)) = 246 before RandomCrop(224)
BICUBIC = v2.InterpolationMode.BICUBIC

_GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def default_resize(image_size: int, ratio: float = RESIZE_RATIO) -> int:
    """Shorter-side size before the random crop (246 for 224, 123 for 112)."""
    return int(image_size * ratio)


class BoxAwareRandAugment(v2.RandAugment):
    """RandAugment whose geometric ops also move bounding boxes and masks.

    torchvision's RandAugment refuses boxes/masks; this samples ops exactly as RandAugment does
    and applies geometric ops (through ``v2.functional.affine``/``rotate``, which dispatch on the
    tv_tensor type) to every image, box and mask in the sample, photometric ops to images only.
    ``geometric=False`` drops the geometric ops from the search space (photometric-only).
    """

    def __init__(
        self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, geometric: bool = True, **kw: Any
    ):
        super().__init__(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=num_magnitude_bins, **kw)
        self.geometric = geometric
        if not geometric:
            self._AUGMENTATION_SPACE = {
                k: v for k, v in v2.RandAugment._AUGMENTATION_SPACE.items() if k not in _GEOMETRIC_OPS
            }

    def forward(self, *inputs: Any) -> Any:
        flat, spec = tree_flatten(inputs if len(inputs) > 1 else inputs[0])
        needs = self._needs_transform_list(flat)
        images = [
            i for i, (x, n) in enumerate(zip(flat, needs))
            if n and check_type(x, (tv_tensors.Image, PIL.Image.Image, is_pure_tensor, tv_tensors.Video))
        ]
        if len(images) != 1:
            raise TypeError(f"BoxAwareRandAugment needs exactly one image in the sample, found {len(images)}")
        others = [
            i for i, (x, n) in enumerate(zip(flat, needs))
            if n and isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask))
        ]
        height, width = F.get_size(flat[images[0]])
        for _ in range(self.num_ops):
            op, (magnitudes_fn, signed) = self._get_random_item(self._AUGMENTATION_SPACE)
            magnitudes = magnitudes_fn(self.num_magnitude_bins, height, width)
            magnitude = 0.0
            if magnitudes is not None:
                magnitude = float(magnitudes[self.magnitude])
                if signed and torch.rand(()) <= 0.5:
                    magnitude *= -1
            if op in _GEOMETRIC_OPS:
                for i in images + others:
                    flat[i] = self._geometric(flat[i], op, magnitude)
            else:
                i = images[0]
                flat[i] = self._apply_image_or_video_transform(
                    flat[i], op, magnitude, interpolation=self.interpolation, fill=self._fill
                )
        return tree_unflatten(flat, spec)

    def _geometric(self, x: Any, op: str, magnitude: float) -> Any:
        """The same geometric op as RandAugment's, on any tv_tensor (boxes and masks included)."""
        fill = _get_fill(self._fill, type(x))
        interp = v2.InterpolationMode.NEAREST if isinstance(x, tv_tensors.Mask) else self.interpolation
        if op == "Rotate":
            return F.rotate(x, angle=magnitude, interpolation=interp, fill=fill)
        shear_deg = math.degrees(math.atan(magnitude))
        params = {
            "ShearX": dict(translate=[0, 0], shear=[shear_deg, 0.0], center=[0, 0]),
            "ShearY": dict(translate=[0, 0], shear=[0.0, shear_deg], center=[0, 0]),
            "TranslateX": dict(translate=[int(magnitude), 0], shear=[0.0, 0.0]),
            "TranslateY": dict(translate=[0, int(magnitude)], shear=[0.0, 0.0]),
        }[op]
        return F.affine(x, angle=0.0, scale=1.0, interpolation=interp, fill=fill, **params)


class ToNormalizedFloat(v2.Transform):
    """uint8 image → float ``(x/255 - mean)/std``; boxes and masks pass through unchanged.

    Same values as ``ToDtype(float32, scale=True)`` + ``Normalize`` (to float rounding), computed
    as one in-place ``x·a + b`` on the converted copy: ~6× cheaper per 224² image on a CPU worker.
    """

    _transformed_types = (tv_tensors.Image, is_pure_tensor)

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        std_t = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1) / std_t

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype != torch.uint8:
            raise TypeError(f"ToNormalizedFloat expects a uint8 image, got {inpt.dtype}")
        out = inpt.as_subclass(torch.Tensor).to(torch.float32)
        out.mul_(self._scale.to(out.device)).add_(self._shift.to(out.device))
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


class ReferenceNormalizedFloat(ToNormalizedFloat):
    """uint8 image → ``(x/255 − mean)/std`` in the operation order of torchvision's v1 ``ToTensor`` +
    ``Normalize`` (divide by 255, subtract, divide), as the EZ-VSL/SLAVC scripts: their exact floats."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype != torch.uint8:
            raise TypeError(f"ReferenceNormalizedFloat expects a uint8 image, got {inpt.dtype}")
        out = inpt.as_subclass(torch.Tensor).to(torch.float32).div(255)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=out.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=out.device).view(-1, 1, 1)
        out.sub_(mean).div_(std)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


#: How a uint8 image becomes normalised float: "fused" (one x·a + b, ~6× cheaper) or "reference"
#: (ToTensor then Normalize; differs from fused by float rounding only).
FLOAT_RULES: dict[str, type[ToNormalizedFloat]] = {"fused": ToNormalizedFloat, "reference": ReferenceNormalizedFloat}


def _to_normalised_float(mean: tuple[float, ...], std: tuple[float, ...], normalize: bool,
                         float_rule: str = "fused") -> list[v2.Transform]:
    """Final steps: to a tensor image, then (``normalize``) float with ImageNet mean/std by ``float_rule``.

    ``normalize=False`` leaves a uint8 tensor image, 4× less to ship from workers; finish it
    batched on the device with ``normalize_images``.
    """
    if float_rule not in FLOAT_RULES:
        raise AvslError(f"unknown image float rule '{float_rule}'; choose one of {', '.join(FLOAT_RULES)}")
    tail: list[v2.Transform] = [v2.ToImage()]
    if normalize:
        tail.append(FLOAT_RULES[float_rule](mean, std))
    return tail


def normalize_images(
    images: torch.Tensor, device: torch.device | str | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> torch.Tensor:
    """B×3×H×W uint8 batch (from transforms built with ``normalize=False``) → normalised float,
    on ``device``; the same values as the in-worker ``ToNormalizedFloat``."""
    x = images.to(device if device is not None else images.device, non_blocking=True).as_subclass(torch.Tensor)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    shift = -torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) / std_t
    return x.to(torch.float32).mul_(1.0 / (255.0 * std_t)).add_(shift)


def _train_geometry(image_size: int, resize: int | None) -> list[v2.Transform]:
    return [
        v2.Resize(resize or default_resize(image_size), interpolation=BICUBIC, antialias=True),
        v2.RandomCrop(image_size),
        v2.RandomHorizontalFlip(),
    ]


def train_transform(
    image_size: int = 224, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD, normalize: bool = True,
    float_rule: str = "fused",
) -> v2.Compose:
    """EZ-VSL/SLAVC training view: shorter side → resize, random crop, flip, normalise."""
    return v2.Compose(_train_geometry(image_size, resize) + _to_normalised_float(mean, std, normalize, float_rule))


def strong_transform(
    image_size: int = 224, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD, normalize: bool = True,
    num_ops: int = 2, magnitude: int = 9, geometric: bool = True, float_rule: str = "fused",
) -> v2.Compose:
    """DMT strong view: the training view plus RandAugment (boxes/masks follow geometric ops)."""
    return v2.Compose(
        _train_geometry(image_size, resize)
        + [BoxAwareRandAugment(num_ops=num_ops, magnitude=magnitude, geometric=geometric)]
        + _to_normalised_float(mean, std, normalize, float_rule)
    )


def strong_photometric_transform(**kw: Any) -> v2.Compose:
    """DMT strong view with photometric-only RandAugment (pseudo-labels need no re-warping)."""
    kw["geometric"] = False
    return strong_transform(**kw)


def eval_transform(
    image_size: int = 224, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD, normalize: bool = True,
    float_rule: str = "fused",
) -> v2.Compose:
    """Evaluation view: resize to S×S (aspect not kept), normalise. ``resize`` is accepted (and
    unused) so one option set can configure every view."""
    return v2.Compose(
        [v2.Resize((image_size, image_size), interpolation=BICUBIC, antialias=True)]
        + _to_normalised_float(mean, std, normalize, float_rule)
    )


IMAGE_TRANSFORMS: dict[str, Callable[..., v2.Compose]] = {
    "train": train_transform,
    "weak": train_transform,
    "strong": strong_transform,
    "strong_photometric": strong_photometric_transform,
    "test": eval_transform,
}

# Transforms after which a box's coordinates normalised by the frame size are unchanged (so the
# dataset can rasterise ground truth from the annotation values themselves, exactly as the
# reference evaluation does, instead of from float-rounded transformed boxes).
PRESERVES_NORMALISED_GEOMETRY = frozenset({"test"})


def build_image_transform(name: str, image_size: int = 224, **opts: Any) -> v2.Compose:
    """The registered transform ``name`` for S = ``image_size`` (options: resize, mean, std,
    normalize, and for strong views num_ops, magnitude)."""
    try:
        factory = IMAGE_TRANSFORMS[name]
    except KeyError:
        raise AvslError(f"unknown image transform '{name}'; choose one of {', '.join(sorted(IMAGE_TRANSFORMS))}") from None
    return factory(image_size=image_size, **opts)
