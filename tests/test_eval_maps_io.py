"""`avslkit eval --maps` in every accepted form: native-resolution and float16 maps against their
upsampled float32 form, memory-mapped .npz/.npy, HDF5, and the compact `--save-maps` output."""

from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.evaluation.maps_io import names_path, read_maps
from avslkit.metrics.maps import upsample_maps

runner = CliRunner()
N_POS, N_NEG = 12, 6
# The summary metrics compared between forms (every number of metrics.json but the protocol record).
KEYS = ("locacc", "auc", "ap", "max_f1", "mse", "mean_ciou", "at_iou_0.75", "by_size", "by_negative_type")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """12 positives with random boxes, 6 easy negatives, and 7×7 native maps (a blob near the box)."""
    root = tmp_path_factory.mktemp("mapsio")
    rng = np.random.default_rng(3)
    ids = [f"clip{k:04d}_000001" for k in range(N_POS)]
    ann = []
    for k, i in enumerate(ids):
        x1, y1 = rng.uniform(0, 0.6, 2)
        ann.append({"file": i, "class": f"c{k % 3}", "bbox": [[x1, y1, x1 + rng.uniform(0.1, 0.4), y1 + rng.uniform(0.1, 0.4)]]})
    (root / "vggss.json").write_text(json.dumps(ann))
    (root / "test.csv").write_text("\n".join(ids))
    negs = [(ids[k], ids[(k + 1) % N_POS]) for k in range(N_NEG)]
    (root / "ext.csv").write_text("video,audio,label\n" + "".join(f"{v},{a},non-sounding\n" for v, a in negs))
    names = ids + [f"{v}__{a}" for v, a in negs]
    yy, xx = np.mgrid[0:7, 0:7].astype(np.float32)
    native = np.empty((len(names), 7, 7), np.float32)
    for k in range(len(names)):
        cx, cy = rng.uniform(0, 6, 2)
        native[k] = rng.uniform(0.5, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4) + rng.normal(0, 0.05, (7, 7))
    return root, np.array(names), native


def _metrics(root, maps_file, tag, *extra):
    out = root / tag / "metrics.json"
    res = runner.invoke(app, ["eval", "--maps", str(maps_file), "--annotations", str(root / "vggss.json"),
                              "--test-list", str(root / "test.csv"), "--extended-csv", str(root / "ext.csv"),
                              "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    return {k: m[k] for k in KEYS}, out


def test_native_resolution_equals_its_upsampled_float32_form(case):
    root, names, native = case
    np.savez(root / "native.npz", names=names, maps=native)
    np.savez_compressed(root / "up224.npz", names=names, maps=upsample_maps(native))
    m_native, _ = _metrics(root, root / "native.npz", "native")
    m_up, _ = _metrics(root, root / "up224.npz", "up224")
    assert m_native == m_up  # bit-identical: the evaluator upsamples exactly as the file's maker did
    assert 0 < m_native["auc"] < 1


def test_float16_maps(case):
    """float16 maps are widened to float32 exactly: the same numbers as the float32 file of the same
    values, and within the documented tolerance (docs/evaluation.md) of the original float32 maps."""
    root, names, native = case
    up = upsample_maps(native)
    np.savez(root / "f16.npz", names=names, maps=up.astype(np.float16))
    np.savez(root / "f16as32.npz", names=names, maps=up.astype(np.float16).astype(np.float32))
    np.savez(root / "f32.npz", names=names, maps=up)
    m16, _ = _metrics(root, root / "f16.npz", "f16")
    assert m16 == _metrics(root, root / "f16as32.npz", "f16as32")[0]
    m32 = _metrics(root, root / "f32.npz", "f32")[0]
    for key in ("locacc", "auc", "ap", "max_f1", "mean_ciou"):
        assert m16[key] == pytest.approx(m32[key], abs=0.02), key
    assert m16["mse"] == pytest.approx(m32["mse"], rel=1e-2)


def test_uncompressed_npz_and_npy_are_memory_mapped(case, tmp_path):
    root, names, native = case
    np.savez(tmp_path / "stored.npz", names=names, maps=native)
    _, maps = read_maps(tmp_path / "stored.npz")
    assert isinstance(maps, np.memmap) and np.array_equal(maps, native)
    np.savez_compressed(tmp_path / "deflated.npz", names=names, maps=native)
    _, maps = read_maps(tmp_path / "deflated.npz")
    assert not isinstance(maps, np.memmap) and np.array_equal(maps, native)  # the old form still reads
    np.save(tmp_path / "m.npy", native)
    with pytest.raises(Exception, match="names.txt"):
        read_maps(tmp_path / "m.npy")
    names_path(tmp_path / "m.npy").write_text("\n".join(names))
    got_names, maps = read_maps(tmp_path / "m.npy")
    assert got_names == list(names) and isinstance(maps, np.memmap) and np.array_equal(maps, native)


def test_npy_and_hdf5_give_the_npz_numbers(case):
    root, names, native = case
    np.savez(root / "ref.npz", names=names, maps=native)
    np.save(root / "maps.npy", native)
    names_path(root / "maps.npy").write_text("\n".join(names))
    with h5py.File(root / "maps.h5", "w") as f:
        f["names"] = names.astype("S")
        f["maps"] = native
    ref = _metrics(root, root / "ref.npz", "ref")[0]
    assert _metrics(root, root / "maps.npy", "npy")[0] == ref
    assert _metrics(root, root / "maps.h5", "h5")[0] == ref


def test_save_maps_writes_the_compact_form_and_reevaluates_identically(case):
    root, names, native = case
    np.savez(root / "in.npz", names=names, maps=native)
    first, out = _metrics(root, root / "in.npz", "save", "--save-maps")
    saved = out.with_suffix(".maps.npz")
    with zipfile.ZipFile(saved) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())  # mmap-able
    got_names, maps = read_maps(saved)
    assert maps.shape[1:] == (7, 7) and maps.dtype == np.float32  # native resolution, not 224
    assert _metrics(root, saved, "again")[0] == first
    _, out16 = _metrics(root, root / "in.npz", "save16", "--save-maps", "--set", "save_maps_dtype=float16")
    assert read_maps(out16.with_suffix(".maps.npz"))[1].dtype == np.float16


def test_bad_maps_files_are_one_line_errors(case, tmp_path):
    root, names, native = case
    np.savez(tmp_path / "ints.npz", names=names, maps=np.full(native.shape, "x"))
    res = runner.invoke(app, ["eval", "--maps", str(tmp_path / "ints.npz"), "--annotations", str(root / "vggss.json"),
                              "--test-list", str(root / "test.csv"), "--out", str(tmp_path / "m.json")])
    assert res.exit_code != 0 and "must hold numbers" in res.output
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    res = runner.invoke(app, ["eval", "--maps", str(tmp_path / "junk.npz"), "--annotations", str(root / "vggss.json"),
                              "--test-list", str(root / "test.csv"), "--out", str(tmp_path / "m.json")])
    assert res.exit_code != 0 and "junk.npz" in res.output
