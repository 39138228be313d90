"""Issue #11: every bad input gets one clear line, nothing is silently mixed, no process outlives its parent.

Each test here failed before its fix. The table of refused inputs in docs/refused-inputs.md is checked
against what the code prints in test_refused_inputs_table_matches_the_code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.config import ConfigError, load_config
from avslkit.config_spec import SPECS, check_config

runner = CliRunner()


def eval_inputs(root: Path, boxes: dict | None = None, names: list[str] | None = None) -> tuple[Path, Path]:
    """A tiny vggss.json (clip id -> boxes) and a MAPS.npz with one 7x7 map per name."""
    boxes = boxes if boxes is not None else {"aaaaaaaaaaa_000001": [[0.1, 0.1, 0.5, 0.5]],
                                              "bbbbbbbbbbb_000002": [[0.2, 0.3, 0.9, 0.8]]}
    ann = root / "vggss.json"
    ann.write_text(json.dumps([{"file": k, "class": "dog", "bbox": v} for k, v in boxes.items()]))
    names = names if names is not None else list(boxes)
    maps = root / "maps.npz"
    rng = np.random.default_rng(0)
    np.savez(maps, names=np.array(names), maps=rng.random((len(names), 7, 7)).astype(np.float32))
    return ann, maps


def one_line_error(result) -> str:
    """The single error line of a failed CLI call (and no traceback)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# -- item 7: user text is printed literally (no rich markup, no emoji) ---------------------------------
def test_error_text_keeps_brackets_and_colons(tmp_path):
    odd = tmp_path / "[bold]clip:fire:.h5"
    line = one_line_error(runner.invoke(app, ["store", "info", str(odd)]))
    assert str(odd) in line and "🔥" not in line


def test_binarize_spec_is_not_an_emoji(tmp_path):
    ann, maps = eval_inputs(tmp_path)
    line = one_line_error(runner.invoke(app, ["eval", "--maps", str(maps), "--annotations", str(ann),
                                              "--binarize", "fixed:abc", "--out", str(tmp_path / "m.json")]))
    assert "fixed:abc" in line and "'abc' is not a number" in line


# -- item 4: a typed, range-checked config -------------------------------------------------------------
@pytest.mark.parametrize("item, key, shown, allowed", [
    ("optim.lr=abc", "optim.lr", "abc", "a number > 0"),
    ("epochs=abc", "epochs", "abc", "an integer >= 1"),
    ("optim.lr=-1", "optim.lr", "-1", "a number > 0"),
    ("batch_size=0", "batch_size", "0", "an integer >= 1"),
    ("workers=-1", "workers", "-1", "an integer >= 0"),
    ("model.dropout_img=1.5", "model.dropout_img", "1.5", "a number in [0, 1)"),
    ("epochs=0", "epochs", "0", "an integer >= 1"),
])
def test_train_config_values_are_type_and_range_checked(tmp_path, item, key, shown, allowed):
    result = runner.invoke(app, ["train", "slavc", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "run"),
                                 "--set", item])
    line = one_line_error(result)
    assert f"config key {key}={shown}" in line and allowed in line
    assert not (tmp_path / "run").exists()  # nothing written


def test_packaged_defaults_and_presets_pass_their_own_spec():
    from avslkit.config import list_packaged_configs, list_presets, preset_layer
    from avslkit.methods.base import list_methods

    presets = [None, *list_presets()]
    packaged = [m for m in list_methods() if f"methods/{m}" in list_packaged_configs()]  # not test-registered ones
    assert len(packaged) >= 7
    for method in packaged:
        for preset in presets:
            layer = preset_layer(preset, "train", method) if preset else None
            check_config(load_config(["train", f"methods/{method}"], preset=layer), "train")
    for command in ("preprocess", "eval"):
        for preset in presets:
            check_config(load_config(command, preset=preset_layer(preset, command) if preset else None), command)


def test_spec_rules_reject_wrong_types_and_accept_null_only_when_declared():
    with pytest.raises(ConfigError, match="jpeg_quality=101 is out of range: expected an integer in \\[1, 100\\]"):
        check_config({"jpeg_quality": 101}, "preprocess")
    with pytest.raises(ConfigError, match="drop_last=yes has the wrong type: expected true or false"):
        check_config({"drop_last": "yes"}, "train")
    with pytest.raises(ConfigError, match="epochs=true is not an integer"):
        check_config({"epochs": True}, "train")
    with pytest.raises(ConfigError, match="optim.lr=null is missing"):
        check_config({"optim": {"lr": None}}, "train")
    check_config({"validation": {"max_samples": None}}, "train")
    assert set(SPECS) == {"train", "preprocess", "eval"}


