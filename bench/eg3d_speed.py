"""Forward time and peak memory of the EG3D generator (mapping + synthesis), random weights.

usage: python bench/eg3d_speed.py [--device cpu|cuda] [--configs small ffhq512-128] [--batches 1 4]

Each (config, batch) runs in its own subprocess so peak memory is per run: VmHWM (peak RSS, includes the
~0.3 GB of the Python/torch process) on CPU, torch.cuda.max_memory_allocated on CUDA. Configs: `small` is the
oracle's developer architecture (R=32, 12+12 samples, 128 px); `ffhq512-128` is the official FFHQ 512 model
(R=128, 48+48 samples, 512 px). The default run takes ~1-3 min on a 2-core CPU.
"""
import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import FFHQ512_128_CONFIG, TriPlaneGenerator, frontal_label, lookat_label  # noqa: E402

SMALL_CONFIG = {
    'init_kwargs': {
        'z_dim': 64, 'w_dim': 512, 'c_dim': 25, 'img_resolution': 128, 'img_channels': 3,
        'mapping_kwargs': {'num_layers': 2, 'embed_features': 64, 'layer_features': 64},
        'channel_base': 1024, 'channel_max': 16, 'fused_modconv_default': 'inference_only',
        'num_fp16_res': 0, 'conv_clamp': None, 'sr_num_fp16_res': 4,
        'sr_kwargs': {'channel_base': 1024, 'channel_max': 16, 'fused_modconv_default': 'inference_only'},
        'rendering_kwargs': dict(FFHQ512_128_CONFIG['init_kwargs']['rendering_kwargs'], image_resolution=128,
                                 superresolution_module='training.superresolution.SuperresolutionHybrid2X',
                                 depth_resolution=12, depth_resolution_importance=12),
    },
    'neural_rendering_resolution': 32,
}
CONFIGS = {'small': (SMALL_CONFIG, 1, 3), 'ffhq512-128': (FFHQ512_128_CONFIG, 0, 1)}  # (config, warmups, repeats)


def peak_memory_mb(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def measure(name, batch, device_name):
    """Runs in the child process: prints one JSON line."""
    device = torch.device(device_name)
    config, warmups, repeats = CONFIGS[name]
    t0 = time.perf_counter()
    G = TriPlaneGenerator.from_config(copy.deepcopy(config)).eval().requires_grad_(False).to(device)
    build_s = time.perf_counter() - t0
    z = torch.randn(batch, G.z_dim, device=device)
    c_map = frontal_label(batch, device=device)
    c_cam = lookat_label([0.3] * batch, [-0.1] * batch, device=device)
    times = []
    with torch.no_grad():
        for i in range(warmups + repeats):
            t0 = time.perf_counter()
            ws = G.mapping(z, c_map, truncation_psi=0.7)
            G.synthesis(ws, c_cam, noise_mode='const')
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if i >= warmups:
                times.append(time.perf_counter() - t0)
    print(json.dumps({'config': name, 'batch': batch, 'build_s': build_s, 'forward_s': min(times),
                      'repeats': repeats, 'peak_mb': peak_memory_mb(device), 'threads': torch.get_num_threads()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 4])
    parser.add_argument('--child', nargs=2, metavar=('CONFIG', 'BATCH'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child[0], int(args.child[1]), args.device)
        return
    print(f"{'config':12s} {'batch':>5s} {'s/forward':>10s} {'s/image':>8s} {'peak MB':>8s} {'build s':>8s}  device")
    for name in args.configs:
        for batch in args.batches:
            proc = subprocess.run([sys.executable, __file__, '--device', args.device, '--child', name, str(batch)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f'{name:12s} {batch:5d} failed: {proc.stderr.strip().splitlines()[-1]}')
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name:12s} {batch:5d} {r['forward_s']:10.2f} {r['forward_s'] / batch:8.2f} {r['peak_mb']:8.0f} "
                  f"{r['build_s']:8.2f}  {args.device} ({r['threads']} threads, best of {r['repeats']})")


if __name__ == '__main__':
    main()
