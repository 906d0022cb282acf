"""Media rules (image, video) and declared pre-processing, with Pillow and PyAV only.

Rules are declarative pydantic models so they can travel with an input model
(see :func:`engines.media.schema.media`); the checks raise
:class:`engines.errors.ValidationFailed` with ``field: rule (seen)`` lines.
"""

from engines.media.image import ImageInfo, ImageRule, check_image
from engines.media.image_prep import accept_image, prepare_image, strip_gps
from engines.media.prepare import Frames, ImagePrep, Media, Transcode, VideoPrep
from engines.media.schema import MediaRule, media, media_fields, media_rules, rule_schema_extra
from engines.media.video import VideoInfo, VideoRule, check_video
from engines.media.video_prep import extract_frames, transcode_video

__all__ = [
    "Frames",
    "ImageInfo",
    "ImagePrep",
    "ImageRule",
    "Media",
    "MediaRule",
    "Transcode",
    "VideoInfo",
    "VideoPrep",
    "VideoRule",
    "accept_image",
    "check_image",
    "check_video",
    "extract_frames",
    "media",
    "media_fields",
    "media_rules",
    "prepare_image",
    "rule_schema_extra",
    "strip_gps",
    "transcode_video",
]
