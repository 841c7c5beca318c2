"""Motion fidelity of the default path, measured with the project's own tracker on a real clip."""
import pytest

from fidelity import motion_series, pearson, shape_distance
from reenact.expression import MeshOffsetModel, extract_motion
from reenact.pipeline import RunConfig, reenact_video
from reenact.track import track_image
from third_party_wrappers.image import read_image


@pytest.fixture(scope="module")
def series(media, talking_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity") / "out.mp4"
    reenact_video(media / "s42.jpg", talking_clip, out, RunConfig(progress=False))
    return motion_series(talking_clip), motion_series(out)


@pytest.mark.parametrize("name", ["yaw", "pitch", "mouth"])
def test_output_follows_driving(series, name):
    driving, output = series
    assert pearson(driving[name], output[name]) >= 0.8


def test_identity_stays_with_source(media, expressive_clip, tmp_path):
    """On d0 (strong expressions, near-frontal) the output's tracked canonical shape is the source's, not the driver's."""
    out = tmp_path / "out.mp4"
    reenact_video(media / "s42.jpg", expressive_clip, out, RunConfig(progress=False))
    source = extract_motion(track_image(read_image(media / "s42.jpg")), MeshOffsetModel(), ref=0).shape
    output, driving = motion_series(out)["shape"], motion_series(expressive_clip)["shape"]
    assert shape_distance(output, source) < 0.7 * shape_distance(output, driving)
