"""Visualisation: heatmap overlays, comparison grids, metric and training figures, an HTML report,
and `localize` (AV / OGL / fused maps for any image + audio or video)."""

from avslkit.viz.overlay import colorize, heatmap_overlay, render_sample, save_png
from avslkit.viz.report import VizOptions, build_report
from avslkit.viz.runs import EvalRun, load_eval, save_eval_maps
from avslkit.viz.select import SELECTIONS, read_samples_csv, select

__all__ = ["EvalRun", "SELECTIONS", "VizOptions", "build_report", "colorize", "heatmap_overlay", "load_eval",
           "read_samples_csv", "render_sample", "save_eval_maps", "save_png", "select"]
