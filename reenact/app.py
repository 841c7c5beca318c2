"""`python -m reenact.app [--host 127.0.0.1] [--port 7860] [--generator G.pkl]`: the web app (Gradio).

Upload a portrait and a driving video (or a driving photo, or pose sliders and a preset, for a still), or take the
bundled demo; the result plays in the page with its audio, the driving | source | result comparison beside it, and
downloads as MP4 with the driving tracks. Every run is the command line's own (`python -m reenact.run`, or
`python -m pipelines.still`) in a child process: the same options and defaults, the same progress bars (read from
its stderr into the page's progress), the same one-line errors, and a cancel that stops it at once. Each browser
session works in its own folder, removed when the session ends. Gradio is an optional extra (`pip install .[app]`);
nothing else in the package imports it.
"""

import argparse
import atexit
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from reenact.demo import demo_motion_path, demo_portrait
from reenact.errors import InputError
from reenact.ict_basis import find_model
from reenact.pipeline import RunConfig
from reenact.presets import ARKIT

MAX_UPLOAD_MB = 200
IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP"}
VIDEO_MAGIC = {b"\x1a\x45\xdf\xa3": "Matroska/WebM", b"GIF87a": "GIF", b"GIF89a": "GIF"}
PROGRESS = re.compile(r"(\w+):\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")  # a tqdm bar: "render:  40%|####| 60/150"
DEFAULTS = RunConfig()
RUNNING: dict[str, subprocess.Popen] = {}  # each session folder's running child, for Cancel to stop


def file_kind(path: Path) -> str | None:
    """'image', 'video' or None from a file's first bytes (its signature), before anything decodes it."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if any(head.startswith(m) for m in IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if any(head.startswith(m) for m in VIDEO_MAGIC) or head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and
                                                                                 head[8:12] == b"AVI "):
        return "video"
    return None


def check_upload(path: str | None, kinds: tuple[str, ...], what: str) -> Path:
    """An uploaded file's path once its size and signature say it is one of `kinds`; else a one-line InputError."""
    if not path:
        raise InputError(f"give a {what}")
    p = Path(path)
    if p.stat().st_size > MAX_UPLOAD_MB << 20:
        raise InputError(f"{p.name}: larger than {MAX_UPLOAD_MB} MB")
    kind = file_kind(p)
    if kind not in kinds:
        raise InputError(f"{p.name}: not a {' or '.join(kinds)} file")
    return p


def video_args(options: dict) -> list[str]:
    """`python -m reenact.run` flags of the page's options (only those that differ from the defaults)."""
    t = DEFAULTS.transfer
    args = []
    if options["mode"] != t.mode:
        args += ["--mode", options["mode"]]
    ref = str(options["ref_frame"] or "auto").strip()
    if ref != "auto":
        if not ref.isdigit():
            raise InputError(f"reference frame: {ref!r} is not a frame number or auto")
        args += ["--ref-frame", ref]
    if options["expression_scale"] != t.expression_scale:
        args += ["--expression-scale", str(options["expression_scale"])]
    if options["coefficient_scales"]:
        args += ["--transfer.coefficient-scales", options["coefficient_scales"]]
    if options["follow"] == "pose only":
        args.append("--pose-only")
    elif options["follow"] == "expression only":
        args.append("--expression-only")
    if options["smooth"] != DEFAULTS.smooth.method:
        args += ["--smooth", options["smooth"]]
    if options["crop_only"]:
        args.append("--crop-only")
    if options["start"]:
        args += ["--start", str(int(options["start"]))]
    if options["end"]:  # 0: to the end
        args += ["--end", str(int(options["end"]))]
    return args


