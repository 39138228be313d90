"""Audio input features, computed batched on the training device from stored waveforms.

The store keeps raw int16 waveforms (method-agnostic); each method turns a collated batch of
float waveforms (B×L in [-1, 1]) into its own input on the GPU with one of these modules:

- ``spectrogram``: the EZ-VSL/SLAVC log-spectrogram. Bit-for-bit the formula of
  ``scipy.signal.spectrogram(x, fs=sr, nperseg=512, noverlap=274)`` followed by
  ``log(S + 1e-7) / 12`` (the references' ``Normalize(mean=0, std=12)``). 16 kHz, 3 s → B×1×257×200.
- ``vggish_logmel``: the VGGish input examples (``mel_features.py`` of the VGGish reference) →
  B×N×96×64 (3 s → N = 3).
- ``waveform``: the raw waveform, optionally resampled (SoundNet: 22.05 kHz) → B×1×L'.

``build_audio_feature(name, sample_rate, **opts)`` looks the name up in ``AUDIO_FEATURES``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.signal
import torch
import torchaudio.functional as AF
from torch import nn

from avslkit.errors import AvslError

__all__ = [
    "AUDIO_FEATURES",
    "LogSpectrogram",
    "VGGishLogMel",
    "Waveform",
    "build_audio_feature",
    "vggish_mel_matrix",
]


#: Where LogSpectrogram computes: "torch" (device, batched) or "scipy" (the references' float64 CPU path).
SPECTROGRAM_BACKENDS = ("torch", "scipy")


def _check_batch(x: torch.Tensor, min_samples: int, what: str) -> torch.Tensor:
    """Accept L or B×L (or B×1×L) waveforms; return B×L."""
    if x.dim() == 1:
        x = x.unsqueeze(0)
    elif x.dim() == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"{what}: expected a B×L waveform batch, got shape {tuple(x.shape)}")
    if x.shape[-1] < min_samples:
        raise ValueError(f"{what}: waveform has {x.shape[-1]} samples, needs at least {min_samples}")
    return x


class LogSpectrogram(nn.Module):
    """EZ-VSL/SLAVC input: ``log(scipy.signal.spectrogram(x, fs, nperseg, noverlap) + eps) / scale``.

    Reproduces scipy's defaults exactly: periodic Tukey(α=0.25) window, nfft = nperseg, segments
    taken without centring or padding, the mean of each segment subtracted before windowing
    (``detrend='constant'``), one-sided PSD scaled by 1/(fs·Σw²) and doubled except DC and Nyquist.

    ``dtype`` is the computation precision (float32 keeps within 1e-4 of scipy's float64 result
    because the 1e-7 floor dominates the rounding error of quiet bins; float64 is available for
    checks). The result is returned as ``out_dtype`` (float32; None keeps ``dtype``).

    ``backend``: "torch" (default; batched on the device) or "scipy" (the references' computation on the
    CPU: ``scipy.signal.spectrogram`` in float64, ``np.log``, then a float64 division by ``log_scale``, as
    ``ToTensor`` + ``Normalize(0, 12)``; bit for bit the EZ-VSL/SLAVC input, several times slower).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        nperseg: int = 512,
        noverlap: int = 274,
        window: str | tuple = ("tukey", 0.25),
        log_eps: float = 1e-7,
        log_scale: float = 12.0,
        dtype: torch.dtype = torch.float32,
        out_dtype: torch.dtype | None = torch.float32,
        backend: str = "torch",
    ):
        super().__init__()
        if backend not in SPECTROGRAM_BACKENDS:
            raise AvslError(f"unknown spectrogram backend '{backend}'; choose one of {', '.join(SPECTROGRAM_BACKENDS)}")
        self.backend = backend
        self.window_spec = window
        self.noverlap = int(noverlap)
        if not 0 <= noverlap < nperseg:
            raise ValueError(f"noverlap must be in [0, nperseg), got {noverlap} for nperseg {nperseg}")
        self.sample_rate = int(sample_rate)
        self.nperseg = int(nperseg)
        self.hop = int(nperseg - noverlap)
        self.log_eps = float(log_eps)
        self.log_scale = float(log_scale)
        self.dtype = dtype
        self.out_dtype = out_dtype
        win = scipy.signal.get_window(window, self.nperseg)  # periodic, as scipy.signal.spectrogram
        window = torch.from_numpy(np.asarray(win, dtype=np.float64))
        self.register_buffer("window", window, persistent=False)
        # detrend folded into the FFT: rfft((f - mean)·w) = rfft(f·w) - mean·rfft(w)
        self.register_buffer("window_fft", torch.fft.rfft(window, n=self.nperseg), persistent=False)
        psd_scale = 1.0 / (self.sample_rate * float((win * win).sum()))
        bin_scale = torch.full((self.nperseg // 2 + 1,), 2.0 * psd_scale, dtype=torch.float64)
        bin_scale[0] = psd_scale  # one-sided: every bin doubled except DC (and Nyquist for even nfft)
        if self.nperseg % 2 == 0:
            bin_scale[-1] = psd_scale
        self.register_buffer("bin_scale", bin_scale, persistent=False)

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_batch(x, self.nperseg, "spectrogram").to(self.dtype)
        frames = x.unfold(-1, self.nperseg, self.hop)  # B×T×nperseg view; no centring/padding (scipy)
        spec = torch.fft.rfft(frames * self.window.to(self.dtype), n=self.nperseg)
        spec.sub_(frames.mean(dim=-1, keepdim=True) * self.window_fft.to(spec.dtype))  # detrend='constant'
        return spec

    def _raw_power(self, x: torch.Tensor) -> torch.Tensor:
        spec = self._spectrum(x)
        power = spec.real.square()
        power.addcmul_(spec.imag, spec.imag)
        return power  # B×T×F, not yet PSD-scaled

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """One-sided PSD, B×F×T (scipy's ``Sxx`` layout), in ``self.dtype``."""
        return (self._raw_power(x) * self.bin_scale.to(self.dtype)).transpose(-1, -2)

    def _scipy_forward(self, x: torch.Tensor) -> torch.Tensor:
        wave = _check_batch(x, self.nperseg, "spectrogram").detach().cpu().to(torch.float64).numpy()
        _, _, power = scipy.signal.spectrogram(wave, self.sample_rate, window=self.window_spec, nperseg=self.nperseg,
                                               noverlap=self.noverlap, axis=-1)
        out = torch.from_numpy(np.log(power + self.log_eps)).div(self.log_scale).unsqueeze(1).to(x.device)
        return out.to(self.out_dtype) if self.out_dtype is not None else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×L waveform → B×1×F×T log-spectrogram (F = nperseg//2 + 1)."""
        if self.backend == "scipy":
            return self._scipy_forward(x)
        power = self._raw_power(x)
        eps = torch.tensor(self.log_eps, dtype=power.dtype, device=power.device)
        out = torch.addcmul(eps, power, self.bin_scale.to(power.dtype)).log_().mul_(1.0 / self.log_scale)
        out = out.transpose(-1, -2).unsqueeze(1)
        return out.to(self.out_dtype) if self.out_dtype is not None else out


def _hz_to_mel_htk(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale as in VGGish ``mel_features.hertz_to_mel`` (1127·ln(1 + f/700))."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def vggish_mel_matrix(
    num_mel_bins: int = 64,
    num_spectrogram_bins: int = 257,
    sample_rate: int = 16000,
    lower_edge_hertz: float = 125.0,
    upper_edge_hertz: float = 7500.0,
) -> np.ndarray:
    """The VGGish (F × mel) weight matrix: triangles in the *mel* domain, DC row zeroed.

    torchaudio's ``melscale_fbanks`` draws its triangles in Hz and keeps the DC bin, so it does
    not reproduce VGGish; this follows ``mel_features.spectrogram_to_mel_matrix``.
    """
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2:
        raise ValueError(f"mel band edges {lower_edge_hertz}–{upper_edge_hertz} Hz invalid for {sample_rate} Hz audio")
    bins_mel = _hz_to_mel_htk(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(_hz_to_mel_htk(lower_edge_hertz), _hz_to_mel_htk(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower[None]) / (center - lower)[None]
    falling = (upper[None] - bins_mel[:, None]) / (upper - center)[None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


class VGGishLogMel(nn.Module):
    """VGGish input examples: B×L waveform at ``sample_rate`` → B×N×96×64 log-mel patches.

    16 kHz (resampled with torchaudio's sinc resampler when needed; the reference uses resampy),
    400-sample periodic-Hann frames every 160 samples, |rfft| with nfft 512, 64 HTK-mel bands
    125–7500 Hz, ``log(mel + 0.01)``, non-overlapping 96-frame (0.96 s) examples. Framing is
    explicit (unfold) rather than ``torch.stft`` because the reference zero-pads each 400-sample
    frame at its end to 512, while ``torch.stft`` centres a short window inside the FFT frame.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        target_rate: int = 16000,
        window_seconds: float = 0.025,
        hop_seconds: float = 0.010,
        num_mel_bins: int = 64,
        lower_edge_hertz: float = 125.0,
        upper_edge_hertz: float = 7500.0,
        log_offset: float = 0.01,
        example_seconds: float = 0.96,
        example_hop_seconds: float = 0.96,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.target_rate = int(target_rate)
        self.win = int(round(self.target_rate * window_seconds))
        self.hop = int(round(self.target_rate * hop_seconds))
        self.nfft = 2 ** int(math.ceil(math.log2(self.win)))
        self.log_offset = float(log_offset)
        frames_per_second = 1.0 / hop_seconds
        self.example_frames = int(round(example_seconds * frames_per_second))
        self.example_hop = int(round(example_hop_seconds * frames_per_second))
        self.dtype = dtype
        n = torch.arange(self.win, dtype=torch.float64)
        self.register_buffer("window", 0.5 - 0.5 * torch.cos(2 * math.pi / self.win * n), persistent=False)
        mel = vggish_mel_matrix(num_mel_bins, self.nfft // 2 + 1, self.target_rate, lower_edge_hertz, upper_edge_hertz)
        self.register_buffer("mel_matrix", torch.from_numpy(mel), persistent=False)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """B×L waveform → B×frames×mel log-mel spectrogram (before example framing)."""
        x = _check_batch(x, 1, "vggish_logmel").to(self.dtype)
        if self.sample_rate != self.target_rate:
            x = AF.resample(x, self.sample_rate, self.target_rate)
        if x.shape[-1] < self.win:
            raise ValueError(f"vggish_logmel: waveform shorter than one {self.win}-sample window")
        frames = x.unfold(-1, self.win, self.hop) * self.window.to(self.dtype)
        magnitude = torch.fft.rfft(frames, n=self.nfft).abs()
        mel = magnitude @ self.mel_matrix.to(self.dtype)
        return torch.log(mel + self.log_offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logmel = self.log_mel(x)
        if logmel.shape[1] < self.example_frames:
            raise ValueError(
                f"vggish_logmel: {logmel.shape[1]} frames is shorter than one {self.example_frames}-frame example"
            )
        examples = logmel.unfold(1, self.example_frames, self.example_hop)  # B×N×mel×96
        return examples.transpose(-1, -2).contiguous().to(torch.float32)


class Waveform(nn.Module):
    """Raw waveform input (SoundNet), optionally resampled: B×L → B×1×L'."""

    def __init__(self, sample_rate: int = 16000, target_rate: int | None = None):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.target_rate = int(target_rate) if target_rate else self.sample_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_batch(x, 1, "waveform").to(torch.float32)
        if self.target_rate != self.sample_rate:
            x = AF.resample(x, self.sample_rate, self.target_rate)
        return x.unsqueeze(1)


def _spectrogram(sample_rate: int, **opts) -> nn.Module:
    return LogSpectrogram(sample_rate=sample_rate, **opts)


def _vggish(sample_rate: int, **opts) -> nn.Module:
    return VGGishLogMel(sample_rate=sample_rate, **opts)


def _waveform(sample_rate: int, **opts) -> nn.Module:
    return Waveform(sample_rate=sample_rate, **opts)


AUDIO_FEATURES: dict[str, Callable[..., nn.Module]] = {
    "spectrogram": _spectrogram,
    "vggish_logmel": _vggish,
    "waveform": _waveform,
}


def build_audio_feature(name: str, sample_rate: int, **opts) -> nn.Module:
    """The audio feature module registered under ``name`` for audio at ``sample_rate`` Hz."""
    try:
        factory = AUDIO_FEATURES[name]
    except KeyError:
        raise AvslError(
            f"unknown audio feature '{name}'; choose one of {', '.join(sorted(AUDIO_FEATURES))}"
        ) from None
    return factory(sample_rate, **opts)
