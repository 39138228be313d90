"""`avslkit synth OUT_DIR`: generate a synthetic audio-visual benchmark of real mp4 clips."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from avslkit.cli.common import user_errors
from avslkit.synth.options import SynthOptions

_D = SynthOptions()


# CLI parameter → SynthOptions field, where the names differ (a preset's `synth` section uses the field names)
_FIELD = {"clips": "n_clips", "classes": "n_classes", "offscreen": "offscreen_fraction", "objects": "objects_dir"}


@user_errors
def command(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., help="Output folder (created; re-running with the same options resumes)."),
    clips: int = typer.Option(_D.n_clips, "--clips", "-n", help="Number of clips."),
    classes: int = typer.Option(_D.n_classes, "--classes", help="Number of procedural object classes (1-60); ignored with --objects."),
    size: int = typer.Option(_D.size, "--size", help="Frame side in pixels (square frames)."),
    width: Optional[int] = typer.Option(None, "--width", help="Frame width (overrides --size)."),
    height: Optional[int] = typer.Option(None, "--height", help="Frame height (overrides --size)."),
    duration: float = typer.Option(_D.duration, "--duration", help="Clip length in seconds."),
    fps: int = typer.Option(_D.fps, "--fps", help="Frames per second."),
    sample_rate: int = typer.Option(_D.sample_rate, "--sample-rate", help="Audio sample rate written in the AAC stream."),
    seed: int = typer.Option(_D.seed, "--seed", help="Random seed; the same seed gives the same benchmark."),
    offscreen: float = typer.Option(_D.offscreen_fraction, "--offscreen", help="Fraction of clips whose sound source is not drawn (real negatives)."),
    size_range: Tuple[float, float] = typer.Option(_D.size_range, "--size-range", help="Object size range LO HI (longest side / shorter frame side; log-uniform)."),
    test_fraction: float = typer.Option(_D.test_fraction, "--test-fraction", help="Fraction of clips in the test split."),
    objects: Optional[Path] = typer.Option(None, "--objects", help="Folder of RGBA cut-outs + sounds: DIR/<class>/*.png + *.wav, or DIR/<class>.png + <class>.wav."),
    time_jitter: float = typer.Option(_D.time_jitter, "--time-jitter", help="Annotated time drawn uniformly within +-SECONDS of the clip middle (0: the middle)."),
    max_objects: int = typer.Option(_D.max_objects, "--max-objects", help="Most objects drawn per clip."),
    loudness_range: Tuple[float, float] = typer.Option(_D.loudness_range, "--loudness-range", help="Source loudness range LO HI (RMS dBFS)."),
    snr_range: Tuple[float, float] = typer.Option(_D.snr_range, "--snr-range", help="Source-to-ambient-noise ratio range LO HI (dB)."),
    camera_jitter: float = typer.Option(_D.camera_jitter, "--camera-jitter", help="Camera shake amplitude (fraction of the shorter side; 0 = steady)."),
    workers: int = typer.Option(_D.workers, "--workers", "-j", help="Parallel encoding processes."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Take the options you do not give from a preset's synth section, e.g. cpu-small (avslkit/configs/presets/)."),
) -> None:
    """Generate a toy AV source-localisation benchmark: mp4 clips (H.264 + AAC) of 1-3 textured objects,
    one of which (or none: off-screen negatives) makes its class's sound, plus VGG-SS-style annotations
    (annotations.json, test.csv, train.txt, timestamps.csv, offscreen.txt, metadata.csv).

    Example: avslkit synth toy/ --clips 40 --size 112 --duration 4
    """
    options = {_FIELD.get(name, name): value for name, value in ctx.params.items() if name not in ("out_dir", "preset")}
    options["objects_dir"] = str(objects) if objects else None
    if preset:  # the preset fills every option the user did not type
        from avslkit.synth.options import preset_options

        given = {_FIELD.get(name, name) for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
        options.update(preset_options(preset, given))
    from avslkit.synth.generate import generate

    summary = generate(out_dir, **options)
    typer.echo(
        f"{summary.out_dir}: {summary.n_clips} clips ({summary.n_train} train, {summary.n_test} test; "
        f"{summary.n_onscreen} visible sources, {summary.n_offscreen} off-screen) of {len(summary.classes)} classes; "
        f"{summary.n_generated} encoded, {summary.n_skipped} already present"
    )