# -- items 2, 3, 4: preprocess ---------------------------------------------------------------------------
def make_videos(root: Path, n: int, seconds: float = 1.0) -> Path:
    """`n` tiny H.264+AAC clips (clip00.mp4, ...)."""
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=96x64:r=10",
                        "-f", "lavfi", "-i", "sine=f=440:sample_rate=16000", "-t", str(seconds), "-c:v", "libx264",
                        "-c:a", "aac", str(root / f"clip{i:02d}.mp4")], check=True)
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("hardening_videos"), 4)


def test_a_single_video_file_is_accepted_as_input(videos, tmp_path):
    from avslkit.data.store import Store

    result = runner.invoke(app, ["preprocess", str(videos / "clip01.mp4"), "--out", str(tmp_path / "one.h5"), "--quiet"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "one.h5") as s:
        assert s.ids == ["clip01"]
    binary = tmp_path / "list.txt"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    line = one_line_error(runner.invoke(app, ["preprocess", str(binary), "--out", str(tmp_path / "b.h5")]))
    assert f"{binary}: not a text list of videos" in line


def test_unwritable_out_is_one_line(videos, tmp_path):
    import os

    if os.geteuid() == 0:
        target = Path("/sys/avslkit-test.h5")  # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "x.h5"
    line = one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(target), "--quiet"]))
    assert f"--out {target}: cannot write beside it" in line and "writable location" in line


def test_non_numeric_time_in_timestamps_is_refused(videos, tmp_path):
    stamps = tmp_path / "times.csv"
    stamps.write_text("clip00,abc\nclip01,0.5\n")  # no header: the first row is data
    line = one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(tmp_path / "s.h5"),
                                              "--timestamps", str(stamps), "--quiet"]))
    assert f"{stamps}:1: time 'abc' is not a number of seconds" in line
    stamps.write_text("id,time\nclip00,0.5\n")  # a header row is still skipped
    from avslkit.data.preprocess import load_timestamps

    assert load_timestamps(stamps) == {"clip00": 0.5}


def test_resume_with_other_store_shaping_options_is_refused(videos, tmp_path):
    import avslkit.data.preprocess as pp

    out = tmp_path / "s.h5"
    parts = pp.parts_dir(out)
    parts.mkdir()
    cfg = pp.resolve_config({"frame_size": 48})
    opts = pp.clip_options(cfg)
    attrs = pp.StoreAttrs(sample_rate=opts.sample_rate, audio_samples=opts.audio_samples, options={"config": cfg})
    task = pp.ClipTask(id="clip00", source=str(videos / "clip00.mp4"))
    pp._run_chunk(pp._ChunkJob(str(parts / "chunk-00000000T000000000000-00000.h5"), [task]), opts, attrs)  # a killed run's shard
    line = one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(out), "--frame-size", "32", "--quiet"]))
    assert "chunk-00000000T000000000000-00000.h5: was made with frame_size=48 but this run asks for frame_size=32" in line
    assert "re-run with --set frame_size=48 (the interrupted run's setting)" in line and "start over" in line
    line = one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(out), "--set", "frame_size=48",
                                              "--jpeg-quality", "50", "--quiet"]))
    assert "was made with jpeg_quality=92 but this run asks for jpeg_quality=50" in line
    line = one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(out), "--set", "frame_size=48",
                                              "--set", "resize_filter=area", "--quiet"]))
    assert "resize_filter=bicubic but this run asks for resize_filter=area" in line
    # the same options resume; a finished store refuses to be extended with other options too
    assert runner.invoke(app, ["preprocess", str(videos), "--out", str(out), "--set", "frame_size=48", "--quiet"]).exit_code == 0
    more = make_videos(tmp_path / "more", 1)
    (more / "clip00.mp4").rename(more / "extra.mp4")
    line = one_line_error(runner.invoke(app, ["preprocess", str(more), "--out", str(out), "--quiet"]))
    assert f"{out}: was made with frame_size=48 but this run asks for frame_size=256" in line and "new --out" in line


