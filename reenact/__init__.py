"""reenact: animate a portrait with the head pose and expressions of a driving video.

The public API: the records passed between stages, the stages, the pipeline that composes them, their settings,
image and video I/O and the errors, importable from here (loaded on first use, so `import reenact` stays cheap).
`pipelines/` uses nothing else. See README "The stages as a library".
"""
from importlib import import_module

_API = {
    # records
    "Tracks": "structures", "HeadPose": "structures", "Expression": "structures", "Motion": "structures",
    "Crop": "structures", "Rendered": "structures", "Scene": "scene",
    # stages, top to bottom
    "track_image": "track", "track_frames": "track", "track_video": "track", "estimate_pose": "pose",
    "load_face_model": "expression", "extract_motion": "expression", "MeshOffsetModel": "expression",
    "driving_motion": "driving", "smooth_motion": "smooth", "transfer": "transfer", "ffhq_crop": "crop",
    "build_scene": "scene", "make_renderer": "warp_render", "render_range": "warp_render",
    "WarpSceneRenderer": "warp_render", "GanSceneRenderer": "gan_render", "compose_frames": "pipeline",
    "paste_back": "compose",
    # expressions by name and geometry
    "ARKIT": "presets", "MOUTH_CORNERS": "presets", "mesh_offsets": "presets", "expressive_region": "presets",
    "angles_to_matrix": "geometry",
    # tracks files
    "save_tracks": "tracks_io", "load_tracks": "tracks_io",
    # the pipeline and its settings
    "RunConfig": "pipeline", "FLAG_ALIASES": "pipeline", "reenact_video": "pipeline", "prepare": "pipeline",
    "scene_renderer": "pipeline", "resolve_device": "pipeline", "WorkDir": "cache", "MotionClock": "inputs",
    "add_config_flags": "config", "build_config": "config",
    "TrackConfig": "track", "FaceModelConfig": "expression", "ScreenConfig": "screen", "SmoothConfig": "smooth",
    "TransferConfig": "transfer", "CropConfig": "crop", "WarpConfig": "warp", "GanConfig": "gan_render",
    "OutputConfig": "compose",
    # images and videos
    "read_image": "third_party_wrappers.image", "write_image": "third_party_wrappers.image",
    "write_gif": "third_party_wrappers.image", "open_video": "third_party_wrappers.video",
    "VideoWriter": "third_party_wrappers.video",
    # errors
    "ReenactError": "errors", "InputError": "errors", "MissingAssetError": "errors", "CheckpointError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'reenact' has no attribute {name!r}")
    home = _API[name]
    return getattr(import_module(home if "." in home else f"reenact.{home}"), name)
