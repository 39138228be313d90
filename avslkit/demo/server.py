"""`avslkit demo`: a local web page to try a trained model on an image + audio or a short video.

Standard library only (`http.server.ThreadingHTTPServer`). Routes:

- ``GET /`` and ``GET /static/<file>``: the page (``avslkit/demo/static``).
- ``GET /api/info``: model, fusion rule, default α, upload limit, notices (e.g. random OGL).
- ``POST /api/analyze`` (multipart form: ``image`` + ``audio`` files, or a ``video`` file, optional
  ``time`` in seconds): AV, OGL and fused overlays (PNG data URLs), confidence and an ``id``.
- ``GET /api/fuse?id=ID&alpha=A``: the fused overlay and confidence for another α, from the maps
  kept for that upload (no network pass: the slider stays cheap).

Errors are JSON ``{"error": message}`` with a 4xx status (5xx only for bugs; the traceback goes to
the server log, never to the page). Uploads are written only under the server's own
`tempfile.TemporaryDirectory` and deleted right after decoding; `close()` removes the directory.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections import OrderedDict
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import PIL.Image
from urllib.parse import parse_qs, urlsplit

from avslkit.demo.inputs import DecodedInput, UploadError, decode_audio_file, decode_image, decode_video_file, demo_clip_options, is_silent
from avslkit.demo.localizer import Analysis, DemoLocalizer, display_frame, heatmap_overlay, png_data_url
from avslkit.errors import AvslError
from avslkit.utils.console import log

DEFAULT_MAX_UPLOAD_MB = 50.0
MAX_SESSIONS = 16  # uploads whose maps are kept for the slider (oldest dropped first)
DRAIN_LIMIT_BYTES = 256 * 1024 * 1024  # an over-limit body up to this size is read and dropped so the client sees the 413
DRAIN_IDLE_SECONDS = 2.0  # stop dropping a refused body after this long without data (the client waits for the answer)
LISTEN_BACKLOG = 128  # pending connections the OS queues (http.server's 5 reset a burst of 30 page loads)
REQUEST_TIMEOUT_SECONDS = 120.0  # a connection idle this long is closed (no thread waits forever on a client)
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class RequestError(Exception):
    """An HTTP error with a message for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _static_files() -> dict[str, tuple[bytes, str]]:
    root = resources.files("avslkit.demo") / "static"
    files = {}
    for entry in root.iterdir():
        suffix = Path(entry.name).suffix
        if suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data → {field: (filename or None, bytes)} (the first part of each name wins)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise RequestError(HTTPStatus.BAD_REQUEST, "expected a multipart/form-data upload (use the page's form)")
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed multipart upload (no parts found)")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or name in fields:
            continue
        fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def _parse_time(text: str | None, default: float | None) -> float | None:
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"time must be a number of seconds, got {text.strip()[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"time must be a number of seconds ≥ 0, got {text.strip()[:40]!r}")
    return value


def _parse_alpha(text: str | None, default: float) -> float:
    if text is None or not str(text).strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"alpha must be a number in [0, 1], got {str(text)[:40]!r}") from None
    if not 0.0 <= value <= 1.0:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"alpha must be in [0, 1], got {value}")
    return value


class _Session:
    """What the slider needs from one upload: its maps and the frame at page size."""

    def __init__(self, analysis: Analysis, display: PIL.Image.Image):
        self.analysis = analysis
        self.display = display