def live_group_members(pgid: int) -> list[str]:
    """Processes of group `pgid` that are still running (zombies waiting for init to reap them are dead)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(text[: text.rindex(")") + 1])
    return alive


def wait_until_gone(pgid: int, seconds: float) -> list[str]:
    import time

    deadline = time.monotonic() + seconds
    while (alive := live_group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


@linux_only
def test_sigkilled_preprocess_leaves_no_process_behind(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from avslkit.data.preprocess import parts_dir

    d = make_videos(tmp_path / "v", 10)
    out = tmp_path / "s.h5"
    cmd = [sys.executable, "-c", "import typer; from avslkit.cli.preprocess import command; typer.run(command)",
           str(d), "--out", str(out), "--workers", "2", "--set", "chunk_size=1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pgid = proc.pid  # a new session: the run, its workers and the resource tracker share this group id
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not list(parts_dir(out).glob("chunk-*.h5")):
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.skip("the run finished before it could be killed")
        assert len(live_group_members(pgid)) >= 3  # the run, its workers, the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        survivors = wait_until_gone(pgid, 5.0)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert survivors == [], survivors
    n_shards = len(list(parts_dir(out).glob("chunk-*.h5")))
    time.sleep(1.0)
    assert len(list(parts_dir(out).glob("chunk-*.h5"))) == n_shards  # nobody keeps writing
    subprocess.run(cmd, check=True, timeout=120)  # and the run resumes to a complete store
    from avslkit.data.store import Store

    with Store(out) as s:
        assert sorted(s.ids) == [f"clip{i:02d}" for i in range(10)]


BUSY_WORKER = '''
import concurrent.futures, multiprocessing, os, sys, time
from avslkit.data.preprocess import die_with_parent

def busy(_):
    return sum(range(10 ** 13))  # one C call: holds the GIL, so no Python watcher thread can run

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),))
    pool.submit(busy, 0)
    time.sleep(1.0)
    print("busy", flush=True)
    time.sleep(120)
'''


@linux_only
def test_a_worker_holding_the_gil_dies_with_its_parent(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "busy_pool.py"
    script.write_text(BUSY_WORKER)
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "busy"
        assert len(live_group_members(proc.pid)) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        survivors = wait_until_gone(proc.pid, 5.0)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert survivors == [], survivors


# -- item 4: localize on a corrupt video ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from test_demo import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("hardening_run"))


def test_localize_every_on_a_corrupt_video_is_one_line(tiny_run, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    line = one_line_error(runner.invoke(app, ["localize", "--ckpt", str(tiny_run), "--video", str(bad), "--every", "0.5",
                                              "--out", str(tmp_path / "loc")]))
    assert f"{bad}: cannot decode video" in line


# -- item 1: the demo server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_localizer(tiny_run):
    from avslkit.demo import DemoLocalizer

    return DemoLocalizer.from_checkpoint(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def demo_server(demo_localizer, tmp_path_factory):
    from avslkit.demo import DemoServer

    with DemoServer(demo_localizer, port=0, max_upload_mb=1, temp_root=tmp_path_factory.mktemp("demo_tmp")) as srv:
        srv.start()
        yield srv


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@linux_only
def test_negative_content_length_is_refused_with_bounded_memory(demo_server):
    import socket
    import threading
    import time

    host, port = demo_server.httpd.server_address[:2]
    body = b"x" * (50 * 1024 * 1024)
    baseline = rss_bytes()
    peak = [baseline]
    sampling = True

    def sample() -> None:
        while sampling:
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with socket.create_connection((host, port), timeout=30) as sock:
        head = (f"POST /api/analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: -1\r\n\r\n").encode()

        def send() -> None:
            try:
                sock.sendall(head)
                view = memoryview(body)
                for a in range(0, len(body), 1 << 20):
                    sock.sendall(view[a:a + (1 << 20)])
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer and close before the whole body is sent

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sender.join(timeout=30)
    sampling = False
    sampler.join()
    status_line = answer.split(b"\r\n", 1)[0].decode()
    assert status_line.split()[1] == "400", answer[:300]
    assert b"invalid Content-Length" in answer
    assert peak[0] - baseline < 20 * 1024 * 1024, f"server memory grew by {(peak[0] - baseline) / 2**20:.0f} MiB"


def test_thirty_concurrent_requests_are_all_answered(demo_localizer, tmp_path):
    """A burst of 30 connections that arrives before the server accepts any: the listen queue must hold
    them all (http.server's default of 5 leaves the rest hanging in SYN retries or reset)."""
    import socket
    import threading

    from avslkit.demo import DemoServer

    with DemoServer(demo_localizer, port=0, temp_root=tmp_path) as server:  # listening, not yet accepting
        host, port = server.httpd.server_address[:2]
        socks = []
        try:
            for _ in range(30):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(3.0)
                sock.connect((host, port))  # completes in the kernel's listen queue, or times out
                sock.sendall(f"GET /api/info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                socks.append(sock)
            server.start()
            statuses = []
            for sock in socks:
                sock.settimeout(60)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                statuses.append(answer.split(b" ", 2)[1].decode() if answer else "no answer")
        finally:
            for sock in socks:
                sock.close()
    assert statuses == ["200"] * 30


@linux_only
def test_sigterm_removes_the_demo_temp_dir(tiny_run, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    launcher = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import _train_helpers; "  # registers the tiny test model
                "from avslkit.cli.main import app; app(prog_name='avslkit')")
    proc = subprocess.Popen([sys.executable, "-c", launcher, str(Path(__file__).parent), "demo", "--ckpt", str(tiny_run),
                             "--port", "0", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        assert [p.name.startswith("avslkit-demo-") for p in tmp.iterdir()] == [True]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert list(tmp.iterdir()) == []


# -- item 6: training runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_store(tmp_path_factory) -> Path:
    from _train_helpers import make_store

    return make_store(tmp_path_factory.mktemp("hardening_train") / "train.h5", n=8)


def tiny_train(store: Path, out: Path, *more: str) -> list[str]:
    from _train_helpers import tiny_train_args

    return tiny_train_args(store, out, *more)


def test_failed_resume_leaves_the_run_directory_untouched(train_store, tmp_path, one_torch_thread):
    out = tmp_path / "run"
    assert runner.invoke(app, tiny_train(train_store, out, "--epochs", "1")).exit_code == 0
    (out / "last.pt").write_bytes(b"corrupt" * 100)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    line = one_line_error(runner.invoke(app, tiny_train(train_store, out, "--epochs", "2", "--resume", "--lr", "0.5")))
    assert f"{out / 'last.pt'}: cannot read checkpoint" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # config.yaml not rewritten


def test_resume_removes_temp_files_and_does_not_log_steps_twice(train_store, tmp_path, one_torch_thread):
    import shutil

    from avslkit.engine.checkpoint import load_checkpoint
    from avslkit.engine.logging import read_log

    out = tmp_path / "run"
    assert runner.invoke(app, tiny_train(train_store, out, "--epochs", "1")).exit_code == 0
    shutil.copy(out / "last.pt", tmp_path / "epoch1.pt")
    assert runner.invoke(app, tiny_train(train_store, out, "--epochs", "2", "--resume")).exit_code == 0
    # What a kill during the epoch-2 save leaves: steps 3-4 logged, last.pt still at step 2, a temp file.
    shutil.copy(tmp_path / "epoch1.pt", out / "last.pt")
    (out / ".last.pt.abc123.pt.tmp").write_bytes(b"half a checkpoint")
    result = runner.invoke(app, tiny_train(train_store, out, "--epochs", "2", "--resume"))
    assert result.exit_code == 0, result.output
    assert not list(out.glob(".*.tmp"))
    assert load_checkpoint(out / "last.pt")["trainer"]["global_step"] == 4
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3, 4]
    assert [r["epochs_completed"] for r in records if r["type"] == "epoch"] == [1, 2]
    assert [r.get("dropped_records") for r in records if r.get("event") == "resumed"] == [0, 4]  # 2 steps, epoch, checkpoint


# -- items 5, 6: evaluation inputs --------------------------------------------------------------------------
def run_eval(*args: str):
    return runner.invoke(app, ["--quiet", "eval", *args])


@pytest.fixture
def warnings_seen(monkeypatch) -> list[str]:
    """Warnings logged by avslkit (its logger does not propagate to caplog)."""
    from avslkit.utils.console import log

    seen: list[str] = []
    monkeypatch.setattr(log, "warning", lambda msg, *args, **kw: seen.append(msg % args if args else msg))
    return seen


def test_duplicate_map_names_are_refused(tmp_path):
    ann, _ = eval_inputs(tmp_path)
    for names, message in ((["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002", "aaaaaaaaaaa_000001"],
                            "the map name 'aaaaaaaaaaa_000001' appears twice (rows 0 and 2)"),
                           (["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002", "aaaaaaaaaaa_1"],
                            "map names 'aaaaaaaaaaa_000001' and 'aaaaaaaaaaa_1' are the same clip")):
        _, maps = eval_inputs(tmp_path, names=names)
        line = one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp_path / "m.json")))
        assert message in line


