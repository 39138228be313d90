"""What object classes sound like, and the ambient noise beneath them.

Each sound family is a generator `(params, n_samples, sample_rate, rng) -> waveform` registered in
`SOUND_FAMILIES`; a class picks one family and its parameters, so classes differ in pitch, timbre,
rhythm and spectral shape (harmonic tones, sweeps, band-limited noise, pulse trains, AM/FM tones,
inharmonic bells). Waveforms are returned with unit RMS; the clip mixer sets the loudness.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

import numpy as np

SoundFn = Callable[[Mapping[str, Any], int, int, np.random.Generator], np.ndarray]


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _band_noise(n: int, sr: int, rng: np.random.Generator, centre: float, octaves: float) -> np.ndarray:
    """White noise shaped by a Gaussian band (in log-frequency) around `centre` Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    log_dist = np.log2(np.maximum(freqs, 1.0) / centre)
    spectrum *= np.exp(-0.5 * (log_dist / (octaves / 2)) ** 2)
    return np.fft.irfft(spectrum, n)


def _harmonics(phase: np.ndarray, n_harmonics: int, rolloff: float, odd_only: bool, f0: float, sr: int) -> np.ndarray:
    out = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        if odd_only and k % 2 == 0:
            continue
        if k * f0 >= 0.45 * sr:
            break
        out += np.sin(k * phase) / k**rolloff
    return out


