"""Training-loader throughput: avslkit store + batched device features vs the reference loader.

Reference style (EZ-VSL / SLAVC ``datasets.py``): per item, open ``frames/<id>.jpg`` with PIL,
torchvision v1 ``Resize(246, BICUBIC) → RandomCrop(224) → RandomHorizontalFlip → ToTensor →
Normalize``; read ``audio/<id>.wav``, tile/cut to 3 s, ``scipy.signal.spectrogram(nperseg=512,
noverlap=274)``, ``log(S + 1e-7)``, ``ToTensor → Normalize(0, 12)`` — all inside the workers.

avslkit: ``AVDataset(store, "train")`` (frame JPEG + int16 audio from one HDF5 file, torch
transforms on uint8 tensors) + ``build_loader`` + ``AudioFeaturizer("spectrogram")`` on the
collated waveforms in the main process (on the training device; the CPU here). Variant "uint8":
the workers stop before ``ToDtype/Normalize`` and ``normalize_images`` finishes the batch on the
device (4× less data through worker IPC).

Both build the same training batch (64 × 3×224×224 images + 64 × 1×257×200 log-spectrograms),
with the same number of workers, interleaved in one run; the test data is generated under /tmp.
Reported per loader: wall-clock samples/s, and CPU-ms per sample (main process + its workers, from
/proc) — the steadier figure on a machine shared with other jobs.

    python benchmarks/bench_loader.py --clips 512 --workers 2 --batch 64 --rounds 7
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import PIL.Image
import scipy.io.wavfile
import scipy.signal
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from avslkit.data.dataset import AVDataset, AudioFeaturizer, build_loader
from avslkit.data.store import ClipRecord, Store, StoreAttrs, write_store
from avslkit.data.transforms import normalize_images

SR = 16000
SECONDS = 3.0


# ---- test data -------------------------------------------------------------------------------------

def textured_frame(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like frame: smooth gradients, a few shapes, sensor noise (JPEG size ~ real frames)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 120 + 60 * np.sin(fx * x + ph) * np.cos(fy * y) + rng.uniform(-40, 40)
    for _ in range(4):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        img[y0:y0 + rng.integers(20, 120), x0:x0 + rng.integers(20, 160)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def speech_like(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    x = x * (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3) + rng.normal(0, 0.05, n)
    return x / np.abs(x).max() * rng.uniform(0.05, 0.9)


def build_data(root: Path, clips: int, width: int, height: int) -> tuple[Path, Path]:
    """Write the same clips as a store and as frames/*.jpg + audio/*.wav (skipped when present)."""
    store = root / "store.h5"
    files = root / "files"
    if store.is_file() and len(list((files / "frames").glob("*.jpg"))) == clips:
        with Store(store) as existing:
            if len(existing) == clips:
                return store, files
    shutil.rmtree(files, ignore_errors=True)  # a different --clips: rebuild both copies
    (files / "frames").mkdir(parents=True, exist_ok=True)
    (files / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = int(SR * SECONDS)
    records = []
    for k in range(clips):
        cid = f"clip{k:05d}"
        buf = io.BytesIO()
        PIL.Image.fromarray(textured_frame(rng, width, height)).save(buf, "JPEG", quality=90)
        audio = np.round(speech_like(rng, n) * 32767).astype(np.int16)
        (files / "frames" / f"{cid}.jpg").write_bytes(buf.getvalue())
        scipy.io.wavfile.write(files / "audio" / f"{cid}.wav", SR, audio)
        records.append(ClipRecord(id=cid, source=f"{cid}.mp4", time=5.0, duration=10.0, frame_jpeg=buf.getvalue(),
                                  height=height, width=width, audio=audio, sample_rate=SR, label="bench"))
    write_store(store, records, StoreAttrs(sample_rate=SR, audio_samples=n))
    return store, files


# ---- reference-style loader --------------------------------------------------------------------------

class ReferenceStyleDataset(Dataset):
    """Per-item file reads and scipy spectrograms, as the EZ-VSL/SLAVC loaders do."""

    def __init__(self, root: Path, image_size: int = 224):
        self.root = root
        self.ids = sorted(p.stem for p in (root / "frames").glob("*.jpg"))
        self.image_transform = T.Compose([
            T.Resize(int(image_size * 1.1), T.InterpolationMode.BICUBIC),
            T.RandomCrop((image_size, image_size)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ])
        self.audio_transform = T.Compose([T.ToTensor(), T.Normalize(mean=[0.0], std=[12.0])])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, idx: int):
        cid = self.ids[idx]
        frame = self.image_transform(PIL.Image.open(self.root / "frames" / f"{cid}.jpg").convert("RGB"))
        sr, audio = scipy.io.wavfile.read(self.root / "audio" / f"{cid}.wav")
        audio = audio.astype(np.float64) / 32768.0
        if audio.shape[0] < sr * SECONDS:
            audio = np.tile(audio, int(sr * SECONDS / audio.shape[0]) + 1)
        audio = audio[: int(sr * SECONDS)]
        _, _, spec = scipy.signal.spectrogram(audio, sr, nperseg=512, noverlap=274)
        spec = self.audio_transform(np.log(spec + 1e-7))
        return frame, spec, "bogus", cid


# ---- timing --------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(loader: DataLoader) -> float:
    """CPU seconds used so far by this process and the loader's (persistent) workers.

    On a machine shared with other jobs, CPU time per sample is far steadier than wall-clock
    rate, and (cores / CPU time per sample) is the rate an otherwise idle machine would reach.
    """
    workers = getattr(getattr(loader, "_iterator", None), "_workers", [])
    return time.process_time() + sum(_proc_cpu_seconds(w.pid) for w in workers)


def time_epochs(batches, epochs: int, loader: DataLoader | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and samples for ``epochs`` full passes.

    ``batches()`` yields (images, spectrograms) as a training step would receive them.
    """
    samples = 0
    c0 = cpu_seconds(loader) if loader is not None else 0.0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for images, spec in batches():
            assert images.shape[1:] == (3, 224, 224) and spec.shape[1:] == (1, 257, 200)
            samples += images.shape[0]
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(loader) - c0) if loader is not None else float("nan")
    return wall, cpu, samples


def per_item_ms(get, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` mean milliseconds of ``get(i)`` over ``n`` items, in this process."""
    for i in range(4):
        get(i)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            get(i)
        best = min(best, (time.perf_counter() - t0) / n * 1e3)
    return best


def micro(store_path: Path, files: Path, n: int = 128) -> None:
    """Per-item cost in one process (1 thread): decoders and the reference item."""
    n = min(n, len(ReferenceStyleDataset(files)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = {"reference item (PIL + v1 transforms + scipy spectrogram)": ReferenceStyleDataset(files).__getitem__}
        for decoder in ("torchvision", "pil_tensor", "pil"):
            for normalize in (True, False):
                ds = AVDataset(store_path, image_transform="train", decoder=decoder, transform_opts={"normalize": normalize})
                rows[f"AVDataset item, decoder={decoder}, {'float' if normalize else 'uint8'} image"] = ds.__getitem__
        print(f"\nper item, one process, 1 thread (best of 3 x {n} items):")
        for name, get in rows.items():
            print(f"  {name:62s} {per_item_ms(get, n):6.2f} ms")
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/avslkit_bench_loader"))
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per measurement (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved repetitions; median rates and paired ratios are reported")
    ap.add_argument("--main-threads", type=int, default=1,
                    help="torch threads of the main process (1: no oversubscription of the cores the workers use)")
    args = ap.parse_args()
    torch.set_num_threads(args.main_threads)

    t0 = time.perf_counter()
    store_path, files = build_data(args.root, args.clips, args.width, args.height)
    print(f"data: {args.clips} clips {args.width}x{args.height} JPEG + {SECONDS:.0f} s {SR} Hz audio "
          f"(store {store_path.stat().st_size / 2**20:.1f} MiB) ready in {time.perf_counter() - t0:.1f} s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    micro(store_path, files)

    ref_loader = DataLoader(ReferenceStyleDataset(files), batch_size=args.batch, shuffle=True,
                            num_workers=args.workers, drop_last=True, persistent_workers=args.workers > 0,
                            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))

    def ref_batches():
        for frame, spec, _, _ in ref_loader:
            yield frame.to(device, non_blocking=True), spec.to(device, non_blocking=True).float()

    featurizer = AudioFeaturizer("spectrogram", SR, device)
    ours = build_loader(AVDataset(store_path, image_transform="train"), args.batch, shuffle=True,
                        workers=args.workers, seed=0, drop_last=True)

    def our_batches():
        for batch in ours:
            yield batch["image"].to(device, non_blocking=True), featurizer(batch)

    ours_u8 = build_loader(AVDataset(store_path, image_transform="train", transform_opts={"normalize": False}),
                           args.batch, shuffle=True, workers=args.workers, seed=0, drop_last=True)

    def our_u8_batches():
        for batch in ours_u8:
            yield normalize_images(batch["image"], device), featurizer(batch)

    def our_u8_loader_only():
        # what the workers deliver when the features run on a GPU (where they cost ~nothing):
        # the spectrogram shape is checked, its computation left out
        for batch in ours_u8:
            yield batch["image"], torch.empty(batch["audio"].shape[0], 1, 257, 200)

    loaders = {"reference (files + scipy per item)": (ref_batches, ref_loader),
               "avslkit store (float images)": (our_batches, ours),
               "avslkit store (uint8 images, device normalise)": (our_u8_batches, ours_u8),
               "avslkit uint8, features left to the GPU": (our_u8_loader_only, ours_u8)}
    for name, (fn, loader) in loaders.items():  # warm-up: fork workers, fill caches
        time_epochs(fn, 1, loader)
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    cpu_ms: dict[str, list[float]] = {name: [] for name in loaders}
    for r in range(args.rounds):
        for name, (fn, loader) in loaders.items():
            seconds, cpu, samples = time_epochs(fn, args.epochs, loader)
            rates[name].append(samples / seconds)
            cpu_ms[name].append(cpu / samples * 1e3)
            print(f"round {r}: {name:48s} {samples / seconds:7.1f} samples/s  {cpu / samples * 1e3:6.2f} CPU-ms/sample")

    probe_clips = [speech_like(np.random.default_rng(k), int(SR * SECONDS)) for k in range(args.batch)]
    probe = torch.from_numpy(np.stack(probe_clips).astype(np.float32))
    featurizer(probe)
    t0 = time.perf_counter()
    for _ in range(5):
        featurizer(probe)
    feat_ms = (time.perf_counter() - t0) / 5 * 1e3

    ref_name = "reference (files + scipy per item)"
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"device for features: {device} ({torch.get_num_threads()} main-process threads); batch {args.batch}, "
          f"workers {args.workers}, {args.clips} clips, "
          f"load average now {os.getloadavg()[0]:.1f}")
    print("wall ratio = median over rounds of (rate / reference rate in the same round); "
          "CPU ratio = reference CPU-ms per sample / loader's (medians)")
    print(f"{'loader':50s} {'samples/s':>9s} {'wall ratio (range)':>20s} {'CPU-ms/sample':>13s} {'CPU ratio':>9s}")
    ref_cpu = statistics.median(cpu_ms[ref_name])
    for name, values in rates.items():
        ratios = [v / r for v, r in zip(values, rates[ref_name])]
        cpu = statistics.median(cpu_ms[name])
        print(f"{name:50s} {statistics.median(values):9.1f} {statistics.median(ratios):7.2f}x "
              f"({min(ratios):4.2f}-{max(ratios):4.2f}) {cpu:13.2f} {ref_cpu / cpu:8.2f}x")
    print(f"spectrogram feature on {device}: {feat_ms:.1f} ms per batch of {args.batch} (main process)")


if __name__ == "__main__":
    main()
