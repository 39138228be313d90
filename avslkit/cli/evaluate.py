"""`avslkit eval`: the published localisation protocol on score maps, a baseline or a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from avslkit.cli.common import user_errors


@user_errors
def command(
    checkpoint: Optional[Path] = typer.Argument(None, help="Run directory or checkpoint (needs the training methods); default: the workspace's latest run."),
    maps: Optional[Path] = typer.Option(None, "--maps", help="MAPS.npz (or .npy + STEM.names.txt, or .h5): 'names' (N,) and 'maps' (N,H,W) absolute score maps, native resolution (e.g. 7x7, upsampled here) or 224, float16/32; negatives named '<video>__<audio>'."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="vggss.json or Flickr XML directory (default: the workspace's annotations)."),
    test_list: Optional[Path] = typer.Option(None, "--test-list", help="Positives (csv/txt id list; default: the workspace's test_list)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test store (frames for OGL/checkpoints, recorded extended set; default: the workspace's stores.test)."),
    extended: bool = typer.Option(False, "--extended", help="Add the extended set recorded next to --test by extend-testset (short form: built now if the workspace's test store has none)."),
    extended_csv: Optional[Path] = typer.Option(None, "--extended-csv", help="Add the negatives of a SLAVC video,audio,label CSV."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="id,class CSV typing negatives as hard/easy when the annotations have no classes."),
    ann_format: Optional[str] = typer.Option(None, "--ann-format", help="auto (default) | vggss | flickr."),
    binarize: Optional[str] = typer.Option(None, "--binarize", help="relative (default) | fixed:T | lvs | absolute:T (no min-max)."),
    gt: Optional[str] = typer.Option(None, "--gt", help="auto (default) | union | consensus."),
    max_f1: Optional[str] = typer.Option(None, "--max-f1", help="published (default) | full (adds max_f1_full)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="center | full | ogl pseudo-model."),
    ogl_weights: Optional[str] = typer.Option(None, "--ogl-weights", help="ImageNet ResNet-18 state dict for --baseline ogl."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Evaluate only samples that have a map (or, for a checkpoint, whose clips are in --test)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse evaluated clips with empty, inverted or out-of-range boxes (default: a warning naming them)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device for OGL/checkpoints (default cpu)."),
    out: Optional[Path] = typer.Option(None, "--out", help="metrics.json path, default metrics.json, or runs/RUN/eval/metrics.json for the workspace's latest run (per-sample CSV and config beside it)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named settings bundle whose eval section applies after the defaults (avslkit/configs/presets/), or a preset YAML path; 'none' for no preset. An official EZ-VSL/SLAVC checkpoint gets ezvsl-test/slavc-test unless given."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML overriding configs/eval.yaml."),
    set_: List[str] = typer.Option([], "--set", help="key=value override (repeatable)."),
    save_maps: bool = typer.Option(False, "--save-maps", help="Also write <out>.maps.npz (every sample's map at its native resolution, uncompressed) for 'avslkit viz'."),
) -> None:
    """Evaluate localisation maps with the published protocol (LocAcc, AUC, AP, max-F1, MSE).

    Writes metrics.json, <out>.samples.csv and <out>.config.yaml; prints a table on stderr and the
    metrics path on stdout. --extended uses the set recorded by 'avslkit extend-testset' for --test;
    --extended-csv CSV uses a SLAVC *_plus_silent.csv instead.

    Without a run, --maps or --baseline (short form) it evaluates the workspace's latest run on the workspace's
    test store into runs/RUN/eval/metrics.json (with --save-maps) and records it in avslkit.yaml; metrics.json
    names the checkpoint file, its epoch and step, and the workspace entries used (docs/workspace.md).

    Example: avslkit eval --extended   (explicit: avslkit eval --maps maps.npz --annotations vggss.json --test-list vggss_test.csv --extended-csv vggss_test_plus_silent.csv --out metrics.json)
    """
    from avslkit.config import load_config, preset_layer
    from avslkit.evaluation.runner import choose_preset, run_evaluation
    from avslkit.utils.console import is_quiet
    from avslkit.workflow import eval_defaults, record_eval
    from avslkit.workspace import Workspace

    flags = {
        "maps": maps, "checkpoint": checkpoint, "baseline": baseline, "annotations": annotations,
        "ann_format": ann_format, "test_list": test_list, "test": test, "extended": extended or None,
        "extended_csv": extended_csv, "classes": classes, "binarize": binarize, "gt": gt, "max_f1": max_f1,
        "ogl_weights": ogl_weights, "skip_missing": skip_missing or None, "strict": strict or None, "device": device, "out": out,
        "save_maps": save_maps or None,
    }
    extra = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items() if v is not None}
    preset, auto = choose_preset(preset, checkpoint)
    cfg = load_config("eval", config, set_, extra, preset=preset_layer(preset, "eval") if preset else None)
    if preset:
        cfg["preset"], cfg["preset_auto"] = str(preset), auto
    ws = Workspace.find()
    used = eval_defaults(cfg, ws)
    record = {"file": ws.display(ws.file), **used} if used else None
    run_evaluation(cfg, print_table=not is_quiet(), workspace=record)  # --quiet: metrics.json only, no table
    record_eval(ws, cfg["out"], used)
    typer.echo(str(cfg["out"]))
