"""The generator reproduces the official EG3D outputs (small oracle) from both the state dict and the pickle."""
import pytest
import torch

from reenact.eg3d import load_generator
from reenact.eg3d.oracle import run_case
from reenact.eg3d.volume import sample_rays

TOL = 1e-4


@pytest.fixture(scope='module', params=['G_ema_state_dict.pt', 'network-snapshot-srcless.pkl'])
def generator(request, oracle_dir):
    return load_generator(oracle_dir / request.param)


def test_every_case(generator, oracle_dir, oracle_cases):
    for case in oracle_cases:
        ref = torch.load(oracle_dir / f"{case['name']}.pt", weights_only=True)
        out = run_case(generator, case, ref)
        for key in ('ws', 'image', 'image_raw', 'image_depth'):
            err = (out[key] - ref[key]).abs().max().item()
            assert err <= TOL, f"{case['name']} {key}: max abs error {err:.3g}"
        assert generator.neural_rendering_resolution == 32


def test_intermediates(generator, oracle_dir):
    ref = torch.load(oracle_dir / 'case1_b1_psi0.7.pt', weights_only=True)
    c = ref['c_cam']
    origins, dirs = sample_rays(c[:, :16].view(-1, 4, 4), c[:, 16:].view(-1, 3, 3), 32)
    assert torch.equal(origins, ref['ray_origins'])
    assert torch.equal(dirs, ref['ray_directions'])
    torch.manual_seed(4242)
    assert torch.equal(torch.rand(ref['rand_stratified'].shape), ref['rand_stratified'])
    assert torch.equal(torch.rand(ref['rand_importance'].shape), ref['rand_importance'])
    with torch.no_grad():
        planes = generator.backbone.synthesis(ref['ws'], noise_mode='const')
        assert (planes[:, :, ::32, ::32] - ref['planes_sub32']).abs().max() <= TOL
        torch.manual_seed(4242)
        out = generator.renderer(planes.view(1, 3, 32, 256, 256), generator.decoder, origins, dirs,
                                 generator.rendering_kwargs)
    for key in ('depths_coarse', 'depths_fine', 'weights_sum'):
        assert (out[key] - ref[key]).abs().max() <= TOL, key
    features = out['features'].permute(0, 2, 1).reshape(1, 32, 32, 32)
    assert (features - ref['feature_image']).abs().max() <= TOL


def test_case4_in_place_quirk(generator, oracle_dir, oracle_cases):
    """NoUp SR without resize: image_raw is the rendered RGB plus block0's ToRGB output, as officially."""
    case = next(c for c in oracle_cases if c['use_forward'])
    ref = torch.load(oracle_dir / f"{case['name']}.pt", weights_only=True)
    out = run_case(generator, case, ref)
    assert (out['image_raw'] - ref['image_raw']).abs().max() <= TOL
    assert (out['image_raw'] - ref['rgb_before_sr']).abs().max() > 1.0


def test_resolution_is_sticky(generator, oracle_dir):
    ref = torch.load(oracle_dir / 'case3_b1_noise_none_pitch.pt', weights_only=True)
    try:
        with torch.no_grad():
            out = generator.synthesis(ref['ws'], ref['c_cam'], neural_rendering_resolution=16, noise_mode='none')
            assert out['image_raw'].shape[-1] == 16 and generator.neural_rendering_resolution == 16
            out = generator.synthesis(ref['ws'], ref['c_cam'], noise_mode='none')
            assert out['image_depth'].shape[-1] == 16
    finally:
        generator.neural_rendering_resolution = 32
