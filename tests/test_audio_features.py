"""Audio features against independent references: scipy for the spectrogram, a numpy
re-derivation of VGGish's mel_features.py for the log-mel examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from avslkit.data.audio import AUDIO_FEATURES, build_audio_feature
from avslkit.errors import AvslError

SR = 16000


def speech_like(seconds: float, sr: int, amplitude: float, seed: int) -> np.ndarray:
    """Harmonic tone with vibrato and syllable-like gating, plus noise and a silent gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * seed + 15 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20) if k * (f0.max()) < 0.45 * sr)
    x = x * (np.sin(2 * np.pi * 2.3 * t + seed) > -0.2)
    x = x / np.abs(x).max() * amplitude + rng.normal(0, amplitude * 0.03, t.size)
    x[int(0.4 * t.size):int(0.55 * t.size)] = 0.0  # silence segment
    return x


def test_signals() -> np.ndarray:
    rng = np.random.default_rng(7)
    sigs = [
        speech_like(3, SR, 0.3, 0),
        speech_like(3, SR, 1e-3, 1),  # quiet
        np.clip(speech_like(3, SR, 1.6, 2), -1, 1),  # full scale, clipped
        np.round(speech_like(3, SR, 3e-4, 3) * 32768) / 32768,  # a few LSBs of int16
        rng.normal(0, 1e-5, 3 * SR),  # near silence
        np.zeros(3 * SR),
        0.5 + speech_like(3, SR, 1e-2, 4),  # DC offset (detrend matters)
    ]
    return np.stack(sigs).astype(np.float32)


test_signals.__test__ = False  # a helper, not a test


def scipy_reference(x: np.ndarray, sr: int = SR) -> np.ndarray:
    _, _, s = scipy.signal.spectrogram(x.astype(np.float64), fs=sr, nperseg=512, noverlap=274)
    return np.log(s + 1e-7) / 12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectrogram_matches_scipy(dtype: torch.dtype) -> None:
    x = test_signals()
    feat = build_audio_feature("spectrogram", SR, dtype=dtype)
    out = feat(torch.from_numpy(x))
    assert out.shape == (len(x), 1, 257, 200)
    assert out.dtype == torch.float32
    for i in range(len(x)):
        err = np.abs(out[i, 0].double().numpy() - scipy_reference(x[i])).max()
        assert err < 1e-4, f"signal {i}: max abs error {err}"


def test_spectrogram_other_rate_and_single_clip() -> None:
    x = speech_like(3, 22050, 0.5, 4).astype(np.float32)
    out = build_audio_feature("spectrogram", 22050)(torch.from_numpy(x))
    _, _, s = scipy.signal.spectrogram(x.astype(np.float64), fs=22050, nperseg=512, noverlap=274)
    ref = np.log(s + 1e-7) / 12
    assert out.shape == (1, 1, *ref.shape)
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-4


# ---- VGGish: numpy re-derivation of the reference mel_features.py ------------------------------

def _np_vggish_examples(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    win, hop, nfft = 400, 160, 512
    n_frames = 1 + (len(x) - win) // hop
    frames = np.stack([x[k * hop:k * hop + win] for k in range(n_frames)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))
    mag = np.abs(np.fft.rfft(frames * hann, nfft))

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins_mel = mel(np.linspace(0.0, sr / 2, nfft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 64 + 2)
    weights = np.empty((nfft // 2 + 1, 64))
    for i in range(64):
        lo, c, hi = edges[i:i + 3]
        weights[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    weights[0, :] = 0.0
    logmel = np.log(mag @ weights + 0.01)
    n_ex = 1 + (logmel.shape[0] - 96) // 96
    return np.stack([logmel[k * 96:k * 96 + 96] for k in range(n_ex)])


def test_vggish_logmel_matches_reference_formula() -> None:
    x = test_signals()[:4]
    out = build_audio_feature("vggish_logmel", SR)(torch.from_numpy(x))
    assert out.shape == (4, 3, 96, 64)
    for i in range(4):
        ref = _np_vggish_examples(x[i].astype(np.float64))
        assert ref.shape == (3, 96, 64)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=2e-4, rtol=0)


def test_vggish_resamples_to_16k() -> None:
    x16 = speech_like(3, 16000, 0.5, 0)
    x48 = speech_like(3, 48000, 0.5, 0)  # the same harmonic content, sampled at 48 kHz
    out48 = build_audio_feature("vggish_logmel", 48000)(torch.from_numpy(x48[None].astype(np.float32)))
    out16 = build_audio_feature("vggish_logmel", 16000)(torch.from_numpy(x16[None].astype(np.float32)))
    assert out48.shape == out16.shape == (1, 3, 96, 64)
    strong = out16 > 0.0  # bands well above the noise floor
    assert strong.float().mean() > 0.1
    assert (out48[strong] - out16[strong]).abs().median() < 0.2


def test_waveform_resample_for_soundnet() -> None:
    t16 = np.arange(3 * 16000) / 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * t16).astype(np.float32)
    out = build_audio_feature("waveform", 16000, target_rate=22050)(torch.from_numpy(np.stack([x, -x])))
    assert out.shape == (2, 1, 66150)
    t22 = np.arange(66150) / 22050
    ref = 0.5 * np.sin(2 * np.pi * 440 * t22)
    middle = slice(1000, -1000)
    assert np.abs(out[0, 0].numpy()[middle] - ref[middle]).max() < 1e-2
    np.testing.assert_allclose(out[1, 0].numpy(), -out[0, 0].numpy(), atol=1e-6)
    same = build_audio_feature("waveform", 16000)(torch.from_numpy(x))
    assert same.shape == (1, 1, 48000) and torch.equal(same[0, 0], torch.from_numpy(x))


def test_registry_and_errors() -> None:
    assert set(AUDIO_FEATURES) >= {"spectrogram", "vggish_logmel", "waveform"}
    with pytest.raises(AvslError, match="unknown audio feature 'mfcc'"):
        build_audio_feature("mfcc", SR)
    with pytest.raises(ValueError, match="samples"):
        build_audio_feature("spectrogram", SR)(torch.zeros(2, 100))
