"""`avslkit demo`: the HTTP API end to end (real server on port 0, multipart uploads with urllib)."""

from __future__ import annotations

import base64
import io
import json
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from scipy.io import wavfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store, tiny_config  # noqa: E402

from avslkit.demo import DemoLocalizer, DemoServer  # noqa: E402
from avslkit.engine.checkpoint import save_checkpoint  # noqa: E402
from avslkit.engine.distributed import DistContext  # noqa: E402
from avslkit.engine.run import resolve_data_config  # noqa: E402
from avslkit.methods import build_task  # noqa: E402
from avslkit.models.ogl import fuse  # noqa: E402

TRACEBACK_MARKERS = ("Traceback", 'File "', "line ")


# -- helpers (also used by test_demo_browser.py) -----------------------------------------------------
def make_tiny_run(root: Path, method: str = "slavc") -> Path:
    """A run directory with a random-weight tiny-backbone checkpoint, saved as the engine saves it."""
    store = make_store(root / "train.h5", n=4)
    cfg = resolve_data_config(tiny_config(method, store))
    torch.manual_seed(0)
    task = build_task(cfg, DistContext())
    run = root / "run"
    run.mkdir()
    save_checkpoint(run / "last.pt", {"method": method, "config": cfg, "task": task.state_dict(),
                                      "trainer": {"epoch": 0, "global_step": 0}})
    return run


def png_bytes(width: int = 80, height: int = 60, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PIL.Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(seconds: float = 2.0, sample_rate: int = 16000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    wavfile.write(buf, sample_rate, (rng.standard_normal(int(seconds * sample_rate)) * 3000).astype(np.int16))
    return buf.getvalue()


def encoded_audio(container: str, codec: str, samples: np.ndarray, sample_rate: int = 16000, rate: int | None = None) -> bytes:
    """Mono int16 `samples` encoded with PyAV into `container` (flac, mp3, ogg, ...)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate or sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def post_multipart(url: str, fields: dict[str, tuple[str, bytes] | str]) -> tuple[int, dict]:
    """POST a multipart/form-data body; returns (status, parsed JSON) for 2xx and 4xx/5xx alike."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, value in fields.items():
        body += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            filename, data = value
            body += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
            body += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        else:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=bytes(body), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return _open(request)


def get_json(url: str) -> tuple[int, dict]:
    return _open(urllib.request.Request(url))


def _open(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, json.loads(raw)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        text = raw.decode("utf-8", "replace")
        assert not any(marker in text for marker in TRACEBACK_MARKERS[:2]), text
        return exc.code, json.loads(raw)


def decode_data_url(url: str) -> PIL.Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return PIL.Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))


def synth_clip(root: Path) -> Path:
    from avslkit.synth import generate

    generate(root, n_clips=1, size=64, duration=2, fps=10)
    return next((root / "videos").glob("*.mp4"))


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("demo_run"))


@pytest.fixture(scope="module")
def localizer(run_dir) -> DemoLocalizer:
    return DemoLocalizer.from_checkpoint(run_dir, device="cpu")


@pytest.fixture(scope="module")
def server(localizer, tmp_path_factory):
    with DemoServer(localizer, port=0, max_upload_mb=1, temp_root=tmp_path_factory.mktemp("demo_tmp")) as srv:
        srv.start()
        yield srv


# -- tests ------------------------------------------------------------------------------------------
def test_page_and_info(server):
    with urllib.request.urlopen(server.url, timeout=30) as response:
        page = response.read().decode()
    assert 'id="alpha"' in page and 'id="fused"' in page and "/static/demo.js" in page
    with urllib.request.urlopen(server.url + "static/demo.js", timeout=30) as response:
        assert "/api/fuse" in response.read().decode()
    status, info = get_json(server.url + "api/info")
    assert status == 200
    assert info["method"] == "slavc" and info["fusion"] == "slavc" and info["default_alpha"] == 0.9
    assert info["checkpoint"].endswith("last.pt") and info["max_upload_mb"] == 1
    assert info["ogl_random"] and any("random" in n for n in info["notices"])
    assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0/")


