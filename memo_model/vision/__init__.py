"""Vision: portrait preparation and identity embedding (``face``), streamed mp4 writing and probing (``video_io``)."""

from memo_model.vision.face import (
    IdentityEmbedder,
    IdentityEmbedding,
    InsightFaceEmbedder,
    PreparedPortrait,
    check_image,
    load_image,
    prepare_portrait,
)
from memo_model.vision.video_io import VideoWriter, frames_to_uint8, probe_media

__all__ = [
    "IdentityEmbedder",
    "IdentityEmbedding",
    "InsightFaceEmbedder",
    "PreparedPortrait",
    "VideoWriter",
    "check_image",
    "frames_to_uint8",
    "load_image",
    "prepare_portrait",
    "probe_media",
]
