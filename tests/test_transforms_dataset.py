"""Image transforms carry boxes/masks; AVDataset over a store; collate; seeded worker loaders."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import PIL.Image
import pytest
import scipy.signal
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from avslkit.data.dataset import AVDataset, AudioFeaturizer, build_loader, collate_av, rasterize_boxes
from avslkit.data.store import ClipRecord, StoreAttrs, write_store
from avslkit.data.transforms import (
    IMAGE_TRANSFORMS, IMAGENET_MEAN, IMAGENET_STD, BoxAwareRandAugment, build_image_transform, normalize_images,
)
from avslkit.errors import AvslError

H, W = 96, 128  # stored frame size (not square, so resize changes aspect)
RED = (230, 20, 20)


def frame_with_rect(norm_box: tuple[float, float, float, float], seed: int = 0) -> np.ndarray:
    """Grey-green textured frame with a solid red rectangle at a normalised xyxy box."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), dtype=np.uint8)
    img[..., 0] = rng.integers(40, 90, (H, W))
    img[..., 1] = rng.integers(110, 170, (H, W))
    img[..., 2] = rng.integers(60, 120, (H, W))
    x1, y1, x2, y2 = (int(round(c * s)) for c, s in zip(norm_box, (W, H, W, H)))
    img[y1:y2, x1:x2] = RED
    return img


def red_pixels(image: torch.Tensor) -> torch.Tensor:
    """H×W bool map of red pixels in a 3×H×W uint8 image."""
    r, g, b = image.as_subclass(torch.Tensor).int()
    return (r > 150) & (g < 90) & (b < 90)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum()) / max(1, int((a | b).sum()))


BOX = (0.25, 0.3, 0.6, 0.75)


@pytest.mark.parametrize("name", ["train", "weak", "test", "strong_photometric"])
def test_boxes_and_masks_follow_geometry(name: str) -> None:
    img = frame_with_rect(BOX)
    px = torch.tensor([[BOX[0] * W, BOX[1] * H, BOX[2] * W, BOX[3] * H]], dtype=torch.float64)
    mask = torch.from_numpy(np.all(img == RED, axis=-1).astype(np.uint8))
    transform = build_image_transform(name, image_size=64, normalize=False)
    for seed in range(6):
        torch.manual_seed(seed)
        sample = {
            "image": tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)),
            "boxes": tv_tensors.BoundingBoxes(px, format="XYXY", canvas_size=(H, W), clamping_mode="hard"),
            "mask": tv_tensors.Mask(mask),
        }
        out = transform(sample)
        assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.uint8
        red = red_pixels(out["image"]) if name != "strong_photometric" else out["mask"].bool()
        box_map = rasterize_boxes(out["boxes"].double().numpy() / 64.0, 64)
        assert iou(box_map, red) > 0.85, (name, seed, iou(box_map, red))
        assert iou(out["mask"], red) > 0.85
        if name == "test":
            np.testing.assert_allclose(out["boxes"].numpy()[0] / 64.0, BOX, atol=1e-6)


def test_strong_geometric_ops_move_boxes_with_pixels() -> None:
    img = frame_with_rect(BOX)
    px = torch.tensor([[BOX[0] * W, BOX[1] * H, BOX[2] * W, BOX[3] * H]], dtype=torch.float64)
    mask = tv_tensors.Mask(torch.from_numpy(np.all(img == RED, axis=-1).astype(np.uint8)))
    geometric_only = BoxAwareRandAugment(num_ops=1, magnitude=12)
    geometric_only._AUGMENTATION_SPACE = {k: v for k, v in geometric_only._AUGMENTATION_SPACE.items()
                                          if k in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")}
    moved = 0
    for seed in range(10):
        torch.manual_seed(seed)
        out = geometric_only({
            "image": tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)),
            "boxes": tv_tensors.BoundingBoxes(px, format="XYXY", canvas_size=(H, W), clamping_mode="hard"),
            "mask": mask,
        })
        red = red_pixels(out["image"])
        x1, y1, x2, y2 = out["boxes"][0].tolist()
        ys, xs = torch.nonzero(red, as_tuple=True)
        assert len(ys) > 0
        # the enclosing box covers every moved red pixel (1 px slack for interpolation)
        assert xs.min() >= x1 - 1 and xs.max() <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() <= y2 + 1
        assert iou(out["mask"], red) > 0.85
        moved += int(not torch.equal(out["mask"], mask))
    assert moved >= 5
    # the photometric-only variant never moves anything
    photometric = BoxAwareRandAugment(num_ops=2, magnitude=12, geometric=False)
    for seed in range(10):
        torch.manual_seed(seed)
        out = photometric({"image": tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)), "mask": mask})
        assert torch.equal(out["mask"], mask)


def test_strong_transform_runs_with_boxes_and_normalises() -> None:
    img = tv_tensors.Image(torch.from_numpy(frame_with_rect(BOX)).permute(2, 0, 1))
    boxes = tv_tensors.BoundingBoxes([[10.0, 20.0, 60.0, 70.0]], format="XYXY", canvas_size=(H, W))
    out = build_image_transform("strong", image_size=64)({"image": img, "boxes": boxes})
    assert out["image"].dtype == torch.float32 and out["image"].shape == (3, 64, 64)
    assert out["boxes"].canvas_size == (64, 64)


