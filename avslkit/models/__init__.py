"""Models: backbones, heads, OGL and method models, built through registries."""
