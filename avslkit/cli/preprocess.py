"""`avslkit preprocess VIDEOS [--out STORE.h5]`: decode videos into HDF5 clip stores (without --out: the
workspace's data/train.h5 + data/test.h5, split by the split files found beside the videos)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from rich.table import Table

from avslkit.cli.common import fail, user_errors
from avslkit.config import load_config, preset_layer
from avslkit.data.layouts import LAYOUTS
from avslkit.utils.console import is_quiet, plain, setup_logging, stderr_console

if TYPE_CHECKING:  # the decoders (numpy, h5py, PyAV) load only when preprocess runs, not for --help
    from avslkit.data.preprocess import PreprocessReport
    from avslkit.data.store import Failure

_MAX_FAILURE_ROWS = 20


def _failure_table(failures: list[Failure], store: Path) -> Table:
    table = Table(title=f"{len(failures)} clip(s) failed", title_justify="left")
    table.add_column("id", overflow="fold")
    table.add_column("reason", overflow="fold")
    table.add_column("source", overflow="fold")
    for f in failures[:_MAX_FAILURE_ROWS]:
        table.add_row(plain(f.id), plain(f.reason), plain(f.source))
    if len(failures) > _MAX_FAILURE_ROWS:
        table.caption = plain(f"… {len(failures) - _MAX_FAILURE_ROWS} more: avslkit store info {store} --failures")
    return table


def _print_summary(report: PreprocessReport) -> None:
    if report.failures:
        stderr_console.print(_failure_table(report.failures, report.out))
    summary = Table(show_header=False, title="preprocess summary", title_justify="left")
    summary.add_row("stored (this run)", str(report.n_stored))
    summary.add_row("skipped (already stored)", str(report.n_skipped))
    summary.add_row("failed", str(report.n_failed))
    summary.add_row("clips in store", str(report.n_total))
    summary.add_row("time", f"{report.seconds:.1f} s ({report.clips_per_second:.1f} clips/s)")
    summary.add_row("store", plain(report.out))
    stderr_console.print(summary)
    stderr_console.print(plain(f"inspect it with: avslkit store info {report.out} --failures"), highlight=False)


@user_errors
def command(
    inputs: Path = typer.Argument(..., help="Directory of videos (searched recursively), a frames/+audio/ "
                                  "directory, or a txt/csv list of paths or ids."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Store to write (e.g. train.h5); an existing one is extended. "
                                       "Default: the workspace's data/train.h5 + data/test.h5 (split files found beside "
                                       "the videos), or data/FOLDER.h5, recorded in avslkit.yaml."),
    timestamps: Optional[Path] = typer.Option(None, "--timestamps", help="CSV of 'id,time' rows (seconds); "
                                              "default time: the clip's middle."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Classes: vggss.json-style JSON or 'id,class' CSV."),
    root: Optional[Path] = typer.Option(None, "--root", help="Resolve list entries against this directory "
                                        "(default: the list file's directory)."),
    layout: str = typer.Option("auto", "--layout", help=f"Input layout: {', '.join(LAYOUTS)} (auto detects "
                               "frames/ + audio/ subfolders)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Decoding processes; 0 decodes in this process."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML overriding avslkit/configs/preprocess.yaml."),
    set_: List[str] = typer.Option([], "--set", help="Override one config key, e.g. --set jpeg_quality=95."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Audio sample rate in Hz (default 16000)."),
    audio_seconds: Optional[float] = typer.Option(None, "--audio-seconds", help="Audio window length (default 3.0)."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", help="Shorter side of stored frames; 0 keeps "
                                             "the decoded size (default 256)."),
    jpeg_quality: Optional[int] = typer.Option(None, "--jpeg-quality", help="JPEG quality 1-100 (default 92)."),
    clamp_time: Optional[bool] = typer.Option(None, "--clamp-time/--no-clamp-time", help="Use the last frame "
                                              "when a time is past the end (default: record the clip as truncated)."),
    allow_silent: Optional[bool] = typer.Option(None, "--allow-silent/--reject-silent", help="Keep clips whose "
                                                "audio is silent (default: record them as failures)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named settings bundle whose preprocess section "
                                         "applies after the defaults (e.g. ezvsl-test), or a preset YAML path."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary; errors only."),
) -> None:
    """Decode videos into an HDF5 clip store: the frame at the annotation time and the 3 s audio around it.

    Without --out (short form) it looks beside the videos, then in the workspace folder, for split files
    (train.txt, test_videos.txt, test.csv, vggss_test.csv, annotations.json, vggss.json, timestamps.csv,
    offscreen.txt), writes the train and test stores in one run under data/ and records them, with the
    annotations and lists, in avslkit.yaml (docs/workspace.md).

    Faulty clips (corrupt, truncated, no audio, silent) are recorded in the store's failures table and the
    run goes on; re-running the same command resumes an interrupted run. The resolved config is saved
    beside the store as STORE.h5.config.yaml.

    Example: avslkit preprocess videos/   (explicit: avslkit preprocess videos/ --out train.h5 --workers 4 --timestamps times.csv)
    """
    from avslkit.data.preprocess import NoClipsStoredError, config_path, preprocess

    if quiet:
        setup_logging(quiet=True)
    extra = {"sample_rate": sample_rate, "audio_seconds": audio_seconds, "frame_size": frame_size,
             "jpeg_quality": jpeg_quality, "clamp_time": clamp_time, "allow_silent": allow_silent}
    cfg = load_config("preprocess", config, set_, extra, preset=preset_layer(preset, "preprocess") if preset else None)
    if preset:
        cfg["preset"] = str(preset)
    show = not (quiet or is_quiet())
    if out is None:  # short form: the workspace's stores
        from avslkit.workflow import preprocess_workspace

        preprocess_workspace(inputs, cfg, workers=workers, timestamps=timestamps, labels=labels, root=root, layout=layout,
                             progress=show, on_report=_print_summary if show else (lambda report: None))
        return
    try:
        report = preprocess(inputs, out, cfg=cfg, workers=workers, timestamps=timestamps, labels=labels,
                            root=root, layout=layout, progress=not (quiet or is_quiet()))
    except NoClipsStoredError as exc:
        if not (quiet or is_quiet()):
            stderr_console.print(_failure_table(exc.report.failures, out))
        fail(str(exc), exc.exit_code)
        return
    if not (quiet or is_quiet()):
        _print_summary(report)
        if config_path(out).exists():
            stderr_console.print(plain(f"resolved config saved to {config_path(out)}"), highlight=False)
