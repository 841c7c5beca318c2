"""Time of the EG3D generator: forward, and forward + backward (one projection step), against a baseline checkout.

usage: python bench/eg3d_speed.py [--device cpu|cuda] [--configs small ffhq512-128] [--batches 1]
                                  [--repeats N] [--baseline DIR]

Random weights (seed 0, identical in both checkouts: the modules are built in the same order). The forward is
mapping + synthesis without grad; the projection step is synthesis with ws requiring grad, an image loss (mean square
of image and image_raw) and its backward, as in `reenact.invert.project`. Each (checkout, config, batch) runs in its
own subprocess, so peak memory is per run: VmHWM (peak RSS, including the ~0.3 GB of Python + torch) on CPU,
torch.cuda.max_memory_allocated on CUDA. With --baseline DIR (e.g. `git worktree add /tmp/base <commit>`), the same
runs are made with that checkout's `reenact`, the times are printed as ratios, and the outputs and the gradient
w.r.t. ws are compared (max abs difference; the official tolerance of the oracle tests is 1e-4).
Configs: `small` is the oracle's developer architecture (R=32, 12+12 samples, 128 px); `ffhq512-128` is the official
FFHQ 512 model (R=128, 48+48 samples, 512 px). The default CPU run takes ~3 min on 2 cores, ~6 with a baseline.
"""
import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

SMALL_RENDERING = dict(image_resolution=128, superresolution_module='training.superresolution.SuperresolutionHybrid2X',
                       depth_resolution=12, depth_resolution_importance=12)
REPEATS = {'small': 20, 'ffhq512-128': 3}  # the minimum of a 60 ms forward settles only over many runs
KEYS = ('image', 'image_raw', 'image_depth', 'ws_grad')


def configs():
    from reenact.eg3d import FFHQ512_128_CONFIG
    small = {
        'init_kwargs': {
            'z_dim': 64, 'w_dim': 512, 'c_dim': 25, 'img_resolution': 128, 'img_channels': 3,
            'mapping_kwargs': {'num_layers': 2, 'embed_features': 64, 'layer_features': 64},
            'channel_base': 1024, 'channel_max': 16, 'fused_modconv_default': 'inference_only',
            'num_fp16_res': 0, 'conv_clamp': None, 'sr_num_fp16_res': 4,
            'sr_kwargs': {'channel_base': 1024, 'channel_max': 16, 'fused_modconv_default': 'inference_only'},
            'rendering_kwargs': dict(FFHQ512_128_CONFIG['init_kwargs']['rendering_kwargs'], **SMALL_RENDERING),
        },
        'neural_rendering_resolution': 32,
    }
    return {'small': small, 'ffhq512-128': FFHQ512_128_CONFIG}


def peak_memory_mb(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def best_time(run, repeats, device):
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(repo, name, batch, device_name, repeats, out_file):
    """Runs in the child process with `repo` first on sys.path: prints one JSON line, saves the outputs."""
    sys.path.insert(0, str(repo))
    from reenact.eg3d import TriPlaneGenerator, frontal_label, lookat_label
    device = torch.device(device_name)
    torch.manual_seed(0)
    G = TriPlaneGenerator.from_config(copy.deepcopy(configs()[name])).eval().requires_grad_(False).to(device)
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(1)).to(device)
    c_map = frontal_label(batch, device=device)
    c_cam = lookat_label([0.3] * batch, [-0.1] * batch, device=device)
    with torch.no_grad():
        ws = G.mapping(z, c_map, truncation_psi=0.7)
    state = {}

    def forward():
        with torch.no_grad():
            G.synthesis(G.mapping(z, c_map, truncation_psi=0.7), c_cam, noise_mode='const',
                        generator=torch.Generator(device).manual_seed(2))

    def step():
        w = ws.clone().requires_grad_(True)
        out = G.synthesis(w, c_cam, noise_mode='const', generator=torch.Generator(device).manual_seed(2))
        (out['image'].square().mean() + out['image_raw'].square().mean()).backward()
        state.update({k: v.detach() for k, v in out.items()}, ws_grad=w.grad)

    forward_s = best_time(forward, repeats, device)
    step_s = best_time(step, repeats, device)
    torch.save({k: state[k].cpu() for k in KEYS}, out_file)
    print(json.dumps({'forward_s': forward_s, 'step_s': step_s, 'peak_mb': peak_memory_mb(device),
                      'threads': torch.get_num_threads()}))


def run_child(repo, name, batch, args, out_file):
    cmd = [sys.executable, __file__, '--device', args.device, '--child', str(repo), name, str(batch), out_file,
           '--repeats', str(args.repeats or REPEATS[name])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ['no output']
        sys.exit(f'eg3d_speed: {repo} {name} batch {batch} failed: {lines[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--configs', nargs='+', default=['small', 'ffhq512-128'], choices=['small', 'ffhq512-128'])
    parser.add_argument('--batches', nargs='+', type=int, default=[1])
    parser.add_argument('--repeats', type=int, help='timed runs per measure (best is kept); default 20 small, 3 ffhq')
    parser.add_argument('--baseline', type=Path, help='another checkout of this repository to compare with')
    parser.add_argument('--child', nargs=4, metavar=('REPO', 'CONFIG', 'BATCH', 'OUT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        repo, name, batch, out_file = args.child
        measure(Path(repo), name, int(batch), args.device, args.repeats, out_file)
        return
    if args.baseline and not (args.baseline / 'reenact' / 'eg3d').is_dir():
        sys.exit(f'eg3d_speed: {args.baseline} is not a checkout of this repository')
    print(f"{'config':12s} {'batch':>5s} {'forward s':>10s} {'step s':>8s} {'peak MB':>8s}  "
          f"{'fwd x':>6s} {'step x':>6s}  max abs diff vs baseline ({', '.join(KEYS)})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            for batch in args.batches:
                now = run_child(ROOT, name, batch, args, f'{tmp}/now.pt')
                line = (f"{name:12s} {batch:5d} {now['forward_s']:10.2f} {now['step_s']:8.2f} {now['peak_mb']:8.0f}")
                if args.baseline:
                    base = run_child(args.baseline, name, batch, args, f'{tmp}/base.pt')
                    a, b = torch.load(f'{tmp}/now.pt'), torch.load(f'{tmp}/base.pt')
                    diffs = ', '.join(f'{(a[k] - b[k]).abs().max().item():.1e}' for k in KEYS)
                    line += (f"  {base['forward_s'] / now['forward_s']:5.2f}x {base['step_s'] / now['step_s']:5.2f}x"
                             f"  {diffs} (baseline {base['forward_s']:.2f} s / {base['step_s']:.2f} s, "
                             f"{base['peak_mb']:.0f} MB)")
                print(line + f"  [{args.device}, {now['threads']} threads]", flush=True)


if __name__ == '__main__':
    main()