@pytest.mark.parametrize("bbox, problem", [
    ([], "1 empty (no boxes): bbbbbbbbbbb_000002"),
    ([[0.9, 0.2, 0.1, 0.8]], "1 inverted (x2 < x1 or y2 < y1): bbbbbbbbbbb_000002"),
    ([[20, 30, 120, 200]], "1 out_of_range (normalised coordinates outside [0, 1]"),
])
def test_bad_boxes_warn_with_ids_and_strict_refuses(tmp_path, warnings_seen, bbox, problem):
    ann, maps = eval_inputs(tmp_path, boxes={"aaaaaaaaaaa_000001": [[0.1, 0.1, 0.5, 0.5]], "bbbbbbbbbbb_000002": bbox})
    out = tmp_path / "m.json"
    result = run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(warnings_seen) == 1 and problem in warnings_seen[0] and "--strict" in warnings_seen[0]
    assert json.loads(out.read_text())["protocol"]["box_problems"] == {problem.split()[1]: ["bbbbbbbbbbb_000002"]}
    line = one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(out), "--strict"))
    assert problem in line and "unusable boxes" in line


def test_nan_box_is_an_error_and_sentinel_boxes_keep_the_published_rule(tmp_path, warnings_seen):
    ann = tmp_path / "vggss.json"
    ann.write_text('[{"file": "aaaaaaaaaaa_000001", "class": "dog", "bbox": [[0.1, NaN, 0.5, 0.5]]}]')
    line = one_line_error(run_eval("--maps", str(tmp_path / "none.npz"), "--annotations", str(ann)))
    assert "entry 0 ('aaaaaaaaaaa_000001') has a non-finite box coordinate" in line
    sentinel = [[0.534375, 0.3375, -2.8823037615171176e+16, 0.909375], [0.51875, 0.315625, 0.796875, 0.8625]]
    ann, maps = eval_inputs(tmp_path, boxes={"aaaaaaaaaaa_000001": sentinel, "bbbbbbbbbbb_000002": [[0.2, 0.2, 0.4, 0.4]]})
    result = run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp_path / "m.json"), "--strict")
    assert result.exit_code == 0, result.output
    assert warnings_seen == []


