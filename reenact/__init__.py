"""reenact: animate a portrait with the head pose and expressions of a driving video.

The public API: the records passed between stages and the stage functions, importable from here
(loaded on first use, so `import reenact` stays cheap). See README "The stages as a library".
"""
from importlib import import_module

_API = {
    # records
    "Tracks": "structures", "HeadPose": "structures", "Expression": "structures", "Motion": "structures",
    "Crop": "structures", "Rendered": "structures",
    # stages
    "track_image": "track", "track_frames": "track", "estimate_pose": "pose", "extract_motion": "expression",
    "load_face_model": "expression", "MeshOffsetModel": "expression", "smooth_motion": "smooth",
    "transfer": "transfer", "ffhq_crop": "crop", "WarpRenderer": "warp", "paste_back": "compose",
    "save_tracks": "tracks_io", "load_tracks": "tracks_io",
    # the pipeline and its configuration
    "RunConfig": "pipeline", "reenact_video": "pipeline", "prepare": "pipeline", "build_scene": "pipeline",
    "make_renderer": "pipeline", "render_range": "pipeline", "warp_chunks": "pipeline", "compose_frames": "pipeline",
    "TrackConfig": "track", "SmoothConfig": "smooth", "TransferConfig": "transfer", "CropConfig": "crop",
    "WarpConfig": "warp", "FaceModelConfig": "expression",
    # errors
    "ReenactError": "errors", "InputError": "errors", "MissingAssetError": "errors", "CheckpointError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'reenact' has no attribute {name!r}")
    return getattr(import_module(f"reenact.{_API[name]}"), name)
