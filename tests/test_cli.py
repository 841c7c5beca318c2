"""`python -m reenact.run` end to end on short real clips, and its bad-input behaviour."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reenact.run import main
from third_party_wrappers.video import VideoWriter, open_video


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reenact.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def result(media, talking_clip, tmp_path_factory):
    """One run on 48 frames of d3 (with audio), default output path, from a fresh folder."""
    cwd = tmp_path_factory.mktemp("run")
    proc = run_cli(str(media / "s42.jpg"), str(talking_clip), "-q", cwd=cwd)
    return proc, cwd / "outputs" / f"s42--{talking_clip.stem}.mp4"


def test_run_writes_video_with_driving_timing_and_audio(result, talking_clip):
    proc, out = result
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""  # -q: silent
    with open_video(out) as got, open_video(talking_clip) as drv:
        assert got.info.n_frames == drv.info.n_frames
        assert abs(got.info.fps - drv.info.fps) < 1e-3
        assert (got.info.height, got.info.width) == (512, 512)  # the source's framing
        assert got.info.has_audio
    assert not list(out.parent.glob(".*.part.mp4"))


def test_rerun_reuses_cached_tracks(result, media, talking_clip):
    _, out = result
    work = out.parent / ".reenact-work"
    tracks = sorted(work.glob("*-tracks-*.npz"))
    assert len(tracks) == 2 and len(list(work.glob("segments-*"))) == 1
    stamps = [p.stat().st_mtime_ns for p in tracks]
    code = main([str(media / "s42.jpg"), str(talking_clip), "-o", str(out.with_name("again.mp4")), "-q",
                 "--crop-only"])
    assert code == 0 and sorted(work.glob("*-tracks-*.npz")) == tracks
    assert [p.stat().st_mtime_ns for p in tracks] == stamps  # reused, not recomputed
    assert len(list(work.glob("segments-*"))) == 2  # other output settings render anew
    with open_video(out.with_name("again.mp4")) as got:
        assert got.info.width == got.info.height  # the square crop


def _assert_refused(proc, cwd: Path, needle: str):
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reenact: ") and needle in lines[0], proc.stderr
    assert not (cwd / "outputs").exists()


def test_dog_is_refused(media, talking_clip, tmp_path):
    _assert_refused(run_cli(str(media / "s25.jpg"), str(talking_clip), cwd=tmp_path), tmp_path, "s25.jpg")


@pytest.mark.parametrize("kind", ["missing", "empty", "image", "garbage"])
def test_bad_driving_is_refused(media, tmp_path, kind):
    bad = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "image":
        bad = media / "s12.jpg"
    elif kind == "garbage":
        bad.write_bytes(os.urandom(4096))
    _assert_refused(run_cli(str(media / "s42.jpg"), str(bad), cwd=tmp_path), tmp_path, bad.name)


def test_truncated_video(media, talking_clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = talking_clip.read_bytes()  # written with the index first, so a cut file still opens
    cut.write_bytes(data[: int(len(data) * 0.6)])
    proc = run_cli(str(media / "s42.jpg"), str(cut), cwd=tmp_path)
    _assert_refused(proc, tmp_path, "truncated")
    assert "can be decoded" in proc.stderr
    proc = run_cli(str(media / "s42.jpg"), str(cut), "--allow-truncated", "-q", "-o", "part.mp4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open_video(tmp_path / "part.mp4") as got:
        assert 0 < got.info.n_frames < 48


def test_output_equal_to_input_is_refused(media, talking_clip, tmp_path):
    clip = tmp_path / "clip.mp4"
    shutil.copy(talking_clip, clip)
    before = clip.read_bytes()
    proc = run_cli(str(media / "s42.jpg"), str(clip), "-o", str(clip), cwd=tmp_path)
    _assert_refused(proc, tmp_path, "is an input")
    assert clip.read_bytes() == before


def test_missing_output_dir_is_created_and_config_printed(media, talking_clip, tmp_path, capsys):
    assert main(["--print-config", "--smooth", "savgol", str(media / "s42.jpg"), str(talking_clip)]) == 0
    assert '"method": "savgol"' in capsys.readouterr().out
    out = tmp_path / "a" / "b" / "c.mp4"
    assert main([str(media / "s42.jpg"), str(talking_clip), "-o", str(out), "-q", "--no-cache", "--pose-only"]) == 0
    assert out.is_file() and not (out.parent / ".reenact-work").exists()


def test_exported_tracks_reproduce_the_run(media, talking_clip, tmp_path):
    common = [str(media / "s42.jpg"), str(talking_clip), "-q", "--no-cache"]
    assert main([*common, "-o", str(tmp_path / "a.mp4"), "--export-tracks", str(tmp_path / "t.npz")]) == 0
    assert main([*common, "-o", str(tmp_path / "b.mp4"), "--tracks", str(tmp_path / "t.npz")]) == 0
    with open_video(tmp_path / "a.mp4") as a, open_video(tmp_path / "b.mp4") as b:
        n = a.info.n_frames
        assert b.info.n_frames == n and (a.read(range(n)) == b.read(range(n))).all()


def test_frame_range_and_tracks_without_video(media, talking_clip, tmp_path):
    part = tmp_path / "part.mp4"
    assert main([str(media / "s42.jpg"), str(talking_clip), "-q", "--no-cache", "--start", "10", "--end", "30",
                 "-o", str(part), "--export-tracks", str(tmp_path / "t.npz")]) == 0
    with open_video(part) as got:
        assert got.info.n_frames == 20 and got.info.has_audio
    assert main([str(media / "s42.jpg"), "--tracks", str(tmp_path / "t.npz"), "-q", "--no-cache",
                 "-o", str(tmp_path / "motion.mp4")]) == 0
    with open_video(tmp_path / "motion.mp4") as got:
        assert got.info.n_frames == 20 and not got.info.has_audio
    assert main([str(media / "s42.jpg"), str(talking_clip), "-q", "--start", "40", "--end", "90",
                 "-o", str(tmp_path / "x.mp4")]) == 2


def test_config_file_round_trip_and_flags_override(media, talking_clip, tmp_path, capsys):
    args = [str(media / "s42.jpg"), str(talking_clip)]
    assert main(["--print-config", "--smooth", "gaussian", "--warp.head-up", "2.5", *args]) == 0
    (tmp_path / "cfg.json").write_text(capsys.readouterr().out)
    assert main(["--print-config", "--config", str(tmp_path / "cfg.json"), "--expression-scale", "1.5", *args]) == 0
    printed = capsys.readouterr().out
    assert '"method": "gaussian"' in printed and '"head_up": 2.5' in printed
    assert '"expression_scale": 1.5' in printed
    (tmp_path / "bad.json").write_text('{"smooth": {"nonsense": 1}}')
    assert main(["--print-config", "--config", str(tmp_path / "bad.json"), *args]) == 2


def test_device_auto_takes_cuda_only_for_the_gan_path(monkeypatch):
    import torch

    from reenact.errors import InputError
    from reenact.gan_render import GanConfig
    from reenact.pipeline import RunConfig, resolve_device

    gan = RunConfig(gan=GanConfig(generator="G.pkl"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(RunConfig()).type == "cpu" and resolve_device(gan).type == "cpu"
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device(RunConfig(device="cuda"))
    with pytest.raises(InputError, match="not a torch device"):
        resolve_device(RunConfig(device="tpu9"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(gan).type == "cuda" and resolve_device(RunConfig()).type == "cpu"


def test_cli_defaults_are_runconfig(media, talking_clip, tmp_path):
    """The command line and the library start from one source of defaults: `RunConfig()`."""
    import dataclasses
    import json

    from reenact.pipeline import RunConfig

    proc = run_cli("--print-config", str(media / "s42.jpg"), str(talking_clip), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(dataclasses.asdict(RunConfig())))
    assert json.loads(proc.stdout)["crop"]["scale"] == 1.6
    assert "(default: 1.6)" in " ".join(run_cli("--help", cwd=tmp_path).stdout.split())


def test_ict_tracks_drive_the_cli(media, talking_clip, tmp_path, monkeypatch):
    """With the ICT model, ARKit tracks exported as CSV and as JSON drive the command line (the refusal of
    "ict-arkit53" motions by the "ict-facekit" model is gone); both carry the same rotation and expression."""
    ict = media.parent / "facemodels" / "ict-facekit" / "ict_face_model.npz"
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path / "cache"))
    common = [str(media / "s42.jpg"), str(talking_clip), "-q", "--no-cache", "--face.model", "ict",
              "--face.path", str(ict), "--end", "12", "--ref-frame", "0"]
    assert main([*common, "-o", str(tmp_path / "a.mp4"), "--export-tracks", str(tmp_path / "t.csv")]) == 0
    assert main([*common, "-o", str(tmp_path / "b.mp4"), "--export-tracks", str(tmp_path / "t.json")]) == 0
    assert "jawopen" in (tmp_path / "t.csv").read_text().lower()
    for suffix in ("csv", "json"):
        assert main([*common, "-o", str(tmp_path / f"{suffix}.mp4"), "--tracks", str(tmp_path / f"t.{suffix}")]) == 0
    with open_video(tmp_path / "csv.mp4") as a, open_video(tmp_path / "json.mp4") as b:
        assert a.info.n_frames == b.info.n_frames == 12
        csv_frames, json_frames = (x.read(range(12)).astype(np.float32) for x in (a, b))
    assert np.abs(csv_frames - json_frames).mean() < 1.0  # one motion, up to the files' number precision
    assert np.abs(csv_frames[1:] - csv_frames[:1]).mean() > 1.0  # and it moves the face


def test_tracks_without_positions_do_not_fill_the_mouth_from_a_wrong_place(media, expressive_clip, tmp_path,
                                                                          monkeypatch):
    """CSV tracks carry no face position: with a driving video beside them, the mouth fill must not read the
    frame at the neutral placement (its top-left corner, painted magenta here) but shade from the source."""
    ict = media.parent / "facemodels" / "ict-facekit" / "ict_face_model.npz"
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path / "cache"))
    with open_video(expressive_clip) as reader:  # d0 opens its mouth wide
        frames, fps = reader.read(range(reader.info.n_frames)), reader.info.fps
    frames[:, :128, :128] = (255, 0, 255)
    painted = tmp_path / "painted.mp4"
    with VideoWriter(painted, fps, frames.shape[2], frames.shape[1]) as writer:
        writer.write(frames)
    common = [str(media / "s42.jpg"), str(painted), "-q", "--no-cache", "--face.model", "ict", "--face.path",
              str(ict)]
    assert main([*common, "-o", str(tmp_path / "a.mp4"), "--export-tracks", str(tmp_path / "t.csv")]) == 0
    assert main([*common, "-o", str(tmp_path / "b.mp4"), "--tracks", str(tmp_path / "t.csv")]) == 0
    with open_video(tmp_path / "a.mp4") as a, open_video(tmp_path / "b.mp4") as b:
        tracked, imported = (x.read(range(len(frames))).astype(int) for x in (a, b))
    assert np.abs(tracked[1:] - tracked[:1]).mean() > 1.0  # the mouth moves
    magenta = lambda x: ((x[..., 0] > 180) & (x[..., 2] > 180) & (x[..., 1] < 90)).sum()  # noqa: E731
    assert magenta(tracked) == 0 and magenta(imported) == 0


def test_error_after_threaded_tracking_still_reaches_stderr(media, talking_clip, tmp_path):
    """The tracker imports mediapipe from two threads; sys.stderr must survive that (it once ended up a
    StringIO, so evaluate exited 2 without its line), and an error after tracking is still the one stderr line."""
    from tests.conftest import cut_clip

    race = ("import sys, threading\nfrom third_party_wrappers.facemesh import _mediapipe\n"
            "gate = threading.Barrier(6)\nthreads = [threading.Thread(target=lambda: (gate.wait(), _mediapipe())) "
            "for _ in range(6)]\n[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print('reenact: still here', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", race], cwd=Path(__file__).parents[1], capture_output=True,
                          text=True, timeout=120)
    assert proc.stderr.strip().splitlines() == ["reenact: still here"]
    short = cut_clip(talking_clip, tmp_path / "short.mp4", 0, 20)
    proc = subprocess.run([sys.executable, "-m", "reenact.evaluate", "--source", str(media / "s42.jpg"),
                           "--driving", str(talking_clip), "--output", str(short), "--no-observer"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"reenact: {short}: 20 frames, but the driving video has 48"]


def test_demo_runs_with_no_inputs(tmp_path):
    """`--demo` on a fresh folder: outputs/demo.mp4 of the bundled motion's 150 frames with three panels (the
    motion's landmarks, the portrait, the result); the first frame (the motion's neutral reference) is the
    portrait, later ones move the face; inputs beside --demo are refused in one line."""
    from reenact.demo import demo_motion, demo_portrait
    from third_party_wrappers.image import read_image

    proc = run_cli("--demo", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    portrait = read_image(demo_portrait())
    with open_video(tmp_path / "outputs" / "demo.mp4") as got:
        assert got.info.n_frames == len(demo_motion()) == 150 and got.info.height == portrait.shape[0]
        frames = got.read(np.array([0, 75])).astype(np.float32)
    w = portrait.shape[1]
    panel, source, result = frames[..., :-2 * w, :], frames[..., -2 * w:-w, :], frames[..., -w:, :]
    assert abs(panel.shape[2] - panel.shape[1]) <= 2 and panel.max() > 150 and np.median(panel) < 60  # dots on grey
    face = (slice(100, 350), slice(150, 370))
    assert np.abs(result[0][face] - source[0][face]).mean() < 3  # neutral frame: the portrait itself
    assert np.abs(result[1][face] - source[1][face]).mean() > 8  # mid-clip: turned and smiling
    _assert_refused(run_cli("--demo", "x.jpg", "-q", cwd=tmp_path), tmp_path / "nothing", "--demo takes no")