def run_command(command: list[str], cwd: Path, log: list[str]) -> Iterator[tuple[str, float]]:
    """Run a command line of ours in `cwd`, yielding its progress bars as (stage, fraction) and collecting its
    messages in `log`; its one-line error (or the last line it printed) becomes an InputError. `stop(cwd)` (Cancel)
    kills the child at once, and so does closing this generator."""
    proc = subprocess.Popen([sys.executable, "-m", *command], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    RUNNING[str(cwd)] = proc
    try:
        buffer = ""
        while chunk := proc.stderr.read(1):
            if chunk not in "\r\n":
                buffer += chunk
                continue
            match = PROGRESS.search(buffer)
            if match:
                yield match.group(1), int(match.group(3)) / max(1, int(match.group(4)))
            elif buffer.strip():
                log.append(buffer.strip().removeprefix("reenact: "))
            buffer = ""
        if proc.wait() != 0:
            raise InputError((log or ["the run failed"])[-1])
    finally:
        RUNNING.pop(str(cwd), None)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(folder: str) -> None:
    """Kill the child running in a session's folder, if any."""
    proc = RUNNING.get(folder)
    if proc is not None and proc.poll() is None:
        proc.kill()


def render_video(folder: Path, portrait: Path, driving: Path | None, tracks: Path | None, options: dict,
                 generator: str | None, log: list[str]) -> Iterator[tuple[str, float] | dict]:
    """Progress (stage, fraction) of the run, then its files in `folder` (a dict): result MP4, comparison MP4 and
    the driving tracks (CSV with the ICT model, else .npz)."""
    out = folder / f"run-{uuid.uuid4().hex[:8]}"
    out.mkdir()
    inputs = [str(portrait)] + ([str(driving)] if driving else []) + (["--tracks", str(tracks)] if tracks else [])
    extra = video_args(options) + (["--generator", generator] if generator and options["gan"] else [])
    work = ["--work-dir", str(folder / "work")]
    named = find_model() is not None  # the run's auto face model is ICT-FaceKit: its named coefficients in CSV
    track_file = out / ("tracks.csv" if named else "tracks.npz")
    export = ["--export-tracks", str(track_file)] if driving else []
    yield from run_command(["reenact.run", *inputs, "-o", str(out / "result.mp4"), *work, *extra, *export], folder,
                           log)
    compare = None if options["crop_only"] else out / "compare.mp4"
    if compare:
        yield from run_command(["reenact.run", *inputs, "-o", str(compare), "--compare", *work, *extra], folder, [])
    yield {"result": out / "result.mp4", "compare": compare, "tracks": track_file if export else None}


def render_still(folder: Path, portrait: Path, driving: Path | None, options: dict, generator: str | None,
                 log: list[str]) -> Iterator[tuple[str, float] | Path]:
    """Progress of a still through `pipelines/still.py` (the driving photo's pose and expression, or the sliders
    and preset), then the image's path."""
    out = folder / f"still-{uuid.uuid4().hex[:8]}.png"
    args = ["pipelines.still", str(portrait), "-o", str(out)]
    if driving:
        args += ["--driving", str(driving)]
    else:
        args += ["--yaw", str(options["yaw"]), "--pitch", str(options["pitch"]), "--roll", str(options["roll"])]
        if options["preset"] != "none":
            args += ["--preset", options["preset"], "--strength", str(options["strength"])]
    if generator and options["gan"]:
        args += ["--generator", generator]
    yield from run_command(args, folder, log)
    yield out


def build(generator: str | None = None):
    """The Gradio Blocks of the app; `generator`: an EG3D checkpoint on the server for the 3D GAN path."""
    import gradio as gr

    root = Path(tempfile.mkdtemp(prefix="reenact-app-"))
    atexit.register(shutil.rmtree, root, True)  # the sessions' folders, whatever the sessions left

    def session_folder(request: gr.Request) -> Path:
        """The browser session's own folder (removed when the session ends)."""
        folder = root / re.sub(r"\W", "", request.session_hash or "anonymous")
        folder.mkdir(exist_ok=True)
        return folder

    def run_video(portrait, driving, use_demo, mode, ref_frame, expression_scale, coefficient_scales, follow,
                  smooth, crop_only, start, end, gan, request: gr.Request, progress=gr.Progress()):
        folder = session_folder(request)
        options = dict(mode=mode, ref_frame=ref_frame, expression_scale=expression_scale,
                       coefficient_scales=coefficient_scales.strip(), follow=follow, smooth=smooth,
                       crop_only=crop_only, start=start, end=end, gan=gan)
        log: list[str] = []
        unchanged = (gr.update(),) * 4
        try:
            if use_demo:
                steps = render_video(folder, demo_portrait(), None, demo_motion_path(), options, generator, log)
            else:
                source = check_upload(portrait, ("image",), "portrait (JPEG, PNG, WebP)")
                video = check_upload(driving, ("video",), "driving video (MP4, MOV, MKV, WebM, GIF, AVI)")
                steps = render_video(folder, source, video, None, options, generator, log)
            files = {}
            for step in steps:
                if isinstance(step, dict):
                    files = step
                else:
                    progress(step[1], desc=step[0])
                    yield unchanged
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        downloads = [str(f) for f in (files["result"], files["tracks"]) if f]
        yield (str(files["result"]), None if files["compare"] is None else str(files["compare"]), downloads,
               "\n".join(log))

    def run_still(portrait, driving, yaw, pitch, roll, preset, strength, gan, request: gr.Request,
                  progress=gr.Progress()):
        folder = session_folder(request)
        options = dict(yaw=yaw, pitch=pitch, roll=roll, preset=preset, strength=strength, gan=gan)
        log: list[str] = []
        try:
            source = check_upload(portrait, ("image",), "portrait (JPEG, PNG, WebP)")
            photo = check_upload(driving, ("image",), "driving photo") if driving else None
            for step in render_still(folder, source, photo, options, generator, log):
                if isinstance(step, Path):
                    image = step
                else:
                    progress(step[1], desc=step[0])
                    yield gr.update()
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        yield str(image)

    def cleanup(request: gr.Request) -> None:
        stop(str(session_folder(request)))
        shutil.rmtree(session_folder(request), ignore_errors=True)

    t = DEFAULTS.transfer
    with gr.Blocks(title="reenact", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# reenact\nAnimate a portrait with the head pose and expressions of a driving video.")
        with gr.Tab("Video"):
            with gr.Row():
                portrait = gr.Image(label="portrait", type="filepath", sources=["upload"], elem_id="portrait")
                driving = gr.File(label="driving video", file_types=["video"], elem_id="driving")
            use_demo = gr.Checkbox(label="use the bundled demo (Grace Hopper, public domain, with a made-up motion)",
                                   value=False, elem_id="use-demo")
            with gr.Accordion("options", open=False):
                with gr.Row():
                    mode = gr.Radio(["relative", "absolute"], value=t.mode, label="transfer")
                    follow = gr.Radio(["pose + expression", "pose only", "expression only"],
                                      value="pose + expression", label="follow")
                    smooth = gr.Dropdown(["one_euro", "savgol", "gaussian", "none"], value=DEFAULTS.smooth.method,
                                         label="smoothing")
                with gr.Row():
                    ref_frame = gr.Textbox(label="reference frame (auto: the most frontal, most neutral)",
                                           value="auto")
                    expression_scale = gr.Slider(0, 2, value=t.expression_scale, step=0.05,
                                                 label="expression scale")
                    coefficient_scales = gr.Textbox(label="per blend-shape scales (ICT model), e.g. jawOpen=1.2")
                with gr.Row():
                    start = gr.Number(label="first frame", precision=0, value=DEFAULTS.start, minimum=0)
                    end = gr.Number(label="end frame, exclusive (0: to the end)", precision=0, value=0, minimum=0)
                    crop_only = gr.Checkbox(label="crop only", value=DEFAULTS.output.crop_only)
                    gan = gr.Checkbox(label="3D GAN path" + ("" if generator else " (no checkpoint on this server)"),
                                      value=False, interactive=bool(generator))
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id="run")
                cancel = gr.Button("Cancel", elem_id="cancel")
            with gr.Row():
                result = gr.Video(label="result", elem_id="result")
                comparison = gr.Video(label="driving | source | result", elem_id="comparison")
            with gr.Row():
                downloads = gr.File(label="downloads", file_count="multiple", elem_id="downloads")
                log = gr.Textbox(label="run log (face model, reference frame chosen, ...)", lines=4,
                                 elem_id="log")
            job = run.click(run_video, [portrait, driving, use_demo, mode, ref_frame, expression_scale,
                                        coefficient_scales, follow, smooth, crop_only, start, end, gan],
                            [result, comparison, downloads, log])
            cancel.click(lambda request: stop(str(session_folder(request))), None, None, cancels=[job])
        with gr.Tab("Still"):
            with gr.Row():
                still_portrait = gr.Image(label="portrait", type="filepath", sources=["upload"])
                still_driving = gr.Image(label="driving photo (optional)", type="filepath", sources=["upload"])
            with gr.Row():
                yaw = gr.Slider(-40, 40, value=0, step=1, label="yaw (deg)")
                pitch = gr.Slider(-30, 30, value=0, step=1, label="pitch (deg)")
                roll = gr.Slider(-30, 30, value=0, step=1, label="roll (deg)")
            with gr.Row():
                preset = gr.Dropdown(["none", *sorted(ARKIT)], value="none", label="expression preset")
                strength = gr.Slider(0, 2, value=1, step=0.05, label="preset strength")
                still_gan = gr.Checkbox(label="3D GAN path", value=False, interactive=bool(generator))
            still_run = gr.Button("Run", variant="primary")
            still_out = gr.Image(label="result", type="filepath")
            still_run.click(run_still, [still_portrait, still_driving, yaw, pitch, roll, preset, strength,
                                        still_gan], still_out)
        app.unload(cleanup)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reenact.app", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--generator", help="EG3D checkpoint on this server for the 3D GAN path (never uploaded)")
    args = p.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("reenact: the web app needs Gradio: pip install .[app]", file=sys.stderr)
        return 2
    if args.generator and not Path(args.generator).is_file():
        print(f"reenact: {args.generator}: no such checkpoint file", file=sys.stderr)
        return 2
    build(args.generator).queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
