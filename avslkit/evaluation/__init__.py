"""Evaluation orchestration: evaluated items, the protocol summary, baselines, extended test sets, runner."""

from avslkit.evaluation.extended import ExtendedSet, build_extended_set, extend_store, infer_types
from avslkit.evaluation.items import EvalItem, negative_type, read_recorded_extended, sidecar_paths
from avslkit.evaluation.protocol import summarize

__all__ = ["EvalItem", "ExtendedSet", "build_extended_set", "extend_store", "infer_types", "negative_type",
           "read_recorded_extended", "sidecar_paths", "summarize"]
