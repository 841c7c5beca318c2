"""Check reenact's EG3D generator against an oracle folder (layout of shared/oracles/eg3d/small).

usage: python bench/eg3d_oracle.py ORACLE_DIR

The folder needs config.json, cases.json, case tensors <name>.pt and G_ema_state_dict.pt and/or a network pickle
(*.pkl). Prints the max abs error of ws, image, image_raw and image_depth per case and loader, then exactly one
line `max_abs_err=<value>`. Exits 2 with a one-line message if the folder is malformed.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reenact.errors import ReenactError  # noqa: E402
from reenact.eg3d import load_generator  # noqa: E402
from reenact.eg3d.oracle import run_case  # noqa: E402

KEYS = ('ws', 'image', 'image_raw', 'image_depth')


def fail(message):
    print(f'eg3d_oracle: {message}', file=sys.stderr)
    sys.exit(2)


def read_cases(folder):
    for name in ('config.json', 'cases.json'):
        if not (folder / name).is_file():
            fail(f'{folder} is not an oracle folder: {name} missing')
    try:
        cases = json.loads((folder / 'cases.json').read_text())['cases']
        assert isinstance(cases, list) and cases and all('name' in c for c in cases)
    except (ValueError, KeyError, TypeError, AssertionError):
        fail(f'{folder / "cases.json"}: malformed (expected {{"cases": [{{"name": ...}}, ...]}})')
    for case in cases:
        if not (folder / f"{case['name']}.pt").is_file():
            fail(f"{folder}: case file {case['name']}.pt missing")
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('oracle_dir', type=Path)
    args = parser.parse_args()
    folder = args.oracle_dir
    if not folder.is_dir():
        fail(f'{folder}: no such directory')
    cases = read_cases(folder)
    weights = [p for p in [folder / 'G_ema_state_dict.pt', *sorted(folder.glob('*.pkl'))] if p.is_file()]
    if not weights:
        fail(f'{folder}: neither G_ema_state_dict.pt nor a *.pkl network pickle found')
    worst = 0.0
    for path in weights:
        try:
            G = load_generator(path, config=str(folder / 'config.json') if path.suffix == '.pt' else None)
        except ReenactError as exc:
            fail(str(exc))
        for case in cases:
            try:
                ref = torch.load(folder / f"{case['name']}.pt", map_location='cpu', weights_only=True)
                out = run_case(G, case, ref)
                errs = {k: (out[k] - ref[k]).abs().max().item() for k in KEYS}
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                fail(f"{folder / case['name']}.pt: unusable case ({type(exc).__name__}: {exc})")
            worst = max(worst, *errs.values())
            print(f"{path.name:32s} {case['name']:28s} " + '  '.join(f'{k}={v:.3g}' for k, v in errs.items()))
    print(f'max_abs_err={worst:.6g}')


if __name__ == '__main__':
    main()
