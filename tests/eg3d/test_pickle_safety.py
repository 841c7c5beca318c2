"""Checkpoint loading refuses code, truncation and foreign architectures with clear errors."""
import builtins
import os
import pickle

import pytest
import torch

from reenact.errors import CheckpointError, MissingAssetError
from reenact.eg3d import TriPlaneGenerator, load_generator, save_generator


class _SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _EvalCall:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return builtins.eval, (self.source,)


def _write_pickle(path, obj):
    with open(path, 'wb') as f:
        pickle.dump({'G_ema': obj}, f)
    return path


def test_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = _write_pickle(tmp_path / 'evil.pkl', _SystemCall(f'touch {marker}'))
    with pytest.raises(CheckpointError, match=r'evil\.pkl.*forbidden global (posix|os|nt)\.system'):
        load_generator(path)
    assert not marker.exists()


@pytest.mark.parametrize('func', ['eval', 'exec'])
def test_builtins_eval_exec_are_refused(tmp_path, func):
    marker = tmp_path / 'pwned'
    payload = _EvalCall(f"open({str(marker)!r}, 'w').close()")
    path = _write_pickle(tmp_path / 'evil.pkl', payload)
    if func == 'exec':
        data = path.read_bytes().replace(b'eval', b'exec')
        path.write_bytes(data)
    with pytest.raises(CheckpointError, match=f'forbidden global builtins.{func}'):
        load_generator(path)
    assert not marker.exists()


def test_truncated_pickle(tmp_path, oracle_dir):
    data = (oracle_dir / 'network-snapshot-srcless.pkl').read_bytes()
    path = tmp_path / 'cut.pkl'
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_generator(path)


def test_garbage_file(tmp_path):
    path = tmp_path / 'garbage.pkl'
    path.write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError):
        load_generator(path)


def test_truncated_state_dict(tmp_path, oracle_dir):
    data = (oracle_dir / 'G_ema_state_dict.pt').read_bytes()
    path = tmp_path / 'cut.pt'
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(CheckpointError):
        load_generator(path, config=str(oracle_dir / 'config.json'))


def test_missing_file_names_the_official_source(tmp_path):
    with pytest.raises(MissingAssetError, match=r'ffhq512-128\.pkl.*NGC') as info:
        load_generator(tmp_path / 'ffhq512-128.pkl')
    assert 'ffhq512-128.pkl' in str(info.value)


def test_state_dict_of_other_shapes(tmp_path, oracle_dir, oracle_config):
    sd = torch.load(oracle_dir / 'G_ema_state_dict.pt', weights_only=True)
    sd['decoder.net.0.weight'] = torch.zeros(64, 16)
    del sd['backbone.mapping.w_avg']
    path = tmp_path / 'other.pt'
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r'do not fit.*1 missing.*w_avg.*1 shape mismatches'):
        load_generator(path, config=oracle_config)


def test_state_dict_without_config(tmp_path, oracle_dir):
    path = tmp_path / 'weights.pt'
    path.write_bytes((oracle_dir / 'G_ema_state_dict.pt').read_bytes())
    with pytest.raises(CheckpointError, match='config'):
        load_generator(path)


def test_save_roundtrip_and_dataset_label_std(tmp_path, oracle_dir):
    G = load_generator(oracle_dir / 'network-snapshot-srcless.pkl')
    save_generator(G, tmp_path / 'g.pt')
    H = load_generator(tmp_path / 'g.pt')
    assert list(H.state_dict()) == list(G.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), H.state_dict().values()))
    assert H.neural_rendering_resolution == 32 and H.rendering_kwargs == G.rendering_kwargs
    fresh = TriPlaneGenerator.from_config(G.config())
    assert 'dataset_label_std' not in fresh.state_dict()
    sd = {k: v for k, v in G.state_dict().items() if k != 'dataset_label_std'}
    fresh.load_state_dict(sd, strict=True)
