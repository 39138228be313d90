"""`avslkit localize`: AV, OGL and fused heatmaps of a trained model on any image + audio or video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from avslkit.cli.common import user_errors


@user_errors
def command(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Run directory (best.pt, else last.pt) or checkpoint file (default: the workspace's latest run)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Image (JPEG/PNG); needs --audio."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Audio file (wav, mp3, or a video's track)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video: the frame at --time and the audio around it."),
    time: Optional[float] = typer.Option(None, "--time", help="Seconds: frame time / audio window centre (default: the middle)."),
    every: Optional[float] = typer.Option(None, "--every", help="With --video: render a heatmap video, one map every SECONDS."),
    out: Path = typer.Option(Path("localize"), "--out", help="Output directory."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Fusion rule: slavc (absolute bounds) | ezvsl (min-max) (default: the method's own, else slavc)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Weight of the AV map in the fusion (default 0.9 slavc, 0.4 ezvsl)."),
    ogl_weights: Optional[str] = typer.Option(None, "--ogl-weights", help="Local ImageNet ResNet-18 state dict for OGL (random with a warning if absent)."),
    audio_seconds: float = typer.Option(3.0, "--audio-seconds", help="Audio window length (the published 3 s)."),
    size: int = typer.Option(224, "--size", help="Overlay size in pixels."),
    map_kind: str = typer.Option("fused", "--map", help="Map drawn in the video: av | ogl | fused."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Video frames show AV | OGL | fused side by side."),
    alpha_sweep: Optional[str] = typer.Option(None, "--alpha-sweep", help="Comma-separated α values: also write a strip of fused maps (e.g. 0,0.2,0.4,0.6,0.8,1)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto."),
) -> None:
    """Localise the sound of an image + audio pair or a video frame with a trained model.

    Writes OUT/<name>_input.png, _av.png, _ogl.png and _fused.png (JET heatmaps over the 224×224 view) and prints the confidence (mean of the top 25% of the fused map) and the AV map's (the number `avslkit eval` records for the same clip). With --video and --every it writes OUT/<name>_heatmap.mp4 instead: the audio window slides along the clip and the original audio is kept.

    Without --ckpt it loads the workspace's latest run (docs/workspace.md).

    Example: avslkit localize --video clip.mp4   (explicit: avslkit localize --ckpt runs/slavc --video clip.mp4 --every 0.5 --ogl-weights resnet18.pth --out loc/)
    """
    from avslkit.errors import AvslError
    from avslkit.viz.localize import run_localize

    try:
        alphas = tuple(float(a) for a in alpha_sweep.split(",") if a.strip()) if alpha_sweep else ()
    except ValueError:
        raise AvslError(f"--alpha-sweep '{alpha_sweep}': expected comma-separated numbers such as 0,0.5,1") from None
    from avslkit.workflow import run_default

    result = run_localize(run_default(ckpt), image=image, audio=audio, video=video, time=time, every=every, out=out, fusion=fusion,
                          alpha=alpha, ogl_weights=ogl_weights, audio_seconds=audio_seconds, size=size,
                          map_kind=map_kind, side_by_side=side_by_side, device=device, alpha_sweep=alphas)
    for key in ("av", "ogl", "fused", "alpha_sweep", "video"):
        if key in result.get("paths", {}):
            typer.echo(f"{key}: {result['paths'][key]}")
    if "confidence" in result:
        typer.echo(f"confidence: {result['confidence']:.6g}  (AV: {result['av_confidence']:.6g}; fusion {result['rule']}, alpha {result['alpha']})")
    else:
        c = result["confidences"]
        typer.echo(f"confidence over {len(c)} windows: min {min(c):.6g}  mean {sum(c) / len(c):.6g}  max {max(c):.6g}")
