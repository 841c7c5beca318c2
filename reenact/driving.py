"""The driving motion of a tracked video: pose + expression, screened, repaired, smoothed.

    tracks -> pose -> screen (usable frames, shots, occlusions) -> reference frame among the usable ones
    -> pose + expression -> repair (per-shot references, gaps, eased cuts) -> smooth

The one path from driving tracks to the motion that transfer takes, for the run, `python -m reenact.export_tracks`
and the pipelines.
"""
from __future__ import annotations

import logging

from reenact.expression import FaceModel, extract_motion
from reenact.pose import estimate_pose, head_meshes
from reenact.repair import reference_frames, repair_motion
from reenact.screen import ScreenConfig, Screening, require_usable, screen_frames
from reenact.smooth import SmoothConfig, smooth_motion
from reenact.structures import Motion, Tracks
from reenact.track import TrackConfig
from reenact.transfer import choose_reference

log = logging.getLogger("reenact")


def driving_motion(tracks: Tracks, model: FaceModel, ref_frame: int | None = None,
                   track: TrackConfig = TrackConfig(), screen: ScreenConfig = ScreenConfig(),
                   smooth: SmoothConfig = SmoothConfig(), name: str = "the driving video") -> tuple[Motion, Screening]:
    """The smoothed, repaired driving motion and the screening it was repaired by; logs what was held or eased.
    Fewer than `track.min_found` usable frames is an InputError naming the unusable spans."""
    pose = estimate_pose(tracks)
    screening = screen_frames(tracks, pose, screen, track.cut_change)
    require_usable(screening, track.min_found, name)
    meshes = head_meshes(tracks.landmarks, pose)
    ref = ref_frame if ref_frame is not None else choose_reference(meshes, pose, reference_frames(screening, screen))
    motion = repair_motion(extract_motion(tracks, model, ref, pose), screening, meshes, screen)
    for line in screening.report(screen):
        log.info("driving: %s", line)
    return smooth_motion(motion, smooth), screening
