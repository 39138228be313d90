"""Models: backbones, heads, OGL and method models, built through registries."""

from avslkit.models.registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
