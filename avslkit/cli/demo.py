"""`avslkit demo`: serve the local web demo for a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from avslkit.cli.common import user_errors
from avslkit.utils.console import log, stderr_console


@user_errors
def command(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Run directory (best.pt, else last.pt) or checkpoint file (default: the workspace's latest run)."),
    ogl_weights: Optional[str] = typer.Option(None, "--ogl-weights", help="ImageNet ResNet-18 state dict for the OGL prior ('imagenet' downloads it); without it OGL is random and the page says so."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (only this machine by default)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on; 0 picks a free one (the URL is printed)."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest accepted upload (all files of one request), in MB."),
    time: Optional[float] = typer.Option(None, "--time", help="Default time (s) of the frame and audio window; default the middle of the file."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="AV+OGL fusion rule: slavc | ezvsl (default: the method's own, else slavc)."),
    audio_seconds: float = typer.Option(3.0, "--audio-seconds", help="Length of the audio window around the frame (training used 3 s)."),
) -> None:
    """Local web page: upload an image + audio or a short video, see the AV, OGL and fused heatmaps.

    The AV and OGL maps are computed once per upload; the α slider re-fuses them.

    Uploads are checked by content, size-limited, and kept only in a temp directory removed on exit.

    Without --ckpt it serves the workspace's latest run (docs/workspace.md).

    Example: avslkit demo   (explicit: avslkit demo --ckpt runs/slavc --ogl-weights resnet18.pth --port 0)
    """
    from avslkit.demo import DemoLocalizer, DemoServer

    from avslkit.workflow import run_default

    localizer = DemoLocalizer.from_checkpoint(run_default(ckpt), ogl_weights=ogl_weights, device=device, fusion=fusion,
                                              audio_seconds=audio_seconds)
    server = DemoServer(localizer, host=host, port=port, max_upload_mb=max_upload_mb, default_time=time)
    try:
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: anyone who can reach this address can upload files to the demo", host)
        if localizer.ogl_random:
            log.warning("no --ogl-weights: OGL is a random ResNet-18 (the page shows a notice)")
        def announce() -> None:
            stderr_console.print(Text.assemble("avslkit demo: open ", (server.url, "bold"), " (Ctrl+C to stop)"), highlight=False)
            print(server.url, flush=True)

        server.serve_forever(ready=announce)
    except KeyboardInterrupt:
        stderr_console.print("demo stopped")
    finally:
        server.close()