def test_image_and_wav_give_maps_and_confidence(server, localizer):
    status, out = post_multipart(server.url + "api/analyze", {"image": ("frame.png", png_bytes()), "audio": ("sound.wav", wav_bytes())})
    assert status == 200, out
    assert out["source"] == "image+audio" and out["time"] == pytest.approx(1.0)
    for key in ("frame", "av", "ogl", "fused"):
        assert decode_data_url(out[key]).size == (80, 60)  # overlays keep the upload's aspect
    assert out["alpha"] == 0.9 and np.isfinite(out["confidence"]) and np.isfinite(out["av_confidence"])
    assert len({out["av"], out["ogl"], out["fused"]}) == 3
    # the slider: re-fusion from the kept maps, numbers as the evaluation's fuse + confidence
    session = server.app.sessions[out["id"]]
    fused_by_alpha = {}
    for alpha in (0.0, 0.3, 1.0):
        status, refused = get_json(server.url + f"api/fuse?id={out['id']}&alpha={alpha}")
        assert status == 200 and refused["alpha"] == alpha
        expected = fuse(session.analysis.av[None], session.analysis.ogl[None] * 2.5, "slavc", alpha, localizer.tau)  # MapSet.ogl is OGL/2.5
        assert refused["confidence"] == pytest.approx(localizer.confidence(expected[0]), rel=1e-6)
        fused_by_alpha[alpha] = refused
    assert len({r["fused"] for r in fused_by_alpha.values()}) == 3
    # α = 1 is the AV map mapped to [0, 1] by (S + 1/τ)·τ/2, so its confidence follows the AV one's
    tau = localizer.tau
    assert fused_by_alpha[1.0]["confidence"] == pytest.approx((out["av_confidence"] + 1 / tau) * tau / 2, rel=1e-5)


@pytest.mark.parametrize("container,codec,rate", [("flac", "flac", None), ("mp3", "libmp3lame", None), ("ogg", "libopus", 48000)])
def test_audio_formats_by_content(server, container, codec, rate):
    sound = (np.random.default_rng(0).standard_normal(32000) * 3000).astype(np.int16)
    image = ("frame.png", png_bytes())
    data = encoded_audio(container, codec, sound, rate=rate)
    status, out = post_multipart(server.url + "api/analyze", {"image": image, "audio": ("no-extension", data)})
    assert status == 200, out
    assert out["time"] == pytest.approx(1.0, abs=0.02)
    if codec == "flac":  # lossless: exactly the wav's audio window, so exactly the wav's map
        wav = io.BytesIO()
        wavfile.write(wav, 16000, sound)
        _, reference = post_multipart(server.url + "api/analyze", {"image": image, "audio": ("sound.wav", wav.getvalue())})
        assert out["av_confidence"] == reference["av_confidence"] and out["fused"] == reference["fused"]


def test_silent_audio_is_accepted_with_a_notice(server):
    silent = io.BytesIO()
    wavfile.write(silent, 16000, np.zeros(16000, dtype=np.int16))
    status, out = post_multipart(server.url + "api/analyze", {"image": ("f.png", png_bytes()), "audio": ("quiet.wav", silent.getvalue())})
    assert status == 200 and any("silent" in n for n in out["notices"])


def test_video_upload_uses_middle_or_given_time(server, tmp_path):
    clip = synth_clip(tmp_path / "synth")
    status, out = post_multipart(server.url + "api/analyze", {"video": ("clip.mp4", clip.read_bytes())})
    assert status == 200, out
    assert out["source"] == "video" and out["time"] == pytest.approx(1.0, abs=0.06)
    assert decode_data_url(out["fused"]).size == decode_data_url(out["frame"]).size
    status, out = post_multipart(server.url + "api/analyze", {"video": ("clip.mp4", clip.read_bytes()), "time": "0.5"})
    assert status == 200 and out["time"] == pytest.approx(0.5, abs=0.06)


