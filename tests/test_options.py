"""What command-line options do to the output, checked on the output itself (not only that a file was written)."""
import numpy as np
import pytest
import torch

from reenact.evaluate import jitter
from reenact.run import main
from reenact.structures import Motion
from third_party_wrappers.image import read_image, write_image
from third_party_wrappers.video import open_video


@pytest.fixture(scope="module")
def plain(media, talking_clip, tmp_path_factory):
    """The default output of s42.jpg driven by the first 16 frames of the talking clip, and its work folder."""
    folder = tmp_path_factory.mktemp("options")
    out = folder / "plain.mp4"
    assert main([str(media / "s42.jpg"), str(talking_clip), "-o", str(out), "-q", "--end", "16",
                 "--work-dir", str(folder / "work")]) == 0
    with open_video(out) as reader:
        return reader.read(range(16)).astype(np.float32), folder


def test_compare_puts_driving_source_and_result_side_by_side(media, talking_clip, plain):
    frames, folder = plain
    out = folder / "compare.mp4"
    assert main([str(media / "s42.jpg"), str(talking_clip), "-o", str(out), "-q", "--end", "16", "--compare",
                 "--work-dir", str(folder / "work")]) == 0
    with open_video(out) as reader, open_video(talking_clip) as drv:
        panels, driving = reader.read(range(16)).astype(np.float32), drv.read(range(16)).astype(np.float32)
    h, w = frames.shape[1:3]
    assert panels.shape[1] == h and panels.shape[2] == 2 * w + driving.shape[2] * h // driving.shape[1]
    assert np.abs(panels[:, :, -w:] - frames).mean() < 2.0  # the result, on the right
    source = read_image(media / "s42.jpg").astype(np.float32)
    assert np.abs(panels[:, :, -2 * w:-w] - source[None]).mean() < 3.0  # the portrait, unchanged, in the middle
    left = panels[:, :, :-2 * w]
    assert np.abs(left[1:] - left[:1]).mean() > 1.0  # the driving frames move on the left
    resized = torch.nn.functional.interpolate(torch.from_numpy(driving).permute(0, 3, 1, 2), size=left.shape[1:3],
                                              mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()
    assert np.abs(left - resized).mean() < 4.0


def test_smooth_none_keeps_the_trackers_jitter(media, talking_clip, plain):
    """--smooth none exports the driving motion unsmoothed: its head rotation jitters more than the default's."""
    _, folder = plain
    motions = {}
    for method in ("one_euro", "none"):
        path = folder / f"{method}.npz"
        assert main([str(media / "s42.jpg"), str(talking_clip), "-o", str(folder / f"{method}.mp4"), "-q",
                     "--smooth", method, "--export-tracks", str(path), "--work-dir", str(folder / "work")]) == 0
        motions[method] = Motion.load(path)
    rough, smooth = (jitter(motions[m].pose.rotation) for m in ("none", "one_euro"))
    assert rough > 1.5 * smooth
    assert torch.allclose(motions["none"].pose.rotation.mean(0), motions["one_euro"].pose.rotation.mean(0), atol=0.02)


def test_folder_of_images_drives_like_the_video(media, talking_clip, plain, tmp_path):
    """A folder of PNG frames is a driving clip: the same frames give nearly the same output (the folder plays at
    25 fps, which the smoothing filter sees: far closer to the video's output than the video's own motion)."""
    frames, folder = plain
    (tmp_path / "frames").mkdir()
    with open_video(talking_clip) as reader:
        for i, frame in enumerate(reader.read(range(16))):
            write_image(tmp_path / "frames" / f"f{i}.png", frame)
    out = tmp_path / "folder.mp4"
    assert main([str(media / "s42.jpg"), str(tmp_path / "frames"), "-o", str(out), "-q", "--no-cache"]) == 0
    with open_video(out) as reader:
        assert reader.info.n_frames == 16 and reader.info.fps == 25
        from_folder = reader.read(range(16)).astype(np.float32)
    assert np.abs(from_folder - frames).mean() < 0.5 * np.abs(frames[1:] - frames[:1]).mean()


def test_absolute_mode_takes_the_drivers_head_angle_not_its_change(media, talking_clip, plain):
    """--mode absolute: the output head takes the driver's own rotation, so the reference frame hardly moves it
    (the mesh-offset expression code still depends on it); in relative mode the reference frame's angle is
    subtracted, so another reference turns the whole output by the driver's turn between the two frames."""
    pytest.importorskip("dlib")
    from reenact.observe import load_observer, observe_video

    _, folder = plain
    faces = load_observer()
    yaw = {}
    for mode in ("relative", "absolute"):
        for ref in (0, 40):
            out = folder / f"{mode}-{ref}.mp4"
            assert main([str(media / "s42.jpg"), str(talking_clip), "-o", str(out), "-q", "--mode", mode,
                         "--ref-frame", str(ref), "--work-dir", str(folder / "work")]) == 0
            yaw[mode, ref] = observe_video(out, every=1000, faces=faces).angles[:, 0]
    driver = observe_video(talking_clip, every=1000, faces=faces).angles[:, 0]
    turn = float((driver[40] - driver[0]).abs())
    assert turn > 5
    assert float((yaw["absolute", 0] - yaw["absolute", 40]).abs().mean()) < 0.3 * turn  # measured 0.18
    assert float((yaw["relative", 0] - yaw["relative", 40]).abs().mean()) > 0.5 * turn  # measured 1.07


def test_a_gif_keeps_its_frame_timing_and_quiet_prints_nothing(media, talking_clip, tmp_path):
    """An animated GIF with uneven frame durations (100 and 300 ms) comes back with each frame at its time, across
    encoded segments; a portrait larger than anything a run keeps, with -q, prints nothing at all."""
    import subprocess
    import sys

    import av
    from PIL import Image

    from tests.conftest import ROOT

    with open_video(talking_clip) as reader:
        frames = reader.read(range(0, 24, 2))
    gif = tmp_path / "uneven.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=[100, 300] * 6, loop=0)
    big = tmp_path / "big.png"
    write_image(big, np.asarray(Image.fromarray(read_image(media / "s42.jpg")).resize((3000, 3000))))
    out = tmp_path / "out.mp4"
    run = subprocess.run([sys.executable, "-m", "reenact.run", str(big), str(gif), "-o", str(out), "-q",
                          "--output.segment", "5", "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout == "" and run.stderr == "", run.stderr[-1000:]
    with av.open(str(out)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]
    expected = np.cumsum([0] + [100, 300] * 5 + [100]) / 1000
    np.testing.assert_allclose(times, expected, atol=1e-3)
    with open_video(out) as reader:
        assert reader.info.fps == pytest.approx(len(frames) / 2.4, rel=0.05)
