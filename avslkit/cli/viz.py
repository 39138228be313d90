"""`avslkit viz`: overlays, comparison grids, figures and an HTML report of evaluated runs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from avslkit.cli.common import user_errors


@user_errors
def command(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Evaluations (metrics.json or its directory) and/or training run directories; the first chooses the samples, the others are drawn beside it. Default: the workspace's last eval."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (index.html, figures/, grids/, samples/); default viz/, or runs/RUN/viz/ for the workspace's last eval."),
    select: List[str] = typer.Option([], "--select", help="Sample selections (repeatable): best | worst | random | per-size | negatives (default: all)."),
    k: int = typer.Option(6, "--k", help="Samples per selection (per size bucket for per-size)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random selections."),
    size: int = typer.Option(224, "--size", help="Overlay size in pixels."),
    heat_alpha: float = typer.Option(0.5, "--heat-alpha", help="Heatmap weight in the blend (0 = image only)."),
    cmap: str = typer.Option("jet", "--cmap", help="Matplotlib colormap of the heatmaps (JET as the papers)."),
    binarize: Optional[str] = typer.Option(None, "--binarize", help="Prediction contour rule (default: the evaluation's)."),
    components: bool = typer.Option(False, "--components", help="Also draw AV / OGL / fused grids (checkpoint evaluations)."),
    ogl_weights: Optional[str] = typer.Option(None, "--ogl-weights", help="ImageNet ResNet-18 state dict for OGL (random with a warning if absent)."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Fusion rule of the components grid: slavc | ezvsl (default: the method's own, else slavc)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Fusion weight of the AV map (default 0.9 slavc, 0.4 ezvsl)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test store with the frames (default: the one the evaluation recorded)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Annotations for the boxes (default: the evaluation's)."),
    run: List[Path] = typer.Option([], "--run", help="Extra training run directory whose log.jsonl is plotted (repeatable)."),
    device: str = typer.Option("cpu", "--device", help="Device for recomputed maps."),
) -> None:
    """Draw evaluated runs: overlays, comparison grids, figures and an HTML report.

    Heatmap overlays carry the ground-truth boxes, the binary prediction contour, cIoU and confidence; selections best/worst/random/per-size/negatives; success, F1, AP and per-size figures; training curves from log.jsonl; everything linked from OUT/index.html (opens from disk). Maps come from <out>.maps.npz (eval --save-maps), the evaluated --maps file, or are recomputed from the recorded checkpoint/baseline for the drawn samples only. Prints the index.html path.

    Without inputs (short form) it draws the workspace's last eval into runs/RUN/viz/ and records the report in
    avslkit.yaml (docs/workspace.md).

    Example: avslkit viz   (explicit: avslkit viz evals/slavc/metrics.json evals/ezvsl/metrics.json --out viz/ --select best --select negatives)
    """
    from avslkit.viz.report import DEFAULT_SELECTIONS, VizOptions, build_report
    from avslkit.workflow import viz_defaults
    from avslkit.workspace import Workspace

    ws = Workspace.find()
    inputs, out = viz_defaults(list(inputs or []), out, ws)

    opts = VizOptions(
        selections=tuple(select) or DEFAULT_SELECTIONS, k=k, seed=seed, size=size, heat_alpha=heat_alpha, cmap=cmap,
        binarize=binarize, components=components, ogl_weights=ogl_weights, fusion=fusion, alpha=alpha, device=device,
        test=str(test) if test else None, annotations=str(annotations) if annotations else None,
        run_dirs=tuple(str(r) for r in run),
    )
    index = build_report([str(p) for p in inputs], out, opts)
    if ws.exists:
        ws.record_result({"last_report": index})
    typer.echo(str(index))