class DemoApp:
    """Request logic, separate from the HTTP plumbing: decode uploads, run the model, render."""

    def __init__(self, localizer: DemoLocalizer, workdir: Path, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 default_time: float | None = None):
        if max_upload_mb <= 0:
            raise AvslError(f"--max-upload-mb must be positive, got {max_upload_mb}")
        if default_time is not None and not (math.isfinite(default_time) and default_time >= 0):
            raise AvslError(f"--time must be a number of seconds ≥ 0, got {default_time}")
        self.localizer = localizer
        self.workdir = workdir
        self.max_upload_mb = float(max_upload_mb)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.default_time = default_time
        self.clip_options = demo_clip_options(localizer.sample_rate, localizer.audio_seconds)
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self.static = _static_files()

    def info(self) -> dict[str, Any]:
        return {**self.localizer.info(), "max_upload_mb": self.max_upload_mb, "default_time": self.default_time}

    # -- uploads ----------------------------------------------------------------------------------
    def _save(self, folder: Path, field: str, filename: str | None, data: bytes) -> Path:
        """Write an upload into the request's temp folder under a fixed name (never the client's)."""
        path = folder / f"{field}.bin"
        path.write_bytes(data)
        return path

    def decode(self, fields: dict[str, tuple[str | None, bytes]]) -> DecodedInput:
        """The form's files → frame + audio window (content-sniffed, readable errors)."""
        def given(name: str) -> tuple[str, bytes] | None:
            filename, data = fields.get(name, (None, b""))
            if not filename and not data:
                return None
            return filename or name, data

        time_field = fields.get("time", (None, b""))[1].decode("utf-8", "replace")
        time = _parse_time(time_field, self.default_time)
        video, image, audio = given("video"), given("image"), given("audio")
        if video and (image or audio):
            raise UploadError("choose either a video, or an image and an audio file, not both")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.workdir))
        try:
            if video:
                frame, wave, t, jpeg = decode_video_file(self._save(folder, "video", *video), video[0], self.clip_options, time)
                decoded = DecodedInput(frame, wave, t, "video", frame_jpeg=jpeg)
            elif image and audio:
                frame = decode_image(image[1], image[0])
                wave, t = decode_audio_file(self._save(folder, "audio", *audio), audio[0], self.clip_options, time)
                decoded = DecodedInput(frame, wave, t, "image+audio")
            elif image or audio:
                missing = "an audio file" if image else "an image"
                raise UploadError(f"also choose {missing} (the model needs a frame and its sound), or upload a video instead")
            else:
                raise UploadError("choose an image and an audio file, or a video, then press Analyse")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if is_silent(decoded.audio):
            decoded.notices.append(f"the audio around {decoded.time:.2f} s is silent: the AV map carries no sound cue")
        return decoded

    # -- model ------------------------------------------------------------------------------------
    def _fused_payload(self, session: _Session, alpha: float) -> dict[str, Any]:
        fused = self.localizer.fused(session.analysis, alpha)
        return {"alpha": alpha, "fused": png_data_url(heatmap_overlay(session.display, fused)),
                "confidence": self.localizer.confidence(fused)}

    def analyze(self, fields: dict[str, tuple[str | None, bytes]]) -> dict[str, Any]:
        decoded = self.decode(fields)
        session = _Session(self.localizer.analyze(decoded.frame_jpeg or decoded.frame, decoded.audio), display_frame(decoded.frame))
        session_id = uuid.uuid4().hex
        with self._sessions_lock:
            self.sessions[session_id] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        a = session.analysis
        return {
            "id": session_id, "source": decoded.source, "time": decoded.time,
            "frame": png_data_url(session.display),
            "av": png_data_url(heatmap_overlay(session.display, a.av)),
            "ogl": png_data_url(heatmap_overlay(session.display, a.ogl)),
            "av_confidence": self.localizer.confidence(a.av),
            "fusion": self.localizer.fusion,
            "notices": self.localizer.info()["notices"] + decoded.notices,
            **self._fused_payload(session, self.localizer.default_alpha),
        }

    def refuse(self, session_id: str, alpha_text: str | None) -> dict[str, Any]:
        with self._sessions_lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise RequestError(HTTPStatus.NOT_FOUND, "this upload is no longer kept by the server; press Analyse again")
        return self._fused_payload(session, _parse_alpha(alpha_text, self.localizer.default_alpha))


