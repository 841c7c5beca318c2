"""open_video/VideoWriter on the shared driving videos and synthetic files made with PIL/PyAV."""

import dataclasses
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reenact.errors import InputError
from third_party_wrappers.video import VideoInfo, VideoWriter, _PyAVReader, open_video

MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason="shared test media absent")


def _frames(n, h=64, w=96) -> np.ndarray:
    """Frames whose mean brightness encodes the index, so order survives lossy coding."""
    base = np.linspace(0, 1, w)[None, :, None] * np.linspace(0, 1, h)[:, None, None] * 40
    return (base[None] + np.arange(n)[:, None, None, None] * 20 + 20).clip(0, 255).astype(np.uint8).repeat(3, -1)


@needs_media
def test_d0_chunks_match_read():
    with open_video(MEDIA / "d0.mp4") as r:
        assert (r.info.n_frames, r.info.fps, r.info.height, r.info.width) == (78, 25.0, 512, 512)
        assert not r.info.has_audio and r.info.backend == "decord"
        chunks = list(r.chunks(size=32))
        assert [(i, len(c)) for i, c in chunks] == [(0, 32), (32, 32), (64, 14)]
        joined = np.concatenate([c for _, c in chunks])
        assert joined.dtype == np.uint8 and (joined == r.read(range(78))).all()
        assert (r.read([77, 3, 3]) == joined[[77, 3, 3]]).all()
        assert [(i, len(c)) for i, c in r.chunks(size=20, start=10, end=50)] == [(10, 20), (30, 20)]


@needs_media
def test_d3_info():
    with open_video(MEDIA / "d3.mp4") as r:
        info = r.info
    assert (info.n_frames, info.fps, info.has_audio, info.height, info.width) == (354, 30.0, True, 512, 512)
    assert VideoInfo.from_dict(info.to_dict()) == info
    with open_video(MEDIA / "d0.mp4") as r:
        assert not r.info.has_audio


@pytest.mark.parametrize("content", [None, b"", b"garbage, not a video" * 50])
def test_bad_files_raise_input_error(tmp_path, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as e:
        open_video(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


@needs_media
def test_image_file_is_not_a_video():
    with pytest.raises(InputError, match="not a video"):
        open_video(MEDIA / "s42.jpg")


def test_gif_reads_through_pyav(tmp_path):
    frames = _frames(5, h=33, w=47)
    Image.fromarray(frames[0]).save(tmp_path / "a.gif", save_all=True, duration=100, loop=0,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    with open_video(tmp_path / "a.gif") as r:
        assert r.info.backend == "pyav" and (r.info.n_frames, r.info.height, r.info.width) == (5, 33, 47)
        assert r.info.fps == pytest.approx(10, rel=0.05)
        got = np.concatenate([c for _, c in r.chunks(size=2)])
        assert abs(got.astype(int) - frames).mean() < 3
        assert (r.read([4, 1]) == got[[4, 1]]).all()


def _faststart_copy(src: Path, dst: Path) -> None:
    """Remux with the moov atom first, so a cut file still has its index (as after an interrupted download)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "+faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                o.mux(p)


@needs_media
def test_truncated_video(tmp_path):
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    _faststart_copy(MEDIA / "d3.mp4", full)
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 354
    with pytest.raises(InputError, match=r"promises 354 frames but only \d+ can be decoded") as e:
        open_video(cut)
    readable = int(str(e.value).split("only ")[1].split()[0])
    assert 150 < readable < 354
    with open_video(cut, allow_truncated=True) as r:
        assert r.info.n_frames == readable
        assert sum(len(c) for _, c in r.chunks()) == readable
        assert r.read([readable - 1]).shape == (1, 512, 512, 3)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_is_turned_upright(tmp_path, degrees):
    stored = _frames(2)
    stored[:, :8, :8] = [255, 0, 0]
    with av.open(str(tmp_path / "r.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"crf": "10"})
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.set_display_rotation(degrees)  # display = stored turned counter-clockwise
        for f in stored:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    upright = np.rot90(stored, degrees // 90, axes=(1, 2))
    with open_video(tmp_path / "r.mp4") as r:
        assert (r.info.height, r.info.width) == upright.shape[1:3]
        assert abs(r.read([0, 1]).astype(int) - upright).mean() < 2
        pyav = _PyAVReader(dataclasses.replace(r.info, backend="pyav"), degrees // 90)
        assert abs(pyav.read([0, 1]).astype(int) - upright).mean() < 2


def test_folder_of_images(tmp_path):
    frames = _frames(11, h=32, w=32)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"f{i}.png")  # f10 must sort after f9
    (tmp_path / "notes.txt").write_text("ignored")
    with open_video(tmp_path, folder_fps=12) as r:
        assert (r.info.n_frames, r.info.fps, r.info.backend) == (11, 12.0, "images")
        assert (np.concatenate([c for _, c in r.chunks(size=4)]) == frames).all()
        assert (r.read([10, 0]) == frames[[10, 0]]).all()


@needs_media
def test_writer_round_trip_with_audio(tmp_path):
    out = tmp_path / "out.mp4"
    frames = _frames(10)
    with VideoWriter(out, 30, 96, 64, audio_from=MEDIA / "d3.mp4") as w:
        w.write(frames[:4])
        w.write(frames[4:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with open_video(out) as r:
        assert (r.info.n_frames, r.info.fps, r.info.has_audio) == (10, 30.0, True)
        assert (r.info.height, r.info.width) == (64, 96)
        means = r.read(range(10)).mean(axis=(1, 2, 3))
    assert np.all(np.diff(means) > 10)
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert a.codec_context.name == "aac"
        assert float(a.duration * a.time_base) == pytest.approx(float(v.duration * v.time_base), abs=0.03)


def test_writer_ntsc_rate_and_odd_size(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 30000 / 1001, 47, 33) as w:
        w.write(_frames(7, h=33, w=47))
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
    with open_video(out) as r:
        assert (r.info.n_frames, r.info.height, r.info.width) == (7, 32, 46)


def test_writer_transcodes_audio_mp4_cannot_hold(tmp_path):
    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        for k in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 800
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with VideoWriter(tmp_path / "o.mp4", 25, 32, 32, audio_from=src) as w:
        w.write(_frames(10, 32, 32))
    with av.open(str(tmp_path / "o.mp4")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and float(a.duration * a.time_base) == pytest.approx(0.4, abs=0.07)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_writer_failure_leaves_nothing(tmp_path, exc):
    out = tmp_path / "x.mp4"
    with pytest.raises(exc):
        with VideoWriter(out, 25, 32, 32) as w:
            w.write(_frames(3, 32, 32))
            raise exc()
    assert list(tmp_path.iterdir()) == []


@needs_media
def test_writer_keeps_previous_output_on_failure(tmp_path):
    out = tmp_path / "x.mp4"
    shutil.copy(MEDIA / "d0.mp4", out)
    with pytest.raises(ValueError):
        with VideoWriter(out, 25, 32, 32) as w:
            w.write(np.zeros((1, 30, 32, 3), np.uint8))
    assert out.read_bytes() == (MEDIA / "d0.mp4").read_bytes() and len(list(tmp_path.iterdir())) == 1
