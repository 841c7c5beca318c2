"""EG3D camera labels: 25 floats = row-major 4x4 cam2world (OpenCV camera axes) + row-major 3x3 intrinsics
normalized by the image size (fx/W, skew, cx/W; 0, fy/H, cy/H; 0, 0, 1).

World frame (the head's canonical frame): +y up, +z out of the face toward a frontal camera, +x toward
image-right of the frontal view. OpenCV camera axes: +x right, +y down, +z forward (away from the camera).
The frontal camera therefore has rotation diag(1, -1, -1) and sits at (0, 0, 2.7).

Yaw/pitch follow the official `LookAtPoseSampler` with h = pi/2 + yaw, v = pi/2 + pitch: yaw > 0 moves the camera
toward +x, pitch < 0 moves it up (looking down). As in the official sampler the camera lies on the sphere of
`radius` about the world origin and looks at `pivot`. All functions are vectorized over a leading batch axis
and computed in float32 with the official op order, so labels match official ones to float32 rounding.
"""
import math

import torch

FFHQ_FOCAL = 4.2647          # normalized focal length of all FFHQ models (2985.29 px / 700 px)
FFHQ_RADIUS = 2.7
FFHQ_PIVOT = (0.0, 0.0, 0.2)


def fov_to_focal(fov_deg):
    """Normalized focal length (image size 1) for a full horizontal/vertical field of view in degrees."""
    return 0.5 / math.tan(math.radians(fov_deg) / 2)


def focal_to_fov(focal):
    """Inverse of `fov_to_focal`: 4.2647 -> 13.37 degrees."""
    return math.degrees(2 * math.atan(0.5 / focal))


def official_fov_to_focal(fov_deg):
    """The demo scripts' formula 1/(tan(fov*3.14159/360)*1.414): their 18.837 deg gives 4.2647."""
    return float(1 / (math.tan(fov_deg * 3.14159 / 360) * 1.414))


