"""`SynthOptions`: every `avslkit synth` option with its default, in a module that imports nothing heavy
(no numpy), so that `avslkit synth --help` can show the defaults without loading the generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from avslkit.errors import AvslError

if TYPE_CHECKING:
    from avslkit.synth.scene import SceneSettings


@dataclass(frozen=True)
class SynthOptions:
    """All generation options, with their defaults."""

    n_clips: int = 200
    n_classes: int = 10
    size: int = 224
    width: int | None = None  # overrides `size` for the frame width
    height: int | None = None  # overrides `size` for the frame height
    duration: float = 10.0
    fps: int = 25
    sample_rate: int = 16000
    seed: int = 0
    offscreen_fraction: float = 0.2
    size_range: tuple[float, float] = (0.1, 0.5)  # object's longest side / shorter image side, log-uniform
    test_fraction: float = 0.25
    objects_dir: str | None = None
    time_jitter: float = 0.0
    max_objects: int = 3
    loudness_range: tuple[float, float] = (-30.0, -15.0)  # source RMS, dBFS
    snr_range: tuple[float, float] = (5.0, 25.0)  # source over ambient noise, dB
    camera_jitter: float = 0.005  # shake amplitude, fraction of the shorter image side
    max_overlap: float = 0.25  # largest fraction of the sounding object's box a distractor may cover
    workers: int = 1

    @property
    def frame_width(self) -> int:
        return int(self.width or self.size)

    @property
    def frame_height(self) -> int:
        return int(self.height or self.size)

    def scene(self) -> SceneSettings:
        from avslkit.synth.scene import SceneSettings

        return SceneSettings(
            width=self.frame_width, height=self.frame_height, duration=float(self.duration), fps=int(self.fps),
            sample_rate=int(self.sample_rate), size_range=tuple(self.size_range), max_objects=int(self.max_objects),  # type: ignore[arg-type]
            loudness_range=tuple(self.loudness_range), snr_range=tuple(self.snr_range),  # type: ignore[arg-type]
            time_jitter=float(self.time_jitter), camera_jitter=float(self.camera_jitter), max_overlap=float(self.max_overlap),
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = [float(v) for v in value]
        return d

    def validate(self, n_available_classes: int) -> None:
        """Raise AvslError on options that cannot produce a valid benchmark."""
        w, h = self.frame_width, self.frame_height
        checks = [
            (self.n_clips >= 1, f"--clips must be >= 1 (got {self.n_clips})"),
            (w >= 16 and h >= 16 and w % 2 == 0 and h % 2 == 0, f"frame size must be even and >= 16 (got {w}x{h}); H.264 yuv420p needs even sizes"),
            (self.duration > 0, f"--duration must be > 0 (got {self.duration})"),
            (1 <= self.fps <= 120, f"--fps must be in 1..120 (got {self.fps})"),
            (8000 <= self.sample_rate <= 96000, f"--sample-rate must be in 8000..96000 (got {self.sample_rate})"),
            (0.0 <= self.offscreen_fraction <= 1.0, f"--offscreen must be in [0, 1] (got {self.offscreen_fraction})"),
            (0.0 <= self.test_fraction <= 1.0, f"--test-fraction must be in [0, 1] (got {self.test_fraction})"),
            (0.0 < self.size_range[0] <= self.size_range[1] <= 1.0, f"--size-range must satisfy 0 < lo <= hi <= 1 (got {self.size_range})"),
            (self.time_jitter >= 0, f"--time-jitter must be >= 0 (got {self.time_jitter})"),
            (self.max_objects >= 1, f"--max-objects must be >= 1 (got {self.max_objects})"),
            (self.loudness_range[0] <= self.loudness_range[1] <= 0, f"--loudness-range must be lo <= hi <= 0 dBFS (got {self.loudness_range})"),
            (self.snr_range[0] <= self.snr_range[1], f"--snr-range must be lo <= hi (got {self.snr_range})"),
            (0 <= self.camera_jitter <= 0.1, f"camera_jitter must be in [0, 0.1] (got {self.camera_jitter})"),
            (0 <= self.max_overlap <= 1, f"max_overlap must be in [0, 1] (got {self.max_overlap})"),
            (self.workers >= 1, f"--workers must be >= 1 (got {self.workers})"),
            (n_available_classes >= 2 or self.offscreen_fraction == 0,
             "off-screen clips need at least 2 classes (the sounding class is hidden, another is drawn); use --classes >= 2 or --offscreen 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise AvslError(message)


def preset_options(preset: str, given: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """SynthOptions fields from a preset's `synth` section, minus those the user `given` explicitly."""
    from dataclasses import fields

    from avslkit.config import ConfigError, read_preset

    section = dict(read_preset(preset).get("synth") or {})
    known = {f.name for f in fields(SynthOptions)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"preset {preset}: unknown synth option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key, value in section.items():
        _check_type(preset, key, value)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k not in given}


def _check_type(preset: str, key: str, value: Any) -> None:
    """One ConfigError line naming `synth.<key>` when a preset value does not have the type of the field's default."""
    from avslkit.config import ConfigError

    default = getattr(SynthOptions(), key)
    number = (int, float)
    if isinstance(default, tuple):
        ok, expected = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, number) and not isinstance(v, bool) for v in value), "a pair of numbers [LO, HI]"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int) and default is not None:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, number) and not isinstance(value, bool), "a number"
    else:  # str | None fields (objects_dir) and int | None (width, height)
        ok, expected = value is None or isinstance(value, (str, int)) and not isinstance(value, bool), "a value or null"
    if not ok:
        raise ConfigError(f"config key synth.{key}={value} has the wrong type: expected {expected} (in preset {preset})")