def test_published_vggss_has_no_box_problems(refdata):
    from avslkit.data.annotations import box_problems, read_annotations

    ann = read_annotations(refdata / "SLAVC" / "metadata" / "vggss.json")
    assert box_problems(list(ann.values())) == {}


def test_skip_missing_applies_to_checkpoint_eval_with_extended_csv(tiny_run, tmp_path, one_torch_thread):
    from _train_helpers import write_vggss_annotations

    store = tiny_run.parent / "train.h5"
    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"clip{i:03d}" for i in range(4)])
    csv_path = tmp_path / "plus.csv"
    csv_path.write_text("video,audio,label\nclip000,clip001,x\nclip002,clip999,x\n")  # clip999 is not in the store
    args = [str(tiny_run), "--test", str(store), "--annotations", str(ann), "--extended-csv", str(csv_path),
            "--out", str(tmp_path / "m.json")]
    line = one_line_error(run_eval(*args))
    assert "1 of 6 evaluated samples use clips that are not in the store (e.g. 'clip002__clip999')" in line
    result = run_eval(*args, "--skip-missing")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["n_positive"], metrics["n_negative"]) == (4, 1)


# -- the table of refused inputs (docs/refused-inputs.md) matches what the code prints -------------------
REFUSED_DOC = Path(__file__).resolve().parents[1] / "docs" / "refused-inputs.md"


def _bad_boxes(tmp: Path) -> tuple[Path, Path]:
    return eval_inputs(tmp, boxes={"aaaaaaaaaaa_000001": [[0.1, 0.1, 0.5, 0.5]], "bbbbbbbbbbb_000002": [[0.9, 0.2, 0.1, 0.8]]})