def test_test_transform_exact_size_and_sizes_scale() -> None:
    img = PIL.Image.fromarray(frame_with_rect(BOX))
    out = build_image_transform("test")({"image": img})["image"]
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    resize = build_image_transform("train", image_size=112).transforms[0]
    assert resize.size == [123]  # int(112 * 1.1), as 246 = int(224 * 1.1)
    assert build_image_transform("train").transforms[0].size == [246]
    assert set(IMAGE_TRANSFORMS) >= {"train", "test", "weak", "strong", "strong_photometric"}
    with pytest.raises(AvslError, match="unknown image transform"):
        build_image_transform("huge")


def test_normalize_images_matches_in_worker_normalisation() -> None:
    img = tv_tensors.Image(torch.from_numpy(frame_with_rect(BOX)).permute(2, 0, 1))
    a = build_image_transform("test", image_size=32)({"image": img})["image"]
    b = build_image_transform("test", image_size=32, normalize=False)({"image": img})["image"]
    torch.testing.assert_close(normalize_images(b[None])[0], a.as_subclass(torch.Tensor), atol=1e-6, rtol=0)
    reference = v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))(v2.ToDtype(torch.float32, scale=True)(b))
    torch.testing.assert_close(a.as_subclass(torch.Tensor), reference.as_subclass(torch.Tensor), atol=1e-5, rtol=0)


def test_rasterize_boxes_vggss_rule() -> None:
    gt = rasterize_boxes(np.array([[0.1, 0.2, 0.5, 0.6]]), 224)
    expected = torch.zeros(224, 224)
    expected[int(224 * 0.2):int(224 * 0.6), int(224 * 0.1):int(224 * 0.5)] = 1
    assert torch.equal(gt, expected)
    # sentinel coordinates are clipped; union of boxes; degenerate box is empty
    gt2 = rasterize_boxes(np.array([[-2.88e16, -2.88e16, 0.25, 0.25], [0.75, 0.75, 1.5, 1.0], [0.5, 0.5, 0.5, 0.9]]), 8)
    expected2 = torch.zeros(8, 8)
    expected2[:2, :2] = 1
    expected2[6:, 6:] = 1
    assert torch.equal(gt2, expected2)
    assert rasterize_boxes(np.zeros((0, 4)), 16).sum() == 0


# ---- store-backed dataset ------------------------------------------------------------------------

SR, SECONDS = 16000, 1
BOXES = {
    "clip0": [[0.25, 0.3, 0.6, 0.75]],
    "clip1": [[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.8]],
    "clip3": [[-2.88e16, -2.88e16, -2.88e16, -2.88e16]],  # a VGG-SS sentinel box: empty map
}


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    records = []
    for k in range(8):
        box = BOXES.get(f"clip{k}", [[0.2, 0.2, 0.5, 0.5]])[0]
        img = frame_with_rect(tuple(float(np.clip(c, 0, 1)) for c in box), seed=k)
        t = np.arange(SR * SECONDS) / SR
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * t) + rng.normal(0, 0.01, t.size)
        records.append(ClipRecord(
            id=f"clip{k}", source=f"videos/clip{k}.mp4", time=5.0, duration=10.0, frame_jpeg=_jpeg(img),
            height=H, width=W, audio=np.round(wave * 32767).astype(np.int16), sample_rate=SR, label=f"class{k % 3}",
        ))
    path = tmp_path_factory.mktemp("store") / "clips.h5"
    write_store(path, records, StoreAttrs(sample_rate=SR, audio_samples=SR * SECONDS))
    return str(path)


def test_dataset_items_and_ground_truth(store_path: str) -> None:
    ds = AVDataset(store_path, image_transform="test", boxes=BOXES, image_size=64, gt_size=64)
    assert len(ds) == 8 and ds.store._h5 is None  # closed after indexing
    item = ds[0]
    assert item["id"] == "clip0" and item["label"] == "class0" and item["index"] == 0
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (SR * SECONDS,)
    stored = ds.store.audio(0)
    np.testing.assert_array_equal(item["audio"].numpy(), stored)
    assert item["has_gt"] is True
    assert torch.equal(item["gt_map"], rasterize_boxes(np.array(BOXES["clip0"]), 64))
    assert torch.equal(ds[1]["gt_map"], rasterize_boxes(np.array(BOXES["clip1"]), 64))
    assert ds[3]["has_gt"] is True and ds[3]["gt_map"].sum() == 0  # sentinel box
    no_box = ds[2]
    assert no_box["has_gt"] is False and no_box["boxes"].shape == (0, 4) and no_box["gt_map"].sum() == 0
    clone = pickle.loads(pickle.dumps(ds))  # spawn-style workers get a picklable dataset
    assert torch.equal(clone[1]["gt_map"], ds[1]["gt_map"])
    plain = AVDataset(store_path, ids=["clip5", "clip2"], image_transform="test", image_size=32)
    assert [plain[i]["id"] for i in range(2)] == ["clip5", "clip2"] and "gt_map" not in plain[0]


