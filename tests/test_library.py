"""The README's library example (pipelines/edit_tracks.py) runs, and its edit shows in the output."""
import subprocess
import sys
from pathlib import Path

from reenact.evaluate import track_file
from reenact.expression import MeshOffsetModel, extract_motion
from reenact.pose import to_head_frame
from reenact.presets import MOUTH_CORNERS

ROOT = Path(__file__).resolve().parents[1]


def mouth_width(video):
    tracks = track_file(video)
    meshes = to_head_frame(tracks.landmarks, extract_motion(tracks, MeshOffsetModel(), ref=0).pose)
    return (meshes[:, MOUTH_CORNERS[0]] - meshes[:, MOUTH_CORNERS[1]]).norm(dim=-1)


def test_edit_tracks_example(media, talking_clip, tmp_path):
    plain, smiling = tmp_path / "plain.mp4", tmp_path / "smile.mp4"
    for out, factor in ((plain, "1.0"), (smiling, "3.0")):
        subprocess.run([sys.executable, str(ROOT / "pipelines" / "edit_tracks.py"), str(media / "s42.jpg"),
                        str(talking_clip), str(out), "--smile", factor], check=True, timeout=600)
    assert (tmp_path / "plain.tracks.npz").is_file()
    a, b = mouth_width(plain), mouth_width(smiling)
    assert float((b - a).mean()) > 0.006  # wider (0.009 of the eye-corner distance; 0 for a render left unedited)