def _shard_of_a_killed_run(videos: Path, out: Path) -> None:
    import avslkit.data.preprocess as pp

    pp.parts_dir(out).mkdir(parents=True)
    cfg = pp.resolve_config({"frame_size": 48})
    opts = pp.clip_options(cfg)
    attrs = pp.StoreAttrs(sample_rate=opts.sample_rate, audio_samples=opts.audio_samples, options={"config": cfg})
    job = pp._ChunkJob(str(pp.parts_dir(out) / "chunk-00000000T000000000000-00000.h5"),
                       [pp.ClipTask(id="clip00", source=str(videos / "clip00.mp4"))])
    pp._run_chunk(job, opts, attrs)


def _demo_post(server, content_length: str, body: bytes = b"") -> str:
    import socket

    host, port = server.httpd.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall((f"POST /api/analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer.split(b" ", 2)[1].decode()
    return f"HTTP {status} " + json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def _case_config_type(fx, tmp):
    return one_line_error(runner.invoke(app, ["train", "slavc", "--data", str(tmp / "t.h5"), "--out", str(tmp / "r"),
                                              "--set", "optim.lr=abc"]))


def _case_config_range(fx, tmp):
    return one_line_error(runner.invoke(app, ["train", "slavc", "--data", str(tmp / "t.h5"), "--out", str(tmp / "r"),
                                              "--set", "model.dropout_img=1.5"]))


def _case_preprocess_binary_list(fx, tmp):
    (tmp / "notes.bin").write_bytes(bytes(range(128, 256)))
    return one_line_error(runner.invoke(app, ["preprocess", str(tmp / "notes.bin"), "--out", str(tmp / "s.h5")]))


def _case_preprocess_unwritable_out(fx, tmp):
    import os

    if os.geteuid() != 0:
        (tmp / "locked").mkdir()
        (tmp / "locked").chmod(0o500)
    target = Path("/sys/avslkit-test.h5") if os.geteuid() == 0 else tmp / "locked" / "s.h5"
    return one_line_error(runner.invoke(app, ["preprocess", str(fx("videos")), "--out", str(target), "--quiet"]))


def _case_preprocess_resume_changed(fx, tmp):
    _shard_of_a_killed_run(fx("videos"), tmp / "s.h5")
    return one_line_error(runner.invoke(app, ["preprocess", str(fx("videos")), "--out", str(tmp / "s.h5"),
                                              "--frame-size", "32", "--quiet"]))


def _case_preprocess_extend_changed(fx, tmp):
    videos = fx("videos")
    assert runner.invoke(app, ["preprocess", str(videos / "clip00.mp4"), "--out", str(tmp / "s.h5"), "--frame-size", "48",
                               "--quiet"]).exit_code == 0
    return one_line_error(runner.invoke(app, ["preprocess", str(videos), "--out", str(tmp / "s.h5"), "--quiet"]))


def _case_preprocess_timestamps(fx, tmp):
    (tmp / "times.csv").write_text("clip00,abc\n")
    return one_line_error(runner.invoke(app, ["preprocess", str(fx("videos")), "--out", str(tmp / "s.h5"),
                                              "--timestamps", str(tmp / "times.csv"), "--quiet"]))


def _case_localize_corrupt_video(fx, tmp):
    (tmp / "bad.mp4").write_bytes(b"garbage" * 100)
    return one_line_error(runner.invoke(app, ["localize", "--ckpt", str(fx("tiny_run")), "--video", str(tmp / "bad.mp4"),
                                              "--every", "0.5", "--out", str(tmp / "loc")]))


def _case_train_corrupt_resume(fx, tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "last.pt").write_bytes(b"corrupt")
    return one_line_error(runner.invoke(app, tiny_train(fx("train_store"), tmp / "run", "--resume")))


def _case_eval_duplicate_map_name(fx, tmp):
    ann, maps = eval_inputs(tmp, names=["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002", "aaaaaaaaaaa_000001"])
    return one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp / "m.json")))


def _case_eval_same_clip_twice(fx, tmp):
    ann, maps = eval_inputs(tmp, names=["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002", "aaaaaaaaaaa_1"])
    return one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp / "m.json")))


