"""Thin adapter over decord (fast reads) and PyAV (fallback reads, H.264 writes, audio remux).

Frames cross this boundary as uint8 [N,H,W,3] RGB. The module translates; pipeline policy lives elsewhere.
"""

import dataclasses
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import decord
import numpy as np
from decord._ffi.base import DECORDError

from reenact.errors import InputError
from third_party_wrappers.image import read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


@dataclass(frozen=True)
class VideoInfo:
    """What a reader promises: decodable frame count, average fps, upright size (rotation applied)."""

    path: str
    fps: float
    n_frames: int
    height: int
    width: int
    has_audio: bool
    backend: str  # 'decord', 'pyav', or 'images' for a folder of stills

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoInfo":
        return cls(**{f.name: f.type(d[f.name]) for f in dataclasses.fields(cls)})


def _open_container(path: Path):
    """av.open with the project's one-line errors for missing, empty and non-media files."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: not a readable video ({e.strerror or type(e).__name__})") from None


def open_video(path, allow_truncated: bool = False, folder_fps: float = 25.0) -> "VideoReader":
    """Open a video file (decord, else PyAV) or a folder of images (natural name order, `folder_fps`).

    Missing/empty/non-video inputs raise InputError, and so do truncated files unless `allow_truncated`,
    which exposes only the decodable frames. The probe decodes one frame, not the clip: mp4/mov carry a
    full sample index (frames whose bytes lie past the end of the file are missing); other containers
    are demuxed without decoding and their intact packets counted.
    """
    path = Path(path)
    if path.is_dir():
        return _FolderReader(path, folder_fps)
    with _open_container(path) as c:
        if not c.streams.video or c.format.name == "image2" or c.format.name.endswith("_pipe"):
            raise InputError(f"{path}: not a video (no video stream)")
        s = c.streams.video[0]
        promised, entries = s.frames, s.index_entries
        times, duration = None, 0.0
        if promised > 0 and len(entries) == promised:
            size = path.stat().st_size
            decodable = sum(1 for e in entries if e.pos + e.size <= size)
        else:
            packets = [(p.pts, p.duration) for p in _intact_packets(c, s)]
            decodable = len(packets)
            promised = max(promised, decodable)
            times, duration = _frame_times(packets, s.time_base)
            c.seek(0)
        rate = s.average_rate or s.guessed_rate or s.base_rate
        if duration > 0:  # demuxed: the mean rate over every frame's display time, the last frame's too
            rate = Fraction(decodable / duration).limit_denominator(1001 * 1000)
        first = next(_decode(c, s), None)
        if first is None or not rate:
            raise InputError(f"{path}: no decodable video frames")
        quarter_turns = round((first.rotation or 0) / 90) % 4
        height, width = (first.width, first.height) if quarter_turns % 2 else (first.height, first.width)
        info = VideoInfo(str(path), float(rate), decodable, height, width, bool(c.streams.audio), "pyav")
        codec = s.codec_context.name
    if decodable < promised and not allow_truncated:
        raise InputError(f"{path}: truncated video: the container promises {promised} frames but only "
                         f"{decodable} can be decoded; pass --allow-truncated to use them")
    reader = None
    if decodable == promised and codec != "gif":
        try:
            reader = _DecordReader(dataclasses.replace(info, backend="decord"), quarter_turns)
        except (DECORDError, ValueError):
            pass
    reader = reader or _PyAVReader(info, quarter_turns)
    reader.times = None if times is None else np.append(times, duration)
    return reader


def _frame_times(packets: list[tuple[int | None, int | None]], time_base) -> tuple[np.ndarray | None, float]:
    """(display times in s from the first frame, or None where the frames are evenly spaced; the clip's length
    in s including the last frame's display time, 0 if unknown) from the (pts, duration) of a stream's packets."""
    pts = np.array(sorted(p for p, _ in packets if p is not None), np.float64) * float(time_base)
    if len(pts) < 2 or len(pts) < len(packets):
        return None, 0.0
    pts -= pts[0]
    steps = np.diff(pts)
    last = max(packets, key=lambda p: p[0])[1]
    length = pts[-1] + (last * float(time_base) if last else float(np.median(steps)))
    even = np.abs(steps - np.median(steps)).max() <= 0.01 * np.median(steps)
    return (None if even else pts), float(length)


def _intact_packets(c, s):
    """Demux the stream's packets up to the first damaged one (a truncated file ends in a partial packet)."""
    try:
        for p in c.demux(s):
            if p.is_corrupt:
                return
            if p.size:
                yield p
    except av.error.InvalidDataError:
        return


def _decode(c, s):
    """Decode frames in display order, stopping quietly at the damage of a truncated file."""
    for p in _intact_packets(c, s):
        try:
            yield from p.decode()
        except av.error.InvalidDataError:
            return
    try:
        yield from s.decode(None)
    except av.error.FFmpegError:
        return


class VideoReader:
    """Streaming reader: `chunks()` for the whole clip, `read()` for a few frames. Use as a context manager."""

    info: VideoInfo
    times: np.ndarray | None = None  # [n_frames + 1] a variable-rate clip's frame display times and its end (s)

    def chunks(self, size: int = 64, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first frame index, uint8 [n,H,W,3]) for frames start..end-1, at most `size` at a time."""
        end = self.info.n_frames if end is None else end
        if not 0 <= start <= end <= self.info.n_frames or size < 1:
            raise ValueError(f"bad chunk range {start}:{end} (size {size}) for {self.info.n_frames} frames")
        return self._chunks(size, start, end)

    def read(self, indices) -> np.ndarray:
        """Frames at the given indices, uint8 [len(indices),H,W,3], in the order asked."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not indices.size:
            return np.empty((0, self.info.height, self.info.width, 3), np.uint8)
        if indices.min() < 0 or indices.max() >= self.info.n_frames:
            raise IndexError(f"frame index out of range 0..{self.info.n_frames - 1}")
        return self._read(indices)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Pass:
    """One open decoding pass over a file: its frames in display order and the index of the next one."""

    def __init__(self, path: str):
        self.container = av.open(path)
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        self.frames = _decode(self.container, stream)
        self.next = 0

    def take(self, start: int, end: int, rotation: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames [start, end) as (index, RGB uint8), decoding (not converting) the frames before `start`."""
        while self.next < end:
            frame = next(self.frames, None)
            if frame is None:
                return
            self.next += 1
            if self.next > start:
                yield self.next - 1, np.rot90(frame.to_ndarray(format="rgb24"), rotation)

    def close(self) -> None:
        self.container.close()


class _PyAVReader(VideoReader):
    """Sequential decoding. `chunks()` keeps its pass open, so consecutive ranges (a run's segments) continue
    where the last one stopped instead of decoding the clip from its start again; `read()` makes its own pass,
    so the two can interleave."""

    def __init__(self, info: VideoInfo, rotation: int):
        self.info = info
        self._rotation = rotation
        self._pass: _Pass | None = None

    def _chunks(self, size, start, end):
        if self._pass is None or self._pass.next > start:
            _PyAVReader.close(self)
            self._pass = _Pass(self.info.path)
        shape = (self.info.height, self.info.width, 3)
        buf, first, n = None, start, 0
        for i, rgb in self._pass.take(start, end, self._rotation):
            if n == 0:
                buf, first = np.empty((min(size, end - i), *shape), np.uint8), i
            buf[n] = rgb
            n += 1
            if n == len(buf):
                yield first, buf
                n = 0
        if n:
            yield first, buf[:n]

    def _read(self, indices):
        out = np.empty((len(indices), self.info.height, self.info.width, 3), np.uint8)
        one = _Pass(self.info.path)
        try:
            for i, rgb in one.take(int(indices.min()), int(indices.max()) + 1, self._rotation):
                out[indices == i] = rgb
        finally:
            one.close()
        return out

    def close(self) -> None:
        if self._pass is not None:
            self._pass.close()
            self._pass = None


class _DecordReader(_PyAVReader):
    """PyAV's sequential chunks and decord's batched random access (`read`). Decord applies the display rotation
    itself. Chunks do not use decord: its decoding, run beside mediapipe's graph, keeps memory that grows with the
    clip (2 GB after 3000 frames of tracking, against 0.2 GB with PyAV at the same speed)."""

    def __init__(self, info: VideoInfo, rotation: int):
        super().__init__(info, rotation)
        self._vr = decord.VideoReader(info.path, num_threads=0)
        if len(self._vr) < info.n_frames:
            raise ValueError("decord sees fewer frames than the container index")

    def _read(self, indices):
        return self._vr.get_batch(indices.tolist()).asnumpy()

    def close(self):
        super().close()
        self._vr = None


class _FolderReader(VideoReader):
    """A folder of same-sized stills read as a silent clip."""

    def __init__(self, folder: Path, fps: float):
        natural = lambda p: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]  # noqa: E731
        self._files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural)
        if not self._files:
            raise InputError(f"{folder}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        h, w = read_image(self._files[0]).shape[:2]
        self.info = VideoInfo(str(folder), float(fps), len(self._files), h, w, False, "images")

    def _load(self, i: int) -> np.ndarray:
        rgb = read_image(self._files[i])
        if rgb.shape[:2] != (self.info.height, self.info.width):
            raise InputError(f"{self._files[i]}: size {rgb.shape[1]}x{rgb.shape[0]} differs from the first image's "
                             f"{self.info.width}x{self.info.height}")
        return rgb

    def _chunks(self, size, start, end):
        for i in range(start, end, size):
            yield i, np.stack([self._load(j) for j in range(i, min(i + size, end))])

    def _read(self, indices):
        return np.stack([self._load(i) for i in indices.tolist()])


class VideoWriter:
    """H.264 (libx264, yuv420p) mp4 writer with optional audio taken from another file.

    Odd sizes lose their last row/column (yuv420p needs even sizes). Frames go to a hidden
    `.NAME.part.mp4` beside `path`, which replaces `path` only when close() succeeds; any exception
    inside the `with` block (KeyboardInterrupt included) deletes it. Audio is stream-copied when mp4
    can hold its codec (AAC otherwise) and cut at the video's duration.
    """

    def __init__(self, path, fps: float, width: int, height: int, audio_from=None, crf: int = 18,
                 segments_like=None, audio_start: float = 0.0, times=None):
        """`segments_like`: an mp4 made by this writer; the writer then joins such segments
        (`append_segment`, stream copy) instead of encoding frames. `audio_start`: seconds of the audio
        source that align with the first frame (for a clip cut from the source). `times`: each frame's display
        time in s and the end of the last one (a variable-rate clip's `VideoReader.times`), kept to the millisecond and
        encoded without B-frames so that each frame lasts until the next; else frames are 1 / fps apart."""
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.part.mp4")
        self._size = (height, width)
        self._rate = Fraction(fps).limit_denominator(1001 * 1000)
        self._tick = 1 / self._rate if times is None else Fraction(1, 1000)
        self._ticks = None if times is None else np.round(np.asarray(times, np.float64) * 1000).astype(np.int64)
        self._n = 0
        self._src = self._audio_out = self._packets = self._pending = None
        self._transcode = False
        self._audio_start = Fraction(audio_start).limit_denominator(1_000_000)
        self._out = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            if segments_like is None:
                options = {"crf": str(crf)} if times is None else {"crf": str(crf), "bf": "0"}
                self._video = self._out.add_stream("libx264", rate=self._rate, options=options)
                self._video.width, self._video.height = width - width % 2, height - height % 2
                self._video.pix_fmt = "yuv420p"
                self._video.codec_context.time_base = self._tick
            else:
                with av.open(str(segments_like)) as seg:
                    self._video = self._out.add_stream_from_template(seg.streams.video[0])
            if audio_from is not None:
                self._open_audio(Path(audio_from))
        except BaseException:
            self.abort()
            raise

    def _open_audio(self, source: Path) -> None:
        src = _open_container(source)
        if not src.streams.audio:
            src.close()
            return
        self._src, audio = src, src.streams.audio[0]
        self._transcode = audio.codec_context.name not in _MP4_AUDIO
        if self._transcode:
            self._audio_out = self._out.add_stream("aac", rate=audio.codec_context.sample_rate)
            self._packets = _decode(src, audio)
        else:
            self._audio_out = self._out.add_stream_from_template(audio)
            self._packets = _intact_packets(src, audio)

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 [N,H,W,3] (or one [H,W,3]) RGB frames of the size given to the constructor."""
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.dtype != np.uint8 or frames.shape[1:] != (*self._size, 3):
            raise ValueError(f"VideoWriter expects uint8 [N,{self._size[0]},{self._size[1]},3], "
                             f"got {frames.dtype} {frames.shape}")
        frames = frames[:, : self._video.height, : self._video.width]
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self._n if self._ticks is None else int(self._ticks[self._n])
            frame.time_base = self._tick
            self._mux(self._video.encode(frame))
            self._n += 1
        self._copy_audio(self._n / self._rate)

    def _mux(self, packets) -> None:
        """Mux encoded packets; a variable-rate frame lasts until the next one's time (or the clip's end)."""
        for packet in packets:
            if self._ticks is not None:
                packet.duration = int(self._ticks[np.searchsorted(self._ticks, packet.pts, side="right")] - packet.pts)
            self._out.mux(packet)

    def append_segment(self, segment, start: float | None = None) -> None:
        """Stream-copy the video packets of a segment written by this module, after the frames so far (or from
        `start` s, a variable-rate clip's time of the segment's first frame)."""
        with av.open(str(segment)) as seg:
            stream = seg.streams.video[0]
            offset = int(round((self._n / self._rate if start is None else Fraction(start)) / stream.time_base))
            count = 0
            for packet in seg.demux(stream):
                if packet.size == 0:
                    continue
                packet.pts, packet.dts = packet.pts + offset, packet.dts + offset
                packet.stream = self._video
                self._out.mux(packet)
                count += 1
        self._n += count
        self._copy_audio(self._n / self._rate)

    def _copy_audio(self, until: Fraction) -> None:
        """Mux source audio (packets or frames) that starts before `until` seconds."""
        while self._packets is not None:
            item = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if item is None:
                self._packets = None
                continue
            if item.pts is None:
                continue
            start = item.pts * item.time_base - self._audio_start
            if start >= until:
                self._pending = item
                return
            if start < 0:  # before the clip
                continue
            shift = int(round(self._audio_start / item.time_base))
            if self._transcode:
                item.pts -= shift
                self._out.mux(self._audio_out.encode(item))
            else:
                item.pts, item.dts = item.pts - shift, None if item.dts is None else item.dts - shift
                item.stream = self._audio_out
                self._out.mux(item)

    def close(self) -> None:
        """Flush the encoders, finish the file and move it onto `path`."""
        if self._out is None:
            return
        try:
            if self._video.codec_context.is_encoder:
                self._mux(self._video.encode(None))
            self._copy_audio(self._n / self._rate)
            if self._transcode:
                self._out.mux(self._audio_out.encode(None))
            self._out.close()
            self._out = None
            os.replace(self._tmp, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        """Release both files and delete the temp file (already gone after a successful close)."""
        for c in (self._out, self._src):
            if c is not None:
                try:
                    c.close()
                except av.error.FFmpegError:
                    pass
        self._out = self._src = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