def test_train_view_gt_map_follows_crop_and_flip(store_path: str) -> None:
    for decoder in ("tensor", "pil", "pil_tensor"):
        ds = AVDataset(store_path, ids=["clip0"], image_transform="train", boxes=BOXES, image_size=64,
                       gt_size=64, decoder=decoder, transform_opts={"normalize": False})
        flipped = set()
        for seed in range(8):
            torch.manual_seed(seed)
            item = ds[0]
            red = red_pixels(item["image"])
            assert iou(item["gt_map"], red) > 0.85, (decoder, seed)
            x1 = float(item["boxes"][0, 0])
            flipped.add(round(x1, 3))
        assert len(flipped) > 1  # random crops/flips actually moved the box


def test_missing_id_names_store_and_id(store_path: str) -> None:
    with pytest.raises(AvslError) as info:
        AVDataset(store_path, ids=["clip1", "nope_42"])
    assert "nope_42" in str(info.value) and store_path in str(info.value)


def test_collate_ragged_boxes_and_strings(store_path: str) -> None:
    ds = AVDataset(store_path, ids=["clip2", "clip0", "clip1"], image_transform="test", boxes=BOXES, image_size=32)
    batch = collate_av([ds[i] for i in range(3)])
    assert batch["boxes"].shape == (3, 2, 4)
    assert batch["boxes_valid"].tolist() == [[False, False], [True, False], [True, True]]
    torch.testing.assert_close(batch["boxes"][2], torch.tensor(BOXES["clip1"], dtype=torch.float32))
    assert batch["id"] == ["clip2", "clip0", "clip1"] and batch["label"] == ["class2", "class0", "class1"]
    assert batch["has_gt"].tolist() == [False, True, True] and batch["index"].tolist() == [0, 1, 2]
    assert batch["image"].shape == (3, 3, 32, 32) and batch["gt_map"].shape == (3, 224, 224)


def _worker_pid_dataset(store_path: str):
    class PidDataset(AVDataset):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            item["pid"] = os.getpid()
            return item
    return PidDataset(store_path, image_transform="train", image_size=32)


def test_loader_with_workers_is_seeded_and_opens_store_per_worker(store_path: str) -> None:
    ds = _worker_pid_dataset(store_path)
    ds[0]  # opens the store in the main process first: build_loader must close it before forking

    def epoch_ids(seed: int) -> tuple[list[str], set[int], torch.Tensor]:
        loader = build_loader(ds, batch_size=3, shuffle=True, workers=2, seed=seed, drop_last=False)
        assert ds.store._h5 is None
        ids, pids, images = [], set(), []
        for batch in loader:
            ids += batch["id"]
            pids.update(batch["pid"].tolist())
            images.append(batch["image"])
        return ids, pids, torch.cat(images)

    ids_a, pids, images_a = epoch_ids(seed=3)
    ids_b, _, images_b = epoch_ids(seed=3)
    ids_c, _, _ = epoch_ids(seed=4)
    assert sorted(ids_a) == [f"clip{k}" for k in range(8)]
    assert ids_a == ids_b and torch.equal(images_a, images_b)  # order and augmentation reproducible
    assert ids_c != ids_a
    assert os.getpid() not in pids and len(pids) == 2


def test_audio_featurizer_on_store_batch(store_path: str) -> None:
    ds = AVDataset(store_path, image_transform="test", image_size=32)
    batch = collate_av([ds[i] for i in range(4)])
    spec = AudioFeaturizer("spectrogram", ds.sample_rate, "cpu")(batch)
    assert spec.shape == (4, 1, 257, (SR * SECONDS - 512) // 238 + 1)
    for i in range(4):
        _, _, s = scipy.signal.spectrogram(ds.store.audio(i).astype(np.float64), fs=SR, nperseg=512, noverlap=274)
        assert np.abs(spec[i, 0].numpy() - np.log(s + 1e-7) / 12).max() < 1e-4


def test_distributed_loader_shards_and_reshuffles(store_path: str) -> None:
    ds = AVDataset(store_path, image_transform="test", image_size=16)
    seen = []
    for rank in range(3):
        loader = build_loader(ds, batch_size=2, shuffle=True, workers=0, seed=1, distributed=True, num_replicas=3, rank=rank)
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
        loader.sampler.set_epoch(0)
        seen.append([i for b in loader for i in b["index"].tolist()])
    assert all(len(s) == 3 for s in seen)  # 8 clips padded to 9 over 3 ranks
    assert set().union(*map(set, seen)) == set(range(8))
    orders = []
    for epoch in range(4):
        loader.sampler.set_epoch(epoch)
        orders.append(tuple(loader.sampler))
    assert list(orders[0]) == seen[2] and len(set(orders)) > 1  # reproducible, reshuffled per epoch