def _case_eval_clips_not_in_store(fx, tmp):
    from _train_helpers import write_vggss_annotations

    ann = write_vggss_annotations(tmp / "vggss.json", [f"clip{i:03d}" for i in range(4)])
    (tmp / "plus.csv").write_text("video,audio,label\nclip002,clip999,x\n")
    return one_line_error(run_eval(str(fx("tiny_run")), "--test", str(fx("tiny_run").parent / "train.h5"),
                                   "--annotations", str(ann), "--extended-csv", str(tmp / "plus.csv"), "--out", str(tmp / "m.json")))


def _case_eval_bad_boxes_warning(fx, tmp):
    ann, maps = _bad_boxes(tmp)
    seen = fx("warnings_seen")
    assert run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp / "m.json")).exit_code == 0
    return seen[-1]


def _case_eval_bad_boxes_strict(fx, tmp):
    ann, maps = _bad_boxes(tmp)
    return one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(tmp / "m.json"), "--strict"))


def _case_eval_nan_box(fx, tmp):
    (tmp / "vggss.json").write_text('[{"file": "aaaaaaaaaaa_000001", "class": "dog", "bbox": [[0.1, NaN, 0.5, 0.5]]}]')
    return one_line_error(run_eval("--maps", str(tmp / "maps.npz"), "--annotations", str(tmp / "vggss.json")))


def _case_eval_binarize(fx, tmp):
    ann, maps = eval_inputs(tmp)
    return one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--binarize", "fixed:abc"))


def _case_eval_unwritable_out(fx, tmp):
    import os

    ann, maps = eval_inputs(tmp)
    if os.geteuid() != 0:
        (tmp / "locked").mkdir()
        (tmp / "locked").chmod(0o500)
    target = Path("/sys/avslkit-test/m.json") if os.geteuid() == 0 else tmp / "locked" / "sub" / "m.json"
    return one_line_error(run_eval("--maps", str(maps), "--annotations", str(ann), "--out", str(target)))


def _case_demo_negative_length(fx, tmp):
    return _demo_post(fx("demo_server"), "-1", b"x" * 1000)


def _case_demo_too_large(fx, tmp):
    return _demo_post(fx("demo_server"), str(2 * 1024 * 1024), b"x" * (2 * 1024 * 1024))


REFUSED_CASES = {
    "config-type": _case_config_type,
    "config-range": _case_config_range,
    "preprocess-binary-list": _case_preprocess_binary_list,
    "preprocess-unwritable-out": _case_preprocess_unwritable_out,
    "preprocess-resume-changed": _case_preprocess_resume_changed,
    "preprocess-extend-changed": _case_preprocess_extend_changed,
    "preprocess-timestamps": _case_preprocess_timestamps,
    "localize-corrupt-video": _case_localize_corrupt_video,
    "train-corrupt-resume": _case_train_corrupt_resume,
    "eval-duplicate-map-name": _case_eval_duplicate_map_name,
    "eval-same-clip-twice": _case_eval_same_clip_twice,
    "eval-clips-not-in-store": _case_eval_clips_not_in_store,
    "eval-bad-boxes": _case_eval_bad_boxes_warning,
    "eval-bad-boxes-strict": _case_eval_bad_boxes_strict,
    "eval-nan-box": _case_eval_nan_box,
    "eval-binarize": _case_eval_binarize,
    "eval-unwritable-out": _case_eval_unwritable_out,
    "demo-negative-length": _case_demo_negative_length,
    "demo-too-large": _case_demo_too_large,
}


def refused_rows() -> dict[str, str]:
    """Case id → printed text, from the table in docs/refused-inputs.md."""
    import re

    rows = {}
    for line in REFUSED_DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `([a-z0-9-]+)` \|.*\| `(.+)` \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_refused_inputs_table_lists_every_case():
    assert set(refused_rows()) == set(REFUSED_CASES)


@pytest.mark.parametrize("case", sorted(REFUSED_CASES))
def test_refused_inputs_table_matches_the_code(case, request, tmp_path):
    import re

    documented = refused_rows()[case]
    pattern = "".join(".+?" if re.fullmatch(r"<[^<>]+>", part) else re.escape(part)
                      for part in re.split(r"(<[^<>]+>)", documented))
    printed = REFUSED_CASES[case](request.getfixturevalue, tmp_path)
    assert re.fullmatch(pattern, printed), f"docs/refused-inputs.md says\n  {documented}\nthe code prints\n  {printed}"
