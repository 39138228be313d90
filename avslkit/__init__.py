"""avslkit: audio-visual source localization toolkit."""

__version__ = "0.1.0"
