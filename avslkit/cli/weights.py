"""`avslkit weights ...`: convert pretrained weights (SoundNet sound8.npy, official EZ-VSL/SLAVC
checkpoints) into avslkit state dicts, and list the registered models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from avslkit.cli.common import user_errors

if TYPE_CHECKING:  # torch is imported only by the commands that save weights, never for --help
    import torch

app = typer.Typer(
    help="Convert pretrained weights and list models. Example: avslkit weights convert-soundnet sound8.npy soundnet8.pt",
    no_args_is_help=True,
)


def _save(state: dict[str, torch.Tensor], out: Path) -> None:
    import torch

    from avslkit.utils.io import atomic_path

    with atomic_path(out) as tmp:
        torch.save(state, tmp)


@app.command("list")
@user_errors
def list_() -> None:
    """List the registered models (visual/audio backbones, method networks) and the training methods.

    Example: avslkit weights list
    """
    from avslkit.methods import list_methods
    from avslkit.models.registry import list_models

    for name in list_models():
        typer.echo(name)
    # the training tasks (avslkit train METHOD); semi-supervised ones compose the networks above
    for name in list_methods():
        typer.echo(f"train.{name}")


@app.command("convert-soundnet")
@user_errors
def convert_soundnet(
    npy: Path = typer.Argument(..., help="The original SoundNet sound8.npy (pickled dict of layers)."),
    out: Path = typer.Argument(..., help="Output .pt state dict for the audio.soundnet8 backbone."),
) -> None:
    """Convert SoundNet's original sound8.npy into a PyTorch state dict for audio.soundnet8.

    Example: avslkit weights convert-soundnet sound8.npy weights/soundnet8.pt
    """
    from avslkit.models.soundnet import convert_sound8_npy

    state = convert_sound8_npy(npy)
    _save(state, out)
    typer.echo(f"wrote {out} ({len(state)} tensors)")


@app.command("convert-official")
@user_errors
def convert_official(
    checkpoint: Path = typer.Argument(..., help="Checkpoint saved by the official EZ-VSL or SLAVC code."),
    out: Path = typer.Argument(..., help="Output .pt state dict with avslkit key names."),
    method: str = typer.Option(..., "--method", "-m", help="ezvsl or slavc."),
) -> None:
    """Rename an official EZ-VSL/SLAVC checkpoint's keys to avslkit's model (see avslkit.models.official).

    Example: avslkit weights convert-official slavc_vggss144k.pth weights/slavc.pt --method slavc
    """
    from avslkit.models.official import map_official_state_dict
    from avslkit.models.weights import read_state_dict

    state = map_official_state_dict(read_state_dict(checkpoint), method)
    _save(state, out)
    typer.echo(f"wrote {out} ({len(state)} tensors)")
