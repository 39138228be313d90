"""Load one training batch from a store, with ground-truth maps and batched spectrograms.

Usage: python examples/load_batch.py STORE.h5 [--annotations annotations.json]
"""

from __future__ import annotations

import argparse

import torch

from avslkit.data.annotations import read_annotations
from avslkit.data.dataset import AVDataset, AudioFeaturizer, build_loader, collate_av
from avslkit.data.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--annotations", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    args = parser.parse_args()

    boxes = None
    if args.annotations:
        boxes = {cid: entry.boxes for cid, entry in read_annotations(args.annotations).items()}
    dataset = AVDataset(args.store, image_transform="train", boxes=boxes, image_size=args.image_size)
    loader = build_loader(dataset, batch_size=args.batch_size, shuffle=True, workers=0, seed=0, collate_fn=collate_av)
    batch = next(iter(loader))
    with Store(args.store) as store:
        sample_rate = store.sample_rate
    spectrogram = AudioFeaturizer("spectrogram", sample_rate, torch.device("cpu"))(batch)
    print(f"store: {len(dataset)} clips at {sample_rate} Hz")
    print(f"images  {tuple(batch['image'].shape)}  audio {tuple(batch['audio'].shape)}  spectrogram {tuple(spectrogram.shape)}")
    if "gt_map" in batch:
        print(f"gt maps {tuple(batch['gt_map'].shape)}  with boxes: {int(batch['has_gt'].sum())}/{len(batch['id'])}")
    print("ids:", ", ".join(batch["id"][:4]), "...")


if __name__ == "__main__":
    main()