def _make_handler(app: DemoApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "avslkit-demo"
        protocol_version = "HTTP/1.1"
        timeout = REQUEST_TIMEOUT_SECONDS

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            log.debug("demo %s - %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: HTTPStatus, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

        def _guarded(self, action) -> None:
            try:
                action()
            except RequestError as exc:
                self._json(exc.status, {"error": exc.message})
            except AvslError as exc:  # bad upload: the message is written for the user
                self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - a bug: log it in full, tell the page only that it happened
                log.exception("demo: error while handling %s %s", self.command, self.path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                           {"error": f"internal error ({exc.__class__.__name__}); the server log has the details"})

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._guarded(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._guarded(self._post)

        def _get(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                body, ctype = app.static["index.html"]
                self._send(HTTPStatus.OK, body, ctype)
            elif url.path.startswith("/static/") and url.path[len("/static/"):] in app.static:
                body, ctype = app.static[url.path[len("/static/"):]]
                self._send(HTTPStatus.OK, body, ctype)
            elif url.path == "/api/info":
                self._json(HTTPStatus.OK, app.info())
            elif url.path == "/api/fuse":
                query = parse_qs(url.query)
                self._json(HTTPStatus.OK, app.refuse(query.get("id", [""])[0], query.get("alpha", [None])[0]))
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:80]}")

        def _read_body(self) -> bytes:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                self.close_connection = True
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the upload has no Content-Length; use the page's form")
            try:
                length = int(length_text)
            except ValueError:
                length = -1
            if length < 0:  # rfile.read(-1) would read to the end of the stream, past any size limit
                self.close_connection = True
                self._drain(DRAIN_LIMIT_BYTES)
                raise RequestError(HTTPStatus.BAD_REQUEST,
                                   f"invalid Content-Length {length_text.strip()[:40]!r} (must be a number of bytes ≥ 0)")
            if length > app.max_upload_bytes:
                self.close_connection = True
                if length <= DRAIN_LIMIT_BYTES:  # read and drop it so the client gets the answer, not a reset
                    self._drain(length)
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                   f"upload is {length / 1048576:.1f} MB, more than the {app.max_upload_mb:g} MB limit "
                                   f"(server option --max-upload-mb); upload a smaller file or a shorter clip")
            return self.rfile.read(length)

        def _drain(self, limit: int) -> None:
            """Read and drop up to `limit` bytes of a refused body, one chunk at a time (bounded memory),
            until the end of the stream or a pause, so the client reads the error instead of a reset."""
            previous = self.connection.gettimeout()
            self.connection.settimeout(DRAIN_IDLE_SECONDS)
            try:
                remaining = limit
                while remaining > 0:
                    chunk = self.rfile.read1(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            except OSError:  # a pause (timeout) or a reset: stop dropping, answer and close
                pass
            finally:
                self.connection.settimeout(previous)

        def _post(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/api/analyze":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path[:80]}")
            body = self._read_body()
            fields = parse_multipart(self.headers.get("Content-Type", ""), body)
            self._json(HTTPStatus.OK, app.analyze(fields))

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class DemoServer:
    """The demo's HTTP server with its private temp directory; `close()` stops it and cleans up.

    `port=0` picks a free port (see `url`). Use as a context manager, or `start()` it in a
    background thread (tests) / `serve_forever()` in the foreground (the CLI).
    """

    def __init__(self, localizer: DemoLocalizer, host: str = "127.0.0.1", port: int = 0,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, default_time: float | None = None,
                 temp_root: str | Path | None = None):
        self._tmp = tempfile.TemporaryDirectory(prefix="avslkit-demo-", dir=temp_root)
        self.workdir = Path(self._tmp.name)
        try:
            self.app = DemoApp(localizer, self.workdir, max_upload_mb, default_time)
            server_class = _IPv6Server if ":" in host else _Server
            self.httpd = server_class((host, int(port)), _make_handler(self.app))
        except OSError as exc:
            self._tmp.cleanup()
            raise AvslError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port (0 = any free port)") from None
        except BaseException:
            self._tmp.cleanup()
            raise
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def start(self) -> "DemoServer":
        """Serve in a daemon thread (returns at once)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="avslkit-demo", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Serve in this thread until Ctrl+C or SIGTERM (both raise KeyboardInterrupt, so the caller's
        `close()` removes the temp directory). `ready` (e.g. printing the URL) runs once the SIGTERM
        handler is in place: whoever learns the URL from it may stop the server at once."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt

            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            if ready is not None:
                ready()
            self.httpd.serve_forever()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
        self._tmp.cleanup()

    def __enter__(self) -> "DemoServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