def intrinsics(focal=FFHQ_FOCAL, cx=0.5, cy=0.5, device=None):
    """Normalized 3x3 intrinsics (fx = fy = focal, no skew)."""
    return torch.tensor([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=torch.float32, device=device)


def _normalize(v):
    return v / torch.norm(v, dim=-1, keepdim=True)


def _angle_batch(angle, device):
    """pi/2 + angle, added in float64 and rounded once to float32 (as the official sampler's mean)."""
    return (torch.as_tensor(angle, dtype=torch.float64, device=device).reshape(-1, 1) + math.pi / 2).float()


def cam2world_from_forward(forward, origin):
    """Official `create_cam2world_matrix`: zero-roll camera at origin [N,3] looking along forward [N,3]."""
    forward = _normalize(forward)
    up = torch.tensor([0, 1, 0], dtype=torch.float32, device=origin.device).expand_as(forward)
    right = -_normalize(torch.cross(up, forward, dim=-1))
    up = _normalize(torch.cross(forward, right, dim=-1))
    n = forward.shape[0]
    rot = torch.eye(4, device=origin.device).unsqueeze(0).repeat(n, 1, 1)
    rot[:, :3, :3] = torch.stack((right, up, forward), dim=-1)
    trans = torch.eye(4, device=origin.device).unsqueeze(0).repeat(n, 1, 1)
    trans[:, :3, 3] = origin
    return trans @ rot


def lookat_cam2world(yaw, pitch, radius=FFHQ_RADIUS, pivot=FFHQ_PIVOT, device=None):
    """[N,4,4] cam2world for yaw/pitch in radians relative to frontal (scalars or [N] sequences/tensors)."""
    h = _angle_batch(yaw, device)
    v = _angle_batch(pitch, device)
    h, v = torch.broadcast_tensors(h, v)
    v = torch.clamp(v, 1e-5, math.pi - 1e-5)
    phi = torch.arccos(1 - 2 * (v / math.pi))
    origin = torch.cat([radius * torch.sin(phi) * torch.cos(math.pi - h), radius * torch.cos(phi),
                        radius * torch.sin(phi) * torch.sin(math.pi - h)], dim=1)
    pivot = torch.as_tensor(pivot, dtype=torch.float32, device=origin.device)
    return cam2world_from_forward(_normalize(pivot - origin), origin)


def make_label(cam2world, focal=FFHQ_FOCAL):
    """[N,4,4] cam2world (+ focal or [3,3]/[N,3,3] intrinsics) -> [N,25] labels."""
    cam2world = cam2world.reshape(-1, 4, 4).to(torch.float32)
    n = cam2world.shape[0]
    k = focal if torch.is_tensor(focal) else intrinsics(focal, device=cam2world.device)
    k = k.to(cam2world).reshape(-1, 9).expand(n, 9)
    return torch.cat([cam2world.reshape(n, 16), k], dim=1)


def lookat_label(yaw, pitch, radius=FFHQ_RADIUS, pivot=FFHQ_PIVOT, focal=FFHQ_FOCAL, device=None):
    """[N,25] label for yaw/pitch (radians; official LookAtPoseSampler with std 0, without its RNG draws)."""
    return make_label(lookat_cam2world(yaw, pitch, radius, pivot, device), focal)


def frontal_label(batch=1, radius=FFHQ_RADIUS, pivot=FFHQ_PIVOT, focal=FFHQ_FOCAL, device=None):
    """The conditioning camera used by the official demos (frontal LookAt), repeated `batch` times."""
    return lookat_label([0.0] * batch, [0.0] * batch, radius, pivot, focal, device)


def yaw_pitch_from_label(label):
    """Inverse of `lookat_label` from the camera position: -> (yaw [N], pitch [N]) in radians."""
    pos = label.reshape(-1, 25)[:, [3, 7, 11]].to(torch.float64)
    r = pos.norm(dim=1)
    yaw = math.pi - torch.atan2(pos[:, 2], pos[:, 0]) - math.pi / 2
    pitch = math.pi * (1 - pos[:, 1] / r) / 2 - math.pi / 2
    return yaw.to(label.dtype), pitch.to(label.dtype)


def mirror_label(label):
    """Label of the horizontally mirrored image: flips the sign of the cam2world entries [0,1], [0,2], [1,0],
    [2,0] and [0,3] (official dataset mirroring) and of the skew, and moves the principal point cx to 1 - cx
    (a no-op for the centred FFHQ intrinsics)."""
    out = label.clone()
    out[..., [1, 2, 4, 8, 3, 17]] = -out[..., [1, 2, 4, 8, 3, 17]]
    out[..., 18] = 1 - out[..., 18]
    return out


def label_from_rotation(R_cam_from_head, radius=FFHQ_RADIUS, pivot=FFHQ_PIVOT, focal=FFHQ_FOCAL):
    """Camera label that views the head as rotated by R_cam_from_head ([3,3] or [N,3,3]).

    R_cam_from_head maps head coordinates, with the head frame being EG3D's world frame (+y up, +z out of the
    face), into OpenCV camera coordinates (x right, y down, z forward). The frontal head is diag(1, -1, -1),
    which gives the frontal LookAt label. A head rotating by R relative to frontal is equivalent to the camera
    orbiting by R^T: the cam2world rotation is R^T (roll included), and the camera is placed where its optical
    axis through `pivot` meets the sphere of `radius` about the origin (the official LookAt convention; for
    roll-free R this reproduces `lookat_label` exactly up to rounding).
    """
    R = torch.as_tensor(R_cam_from_head, dtype=torch.float32)
    R = R.reshape(-1, 3, 3)
    rot = R.transpose(1, 2)
    forward = rot[:, :, 2]
    p = torch.as_tensor(pivot, dtype=torch.float32, device=R.device).expand_as(forward)
    pf = (p * forward).sum(-1, keepdim=True)
    t = pf + torch.sqrt(pf.square() - p.square().sum(-1, keepdim=True) + radius ** 2)
    origin = p - t * forward
    c2w = torch.eye(4, device=R.device).repeat(R.shape[0], 1, 1)
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = origin
    return make_label(c2w, focal)
