"""EG3D tri-plane generator in pure PyTorch: loads the official checkpoints and matches the official numerics.

Typical use::

    G = load_generator('ffhqrebalanced512-128.pkl')          # or a state dict + config.json
    ws = G.mapping(z, frontal_label(len(z)), truncation_psi=0.7)
    out = G.synthesis(ws, lookat_label(yaw, pitch), noise_mode='const')   # image, image_raw, image_depth
"""
from .camera import (FFHQ_FOCAL, FFHQ_PIVOT, FFHQ_RADIUS, focal_to_fov, fov_to_focal, frontal_label, intrinsics,
                     label_from_rotation, lookat_cam2world, lookat_label, make_label, mirror_label,
                     official_fov_to_focal, yaw_pitch_from_label)
from .generator import FFHQ512_128_CONFIG, OSGDecoder, TriPlaneGenerator
from .load import load_generator, save_generator

__all__ = [
    'TriPlaneGenerator', 'OSGDecoder', 'FFHQ512_128_CONFIG', 'load_generator', 'save_generator',
    'FFHQ_FOCAL', 'FFHQ_RADIUS', 'FFHQ_PIVOT', 'fov_to_focal', 'focal_to_fov', 'official_fov_to_focal',
    'intrinsics', 'lookat_cam2world', 'lookat_label', 'frontal_label', 'make_label', 'mirror_label',
    'yaw_pitch_from_label', 'label_from_rotation',
]
