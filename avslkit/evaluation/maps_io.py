"""Score-map files for `avslkit eval --maps` and `--save-maps`: read without copying what is not needed.

Accepted (every form holds `names` (N,) and `maps` (N, H, W) absolute score maps, float16/32/64, at
any resolution; maps smaller than the evaluation grid are upsampled in the evaluator like a
checkpoint's, see `metrics.maps.upsample_maps`):

* `.npz` written with `np.savez` (members stored): `maps` is memory-mapped, so only the rows being
  scored are read, once; written with `np.savez_compressed`: decompressed in full (the old form);
* `.npy`: the maps array (memory-mapped), names one per line in `STEM.names.txt` beside it;
* `.h5` / `.hdf5`: datasets `names` and `maps`, read chunk by chunk.

`eval --save-maps` writes the compact form: an uncompressed `.npz` of the maps at the resolution
the source produced them (a checkpoint's 7×7 / 14×14, not the 224×224 evaluation grid), in
`save_maps_dtype` (default float32: re-evaluating the file gives the same numbers).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from avslkit.errors import AvslError
from avslkit.utils.io import atomic_path

MAPS_SUFFIXES = (".npz", ".npy", ".h5", ".hdf5")
SAVE_DTYPES = ("float32", "float16")


def names_path(npy: str | Path) -> Path:
    """Where the names of a `.npy` maps file live: `STEM.names.txt` beside it."""
    p = Path(npy)
    return p.with_name(p.stem + ".names.txt")


def _npz_member_memmap(path: Path, member: str) -> np.ndarray | None:
    """`member` of an npz as a read-only memmap when it is stored uncompressed, else None."""
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(member + ".npy")
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)  # local file header: name and extra-field lengths at bytes 26-29
            if local[:4] != b"PK\x03\x04":
                return None
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
    if dtype.hasobject or fortran:
        return None
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset)


class _H5Maps:
    """Row access to an HDF5 `maps` dataset with numpy fancy indexing (h5py wants sorted unique rows)."""

    def __init__(self, path: Path):
        import h5py

        self._file = h5py.File(path, "r")
        self._data = self._file["maps"]
        self.shape, self.dtype, self.ndim = self._data.shape, self._data.dtype, self._data.ndim

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.ndim == 0:
            return self._data[int(rows)]
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._data[unique][inverse]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self._data[()]
        return arr if dtype is None else arr.astype(dtype)


def _check(p: Path, names: list[str], maps: Any) -> None:
    if maps.ndim != 3 or maps.shape[0] != len(names):
        raise AvslError(f"{p}: 'maps' must be (N, H, W) with N = len(names) = {len(names)}; got {tuple(maps.shape)}")
    if np.dtype(maps.dtype).kind not in "fiub":
        raise AvslError(f"{p}: 'maps' must hold numbers (float16/32/64); got {maps.dtype}")
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if name in seen:
            raise AvslError(f"{p}: the map name '{name}' appears twice (rows {seen[name]} and {k}); "
                            "each sample needs exactly one map, remove the duplicate")
        seen[name] = k


def read_maps(path: str | Path) -> tuple[list[str], Any]:
    """Names and maps of a maps file (see the module docstring); maps are memory-mapped where possible."""
    p = Path(path)
    if not p.is_file():
        raise AvslError(f"maps file not found: {p} (write an .npz with 'names' and 'maps' arrays)")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            listing = names_path(p)
            if not listing.is_file():
                raise AvslError(f"{p}: a .npy maps file needs its names, one per line, in {listing}")
            names = listing.read_text(encoding="utf-8").splitlines()
            maps = np.load(p, mmap_mode="r", allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(p, "r") as f:
                if "names" not in f or "maps" not in f:
                    raise AvslError(f"{p}: needs datasets 'names' (N,) and 'maps' (N, H, W); found {sorted(f)}")
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["names"][()]]
            maps = _H5Maps(p)
        else:
            with np.load(p, allow_pickle=False) as z:
                if "names" not in z or "maps" not in z:
                    raise AvslError(f"{p}: needs arrays 'names' (N,) and 'maps' (N, H, W); found {sorted(z.files)}")
                names = [str(n) for n in z["names"]]
                maps = _npz_member_memmap(p, "maps")
                if maps is None:  # compressed (the older --save-maps form): read it whole
                    maps = np.asarray(z["maps"])
    except AvslError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise AvslError(f"{p}: cannot read as a maps file ({exc}); use .npz, .npy (+ .names.txt) or .h5") from exc
    _check(p, names, maps)
    return names, maps


def save_maps(path: str | Path, names: Sequence[str], source: Callable[[np.ndarray], np.ndarray],
              chunk_size: int = 256, dtype: str = "float32") -> None:
    """Write the maps of `names` (taken from `source` chunk by chunk, at the source's resolution) to an
    uncompressed npz (memory-mappable by `read_maps`), atomically."""
    if dtype not in SAVE_DTYPES:
        raise AvslError(f"save_maps_dtype '{dtype}' is not one of {', '.join(SAVE_DTYPES)}")
    n = len(names)
    maps = np.concatenate([np.asarray(source(np.arange(a, min(n, a + chunk_size))), dtype=dtype)
                           for a in range(0, n, chunk_size)]) if n else np.zeros((0, 1, 1), dtype)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, names=np.array(list(names)), maps=maps)
