"""The input layouts `avslkit preprocess` understands, in a module that imports nothing, so that the
CLI can list them in --help without loading the decoders."""

from __future__ import annotations

#: Input layouts: a tree of video files, or the frames/<id>.jpg + audio/<id>.wav dumps of the public repos.
LAYOUTS: tuple[str, ...] = ("auto", "videos", "frames-audio")