def harmonic(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A pitched tone with harmonic partials (timbre from roll-off / odd harmonics) and vibrato."""
    t = _time(n, sr)
    f0 = p["f0"]
    freq = f0 * (1 + p.get("vibrato_depth", 0.0) * np.sin(2 * np.pi * p.get("vibrato_rate", 5.0) * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi)
    out = _harmonics(phase, p.get("n_harmonics", 8), p.get("rolloff", 1.0), p.get("odd_only", False), f0, sr)
    if p.get("am_rate"):
        out *= 1 - p.get("am_depth", 0.5) * (0.5 + 0.5 * np.sin(2 * np.pi * p["am_rate"] * t))
    return _unit_rms(out)


def chirp(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Repeated log-frequency sweeps from f_start to f_end, each `sweep` s long, every `period` s."""
    t = _time(n, sr)
    period, sweep = p["period"], p["sweep"]
    local = np.mod(t + rng.uniform(0, period), period)
    progress = np.clip(local / sweep, 0, 1)
    freq = p["f_start"] * (p["f_end"] / p["f_start"]) ** progress
    phase = 2 * np.pi * np.cumsum(freq) / sr
    envelope = (local < sweep) * np.sin(np.pi * progress) ** 0.5
    out = np.sin(phase) + 0.3 * np.sin(2 * phase)
    return _unit_rms(out * envelope)


def band_noise(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise (rain, wind), optionally with a slow amplitude swell."""
    out = _band_noise(n, sr, rng, p["centre"], p["octaves"])
    if p.get("am_rate"):
        t = _time(n, sr)
        out *= 1 - p.get("am_depth", 0.6) * (0.5 + 0.5 * np.sin(2 * np.pi * p["am_rate"] * t + rng.uniform(0, 6.3)))
    return _unit_rms(out)


def pulses(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A rhythmic train of decaying bursts (tonal at `carrier` Hz, or noise clicks when carrier is 0)."""
    t = _time(n, sr)
    beat = 1.0 / p["rate"]
    pattern = p.get("pattern", [1])
    start = rng.uniform(0, beat)
    index = np.floor((t + start) / beat).astype(int)
    since = np.mod(t + start, beat)
    accent = np.asarray(pattern, dtype=np.float64)[index % len(pattern)]
    envelope = accent * np.exp(-since / p["decay"]) * np.minimum(since / 0.002, 1)
    if p.get("carrier", 0) > 0:
        f = p["carrier"] * (1 + p.get("pitch_drop", 0.0) * np.exp(-since / p["decay"]))
        source = np.sin(2 * np.pi * np.cumsum(f) / sr)
    else:
        source = _band_noise(n, sr, rng, p.get("click_centre", 4000.0), 1.5)
    return _unit_rms(source * envelope)


def am_tone(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A tone with strong amplitude modulation (tremolo / rumble)."""
    t = _time(n, sr)
    carrier = np.sin(2 * np.pi * p["carrier"] * t + rng.uniform(0, 6.3))
    carrier += 0.5 * np.sin(2 * np.pi * 2 * p["carrier"] * t)
    modulation = 1 - p.get("depth", 0.9) * (0.5 + 0.5 * np.sin(2 * np.pi * p["mod_rate"] * t))
    return _unit_rms(carrier * modulation)


def fm_tone(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A frequency-modulated tone: siren (slow, wide) or whistle (fast, narrow)."""
    t = _time(n, sr)
    freq = p["carrier"] * (1 + p["deviation"] * np.sin(2 * np.pi * p["mod_rate"] * t + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return _unit_rms(np.sin(phase) + p.get("second", 0.0) * np.sin(2 * phase))


def bell(p: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Inharmonic partials with exponential decay, struck every `period` seconds."""
    t = _time(n, sr)
    since = np.mod(t + rng.uniform(0, p["period"]), p["period"])
    out = np.zeros(n)
    for ratio, amplitude in zip(p.get("ratios", (1.0, 2.76, 5.40, 8.93)), (1.0, 0.6, 0.35, 0.2)):
        if ratio * p["f0"] >= 0.45 * sr:
            break
        out += amplitude * np.sin(2 * np.pi * ratio * p["f0"] * t) * np.exp(-since * ratio / p["decay"])
    return _unit_rms(out * np.minimum(since / 0.003, 1))


SOUND_FAMILIES: Dict[str, SoundFn] = {
    "harmonic": harmonic,
    "chirp": chirp,
    "band_noise": band_noise,
    "pulses": pulses,
    "am_tone": am_tone,
    "fm_tone": fm_tone,
    "bell": bell,
}

# Parameters that are frequencies (scaled when a class variant is transposed) or tempi.
FREQUENCY_PARAMS = ("f0", "f_start", "f_end", "centre", "carrier", "click_centre")
RATE_PARAMS = ("rate", "mod_rate", "am_rate")


def synthesize(family: str, params: Mapping[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render `n` samples of a sound family at unit RMS."""
    return SOUND_FAMILIES[family](params, n, sr, rng)


def transpose(params: Mapping[str, Any], pitch: float, tempo: float, sr: int) -> dict[str, Any]:
    """Scale a family's frequencies by `pitch` (kept under Nyquist) and its rates by `tempo`."""
    out = dict(params)
    for key in FREQUENCY_PARAMS:
        if key in out and out[key]:
            out[key] = float(min(out[key] * pitch, 0.4 * sr))
    for key in RATE_PARAMS:
        if key in out and out[key]:
            out[key] = float(out[key] * tempo)
    for key in ("period", "sweep"):
        if key in out:
            out[key] = float(out[key] / tempo)
    return out


# ---------------------------------------------------------------------------------------------
# Ambient noise: coloured noise by spectral slope (power ~ 1/f^exponent).

NOISE_COLOURS: Dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def ambient_noise(colour: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS coloured noise (pink = 1/f, brown = 1/f^2 power), with DC and < 20 Hz removed."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    gain = np.where(freqs >= 20.0, 1.0 / np.maximum(freqs, 20.0) ** (NOISE_COLOURS[colour] / 2), 0.0)
    return _unit_rms(np.fft.irfft(spectrum * gain, n))


def fade_envelope(n: int, sr: int, onset: float, offset: float, ramp: float = 0.02) -> np.ndarray:
    """1 between onset and offset seconds (short linear ramps), 0 elsewhere."""
    t = _time(n, sr)
    rise = np.clip((t - onset) / ramp, 0, 1) if onset > 0 else np.ones(n)
    fall = np.clip((offset - t) / ramp, 0, 1) if offset < n / sr else np.ones(n)
    return (rise * fall).astype(np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for integer rate ratios."""
    if sr_in == sr_out:
        return x.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(x, int(sr_out) // g, int(sr_in) // g).astype(np.float32)
