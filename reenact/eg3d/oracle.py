"""The oracle protocol (shared/oracles/eg3d/*/README.md): replay one recorded case on a generator.

Cases 0-3: ws = G.mapping(z, c_map, psi, cutoff); torch.manual_seed(seed); G.synthesis(ws, c_cam, noise_mode).
Forward cases: torch.manual_seed(seed); G(z, c_map, neural_rendering_resolution=nrr, noise_mode) -- the new
resolution sticks, as officially, so it is restored afterwards like the oracle script did.
"""
import torch


def run_case(G, case, ref):
    """-> {'ws', 'image', 'image_raw', 'image_depth'} for a cases.json entry and its case*.pt tensors."""
    seed = case.get('render_seed', 4242)
    psi = case.get('psi', 1.0)
    cutoff = case.get('cutoff')
    noise_mode = case.get('noise_mode', 'const')
    with torch.no_grad():
        if case.get('use_forward'):
            before = G.neural_rendering_resolution
            ws = G.mapping(ref['z'], ref['c_map'], truncation_psi=psi, truncation_cutoff=cutoff)
            torch.manual_seed(seed)
            out = G(ref['z'], ref['c_map'], truncation_psi=psi, truncation_cutoff=cutoff,
                    neural_rendering_resolution=case.get('nrr'), noise_mode=noise_mode)
            G.neural_rendering_resolution = before
        else:
            ws = G.mapping(ref['z'], ref['c_map'], truncation_psi=psi, truncation_cutoff=cutoff)
            torch.manual_seed(seed)
            out = G.synthesis(ws, ref['c_cam'], neural_rendering_resolution=case.get('nrr'), noise_mode=noise_mode)
    return {'ws': ws, **out}