BAD_UPLOADS = {
    "corrupt image": ({"image": ("frame.png", b"\x89PNG\r\n\x1a\n" + bytes(200)), "audio": ("a.wav", "WAV")}, "image"),
    "text as image": ({"image": ("frame.jpg", b"hello, not a picture"), "audio": ("a.wav", "WAV")}, "not a readable image"),
    "image as audio": ({"image": ("frame.png", "PNG"), "audio": ("sound.wav", "PNG")}, "no audio stream"),
    "corrupt audio": ({"image": ("frame.png", "PNG"), "audio": ("sound.wav", b"RIFF" + bytes(range(256)) * 4)}, "audio"),
    "image as video": ({"video": ("clip.mp4", "PNG")}, "is an image, not a video"),
    "text as video": ({"video": ("clip.mp4", b"just some text " * 50)}, "not a readable video"),
    "empty video": ({"video": ("clip.mp4", b"")}, "empty"),
    "image only": ({"image": ("frame.png", "PNG")}, "also choose an audio file"),
    "nothing": ({"time": "1"}, "choose an image and an audio file, or a video"),
    "video and image": ({"video": ("clip.mp4", "PNG"), "image": ("frame.png", "PNG")}, "not both"),
    "bad time": ({"image": ("frame.png", "PNG"), "audio": ("a.wav", "WAV"), "time": "soon"}, "time must be a number"),
    "time past the end": ({"image": ("frame.png", "PNG"), "audio": ("a.wav", "WAV"), "time": "9"}, "past the end"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_get_a_readable_4xx(server, case):
    fields, expected = BAD_UPLOADS[case]
    samples = {"PNG": png_bytes(), "WAV": wav_bytes()}
    fields = {k: (v[0], samples.get(v[1], v[1])) if isinstance(v, tuple) else v for k, v in fields.items()}
    status, out = post_multipart(server.url + "api/analyze", fields)
    assert 400 <= status < 500, out
    assert expected in out["error"], out["error"]
    assert not any(marker in out["error"] for marker in TRACEBACK_MARKERS)


def test_oversized_upload_is_refused_with_413(server):
    big = np.random.default_rng(1).integers(0, 255, 1_600_000, dtype=np.uint8).tobytes()  # > 1 MB limit
    status, out = post_multipart(server.url + "api/analyze", {"image": ("big.png", big), "audio": ("a.wav", wav_bytes())})
    assert status == 413 and "1 MB limit" in out["error"] and "--max-upload-mb" in out["error"]
    status, _ = get_json(server.url + "api/info")  # the server still answers
    assert status == 200


def test_fuse_errors(server):
    status, out = get_json(server.url + "api/fuse?id=nope&alpha=0.5")
    assert status == 404 and "Analyse again" in out["error"]
    status, out = post_multipart(server.url + "api/analyze", {"image": ("f.png", png_bytes()), "audio": ("a.wav", wav_bytes())})
    status, out = get_json(server.url + f"api/fuse?id={out['id']}&alpha=1.5")
    assert status == 400 and "alpha must be in [0, 1]" in out["error"]
    status, out = get_json(server.url + "api/nothing")
    assert status == 404


def test_writes_nothing_outside_its_temp_dir(localizer, run_dir, tmp_path, monkeypatch):
    sandbox, cwd = tmp_path / "tmp", tmp_path / "cwd"
    sandbox.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandbox))  # where any stray temp file would land
    monkeypatch.chdir(cwd)
    run_before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    clip = synth_clip(tmp_path / "synth")
    seen: set[Path] = set()
    with DemoServer(localizer, port=0) as server:
        server.start()
        workdir = server.workdir
        assert workdir.parent == sandbox

        original = server.app._save

        def spy(folder, field, filename, data):
            path = original(folder, field, filename, data)
            seen.add(path)
            return path

        server.app._save = spy
        assert post_multipart(server.url + "api/analyze", {"image": ("../../escape.png", png_bytes()), "audio": ("../a.wav", wav_bytes())})[0] == 200
        assert post_multipart(server.url + "api/analyze", {"video": ("/etc/clip.mp4", clip.read_bytes())})[0] == 200
        assert post_multipart(server.url + "api/analyze", {"video": ("bad.mp4", b"garbage" * 10)})[0] == 422
        assert seen and all(workdir in p.parents for p in seen)  # uploads went to the server's temp dir only
        assert list(workdir.iterdir()) == []  # and were removed after decoding
        assert [p.name for p in sandbox.iterdir()] == [workdir.name]
    assert not workdir.exists() and list(sandbox.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == run_before


def test_cli_serves_prints_the_url_and_cleans_up(run_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from avslkit.cli.main import app

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    served = {}

    def fake_serve_forever(self, ready=None):  # stands in for the blocking loop: check the live server, then Ctrl+C
        if ready is not None:
            ready()  # the URL is announced only from here (once SIGTERM is handled)
        served["url"] = self.url
        self.start()
        served["info"] = get_json(self.url + "api/info")[1]
        raise KeyboardInterrupt

    monkeypatch.setattr(DemoServer, "serve_forever", fake_serve_forever)
    result = CliRunner().invoke(app, ["demo", "--ckpt", str(run_dir), "--port", "0", "--device", "cpu", "--max-upload-mb", "7",
                                      "--fusion", "ezvsl", "--time", "0.5"])
    assert result.exit_code == 0, result.output
    assert served["url"] in result.output and ":0/" not in served["url"]
    info = served["info"]
    assert info["max_upload_mb"] == 7 and info["fusion"] == "ezvsl" and info["default_alpha"] == 0.4 and info["default_time"] == 0.5
    assert list(tmp_path.iterdir()) == []  # the temp dir is gone after Ctrl+C


def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from avslkit.cli.main import app

    result = CliRunner().invoke(app, ["demo", "--ckpt", str(tmp_path / "missing"), "--port", "0"])
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output
    help_text = CliRunner().invoke(app, ["demo", "--help"]).output
    assert "--max-upload-mb" in help_text and "Example:" in help_text
