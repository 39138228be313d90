"""Local web demo (`avslkit demo --ckpt RUN`): upload an image + audio or a video, see the AV, OGL
and fused heatmaps and the confidence, move an α slider to re-fuse."""

from avslkit.demo.inputs import UploadError
from avslkit.demo.localizer import Analysis, DemoLocalizer, heatmap_overlay
from avslkit.demo.server import DemoApp, DemoServer

__all__ = ["Analysis", "DemoApp", "DemoLocalizer", "DemoServer", "UploadError", "heatmap_overlay"]
