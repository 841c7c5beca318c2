import numpy as np
import pytest

from reenact.errors import InputError
from reenact.outline import CROP
from reenact.track import TrackConfig, fill_gaps, track_frames, track_image
from third_party_wrappers.image import read_image
from third_party_wrappers.video import open_video


def test_source_face_is_tracked(media):
    tracks = track_image(read_image(media / "s42.jpg"))
    lm = tracks.landmarks[0]
    assert lm.shape == (478, 3) and tracks.found.all()
    assert 0 < lm[:, 0].min() and lm[:, 0].max() < tracks.width  # landmarks in pixels


def test_dog_is_refused(media):
    with pytest.raises(InputError, match="s25.jpg: no human face"):
        track_image(read_image(media / "s25.jpg"), name=str(media / "s25.jpg"))


def test_largest_face_is_chosen(media):
    big = read_image(media / "s42.jpg")
    small = read_image(media / "s12.jpg")[::2, ::2]
    canvas = np.full((600, 900, 3), 255, np.uint8)
    canvas[:512, 380:892] = big
    canvas[:small.shape[0], :small.shape[1]] = small
    lm = track_image(canvas).landmarks[0]
    assert lm[:, 0].mean() > 380  # the large face on the right


def test_large_image_tracked_downscaled_in_original_pixels(media):
    rgb = read_image(media / "s42.jpg")
    full = track_image(rgb).landmarks[0]
    up = np.repeat(np.repeat(rgb, 3, 0), 3, 1)  # 1536 px, over max_side
    scaled = track_image(up, TrackConfig(max_side=768)).landmarks[0] / 3
    assert float((scaled[:, :2] - full[:, :2]).abs().median()) < 2.0


def test_fill_gaps_interpolates():
    v = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    found = np.array([True, False, False, True, True, False])
    broken = v.copy()
    broken[~found] = -99
    filled = fill_gaps(broken, found)
    np.testing.assert_allclose(filled[:5], v[:5])
    np.testing.assert_allclose(filled[5], v[4])  # nearest at the end


def test_video_without_faces_is_refused(tmp_path):
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="face was found in only 0 of 6"):
        track_frames([(0, frames)], 6, 25.0, name="blank", progress=False)


def test_video_tracking(talking_clip):
    with open_video(talking_clip) as reader:
        tracks = track_frames(reader.chunks(16), reader.info.n_frames, reader.info.fps, progress=False)
    assert tracks.landmarks.shape == (48, 478, 3) and bool(tracks.found.all())  # conftest: 48 frames
    # per frame a grey crop around the head (the pose stage reads its outline there), boxed in frame pixels
    assert tracks.heads.shape == (48, CROP, CROP) and tracks.head_boxes.shape == (48, 3)
    with open_video(talking_clip) as reader:
        frame = reader.read([30])[0]
    x0, y0, side = tracks.head_boxes[30].tolist()
    eyes = tracks.landmarks[30, [33, 263], :2].mean(0)
    assert x0 < eyes[0] < x0 + side and y0 < eyes[1] < y0 + side
    cell = side / CROP
    r = c = CROP // 2  # the forehead, inside the frame (the crop reaches beyond this 256 px clip's edges)
    block = frame[int(y0 + r * cell):int(y0 + (r + 1) * cell), int(x0 + c * cell):int(x0 + (c + 1) * cell)]
    assert abs(float(block.mean()) - float(tracks.heads[30, r, c])) < 6
