"""Load / save TriPlaneGenerator weights: official network pickles, official state dicts (+ config), our own files.

Every failure is a `reenact.errors` exception with a one-line message: MissingAssetError for an absent file,
CheckpointError for a truncated or foreign file, a forbidden pickle global, or weights of another architecture.
"""
import copy
import json
import zipfile
from pathlib import Path

import torch

from reenact.errors import CheckpointError, MissingAssetError
from third_party_wrappers import eg3d_pickle

from .generator import TriPlaneGenerator

SAVE_FORMAT = 'reenact.eg3d.TriPlaneGenerator/1'
_OFFICIAL_HINT = ('official EG3D checkpoints (ffhq512-128.pkl, ffhqrebalanced512-128.pkl) come from NVIDIA NGC '
                  '(catalog "EG3D", https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d)')


def _plain(obj):
    """EasyDict / tuple trees -> plain dicts and lists (JSON-able, weights_only-safe)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _fit_state_dict(G, state_dict, path):
    """load_state_dict(strict=True) with a one-line CheckpointError describing any mismatch."""
    ours = G.state_dict()
    missing = [k for k in ours if k not in state_dict]
    # dataset_label_std is optional: TriPlaneGenerator registers it while loading when the file has it.
    unexpected = [k for k in state_dict if k not in ours and k != 'dataset_label_std']
    shapes = [k for k in ours if k in state_dict and tuple(ours[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys (e.g. {missing[0]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys (e.g. {unexpected[0]})')
        if shapes:
            k = shapes[0]
            parts.append(f'{len(shapes)} shape mismatches (e.g. {k}: file {list(state_dict[k].shape)} '
                         f'vs model {list(ours[k].shape)})')
        raise CheckpointError(f'{path}: weights do not fit the configured EG3D architecture: ' + '; '.join(parts))
    G.load_state_dict(state_dict, strict=True)


def generator_from_state(config, state_dict, path, device='cpu'):
    """Build from a config dict ({'init_kwargs', 'rendering_kwargs'?, 'neural_rendering_resolution'?}) + weights."""
    try:
        G = TriPlaneGenerator.from_config(config)
    except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
        raise CheckpointError(f'{path}: unusable generator config ({type(exc).__name__}: {exc})') from None
    _fit_state_dict(G, state_dict, path)
    return G.eval().requires_grad_(False).to(device)


def _load_pickle(path, device):
    data = eg3d_pickle.read_network_pickle(path)
    record = data.get('G_ema')
    if not isinstance(record, eg3d_pickle.PersistentRecord) or record.class_name != 'TriPlaneGenerator':
        found = getattr(record, 'class_name', type(record).__name__)
        raise CheckpointError(f'{path}: G_ema is not an EG3D TriPlaneGenerator (found {found})')
    state = record.state
    try:
        tensors, classes = eg3d_pickle.module_tensors(record)
    except Exception as exc:  # malformed records or tensor streams inside an otherwise readable pickle
        raise CheckpointError(f'{path}: corrupt tensor data in G_ema ({type(exc).__name__}: {exc})') from None
    if state.get('_init_args'):
        raise CheckpointError(f'{path}: unexpected positional init args for TriPlaneGenerator')
    config = {'init_kwargs': _plain(state.get('_init_kwargs', {})),
              'rendering_kwargs': _plain(state.get('rendering_kwargs')),
              'neural_rendering_resolution': state.get('neural_rendering_resolution')}
    G = generator_from_state(config, tensors, path, device)
    ours = dict(G.named_modules())
    for prefix, class_name in classes.items():
        if prefix in ours and type(ours[prefix]).__name__ != class_name:
            raise CheckpointError(f'{path}: module {prefix or "G_ema"} is {class_name} in the file but '
                                  f'{type(ours[prefix]).__name__} here')
    return G


def _find_config(path, config):
    if config is not None and not isinstance(config, (str, Path)):
        return config
    candidates = [Path(config)] if config is not None else [
        path.with_suffix('.json'), path.with_name(path.stem + '.config.json'), path.with_name('config.json')]
    for cand in candidates:
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except (OSError, ValueError) as exc:
                raise CheckpointError(f'{cand}: unreadable generator config ({exc})') from None
    if config is not None:
        raise MissingAssetError(f'{config}: generator config not found')
    raise CheckpointError(f'{path}: a plain state dict lacks the init kwargs; pass config= or put a config.json '
                          f'(the oracle layout: init_kwargs, rendering_kwargs, neural_rendering_resolution) beside it')


def load_generator(path, device='cpu', config=None):
    """TriPlaneGenerator from an official .pkl (its G_ema), a file written by `save_generator`, or a plain state
    dict plus `config` (dict or JSON path; default: a sidecar `<name>.json` or `config.json`).

    Like the official G_ema it is in eval mode (fused modconv) with requires_grad False: gradients still flow
    to ws; call `G.requires_grad_(True)` to fine-tune the weights.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(f'EG3D checkpoint {path} not found; {_OFFICIAL_HINT}')
    if not zipfile.is_zipfile(path):
        return _load_pickle(path, device)
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign zip files
        first_line = (str(exc).splitlines() or [''])[0]
        raise CheckpointError(f'{path}: unreadable weights file ({type(exc).__name__}: {first_line})') from None
    if isinstance(data, dict) and data.get('format') == SAVE_FORMAT:
        return generator_from_state(data['config'], data['state_dict'], path, device)
    if not (isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values())):
        raise CheckpointError(f'{path}: not a state dict (a mapping of names to tensors)')
    return generator_from_state(_find_config(path, config), data, path, device)


def save_generator(G, path):
    """One torch.save file (weights_only-loadable) with the state dict and everything needed to rebuild G."""
    torch.save({'format': SAVE_FORMAT, 'config': copy.deepcopy(G.config()),
                'state_dict': {k: v.detach().cpu() for k, v in G.state_dict().items()}}, Path(path))
