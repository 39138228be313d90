"""The HDF5 clip store: atomic writes, lazy per-process handles, merging, failures."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from avslkit.data.store import ClipRecord, Failure, Store, StoreAttrs, merge_stores, read_store_ids, write_store
from avslkit.errors import AvslError

SR, L = 16000, 4800


def _jpeg(color: tuple[int, int, int], size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _record(i: int, label: str = "") -> ClipRecord:
    audio = (np.sin(np.arange(L) * (i + 1) * 0.01) * 10000).astype(np.int16)
    return ClipRecord(id=f"clip{i:03d}", source=f"/videos/clip{i:03d}.mp4", time=1.5 + i, duration=3.0 + i,
                      frame_jpeg=_jpeg((10 * i, 100, 200)), height=24, width=32, audio=audio, sample_rate=SR,
                      label=label)


def test_write_and_read_back(tmp_path):
    path = tmp_path / "s.h5"
    n = write_store(path, [_record(i, "dog" if i % 2 else "") for i in range(5)], StoreAttrs(SR, L, options={"k": 1}),
                    [Failure("bad", "/videos/bad.mp4", "no audio stream")])
    assert n == 5
    with Store(path) as s:
        assert len(s) == 5 and s.ids[2] == "clip002" and s.index_of("clip004") == 4
        assert "clip001" in s and "nope" not in s
        frame = s.frame(3)
        assert frame.shape == (24, 32, 3) and abs(int(frame[..., 0].mean()) - 30) <= 3
        np.testing.assert_array_equal(s.audio_int16(1), _record(1).audio)
        assert s.audio(1).dtype == np.float32 and np.abs(s.audio(1)).max() <= 1.0
        meta = s.meta(1)
        assert meta["label"] == "dog" and meta["time"] == 2.5 and meta["sample_rate"] == SR
        assert [f.reason for f in s.failures()] == ["no audio stream"]
        summary = s.summary()
        assert summary["clips"] == 5 and summary["failures"] == 1 and summary["classes"] == 1
        assert summary["options"] == {"k": 1}


def test_duplicates_written_once_and_failures_dropped_when_stored(tmp_path):
    path = tmp_path / "s.h5"
    n = write_store(path, [_record(0), _record(0), _record(1)], StoreAttrs(SR, L), [Failure("clip1", "x", "retry ok")])
    assert n == 2
    with Store(path) as s:
        assert s.ids == ["clip000", "clip001"]


def test_merge_dedups_and_retried_failures_vanish(tmp_path):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "out.h5"
    write_store(a, [_record(0), _record(1)], StoreAttrs(SR, L), [Failure("clip002", "v", "truncated")])
    write_store(b, [_record(1), _record(2)], StoreAttrs(SR, L), [Failure("clip003", "w", "corrupt")])
    assert merge_stores(out, [a, b]) == 3
    stored, failed = read_store_ids(out)
    assert stored == {"clip000", "clip001", "clip002"} and failed == {"clip003"}
    with Store(out) as s:
        np.testing.assert_array_equal(s.audio_int16(s.index_of("clip002")), _record(2).audio)


def test_merge_rejects_different_audio_geometry(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_store(a, [_record(0)], StoreAttrs(SR, L))
    write_store(b, [ClipRecord(**{**_record(1).__dict__, "audio": np.zeros(100, np.int16)})], StoreAttrs(SR, 100))
    with pytest.raises(AvslError, match="audio geometry"):
        merge_stores(tmp_path / "o.h5", [a, b])
    assert not (tmp_path / "o.h5").exists()


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "s.h5"

    def records():
        yield _record(0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_store(path, records(), StoreAttrs(SR, L))
    assert list(tmp_path.iterdir()) == []


def test_pickle_reopens_lazily(tmp_path):
    path = tmp_path / "s.h5"
    write_store(path, [_record(0), _record(1)], StoreAttrs(SR, L))
    s = Store(path)
    _ = s.ids
    clone = pickle.loads(pickle.dumps(s))
    assert clone._h5 is None
    np.testing.assert_array_equal(clone.audio_int16(1), s.audio_int16(1))


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(AvslError, match="store not found"):
        Store(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(AvslError, match="junk.h5"):
        Store(junk)
    assert read_store_ids(tmp_path / "missing.h5") == (set(), set())
