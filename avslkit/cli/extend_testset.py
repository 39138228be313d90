"""`avslkit extend-testset`: record an extended (with negatives) test set beside a test store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from avslkit.cli.common import user_errors


@user_errors
def command(
    store: Optional[Path] = typer.Argument(None, help="Test store written by 'avslkit preprocess' (default: the workspace's stores.test)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="vggss.json or Flickr XML directory (positives and classes; default: the workspace's annotations)."),
    real_negatives: Optional[Path] = typer.Option(None, "--real-negatives", help="Clip ids whose sound source is not visible (e.g. synth's offscreen.txt; default: the workspace's real_negatives when the store comes from it)."),
    hard_fraction: float = typer.Option(0.25, "--hard-fraction", help="Share of same-class pairs among automated negatives."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pairing."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="id,class CSV overriding the annotation/store classes."),
    ann_format: str = typer.Option("auto", "--ann-format", help="auto | vggss | flickr."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also export the SLAVC-format CSV here."),
) -> None:
    """Add one non-sounding pair per positive (real, then 25% hard / 75% easy mismatches).

    Records STORE.extended.csv (SLAVC video,audio,label) and STORE.extended.json (types,
    statistics, seed, provenance) next to the store; 'avslkit eval --test STORE --extended' uses
    them. Prints the statistics as in Table 1 of the SLAVC paper.

    Without arguments (short form) it extends the workspace's test store and records the set in avslkit.yaml.

    Example: avslkit extend-testset   (explicit: avslkit extend-testset toy/test.h5 --annotations toy/annotations.json --real-negatives toy/offscreen.txt)
    """
    from avslkit.errors import AvslError
    from avslkit.evaluation.extended import extend_store, statistics_table
    from avslkit.utils.console import stderr_console
    from avslkit.workflow import record_extended
    from avslkit.workspace import Workspace

    ws = Workspace.find()
    from_ws = store is None
    store = ws.default("stores.test", store)
    annotations = ws.default("annotations", annotations)
    if from_ws and real_negatives is None:
        real_negatives = ws.default("real_negatives")
    if store is None or annotations is None:
        raise AvslError("pass the test store and --annotations ANN, or run 'avslkit preprocess VIDEOS/' first "
                        f"({ws.display(ws.file)} records no {'stores.test' if store is None else 'annotations'})")
    result = extend_store(store, annotations, real_negatives, hard_fraction, seed, out, ann_format, classes)
    stderr_console.print(statistics_table(store.name, result["statistics"]))
    record_extended(ws, result["csv"], from_ws)
    typer.echo(result["csv"])
