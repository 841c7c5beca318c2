"""Shared fixtures: the small EG3D oracle (read-only, in ../shared next to the repo)."""
import json
from pathlib import Path

import pytest

ORACLE_DIR = Path(__file__).resolve().parents[2].parent / 'shared' / 'oracles' / 'eg3d' / 'small'


@pytest.fixture(scope='session')
def oracle_dir():
    if not (ORACLE_DIR / 'config.json').is_file():
        pytest.skip(f'EG3D oracle not available at {ORACLE_DIR}')
    return ORACLE_DIR


@pytest.fixture(scope='session')
def oracle_config(oracle_dir):
    return json.loads((oracle_dir / 'config.json').read_text())


@pytest.fixture(scope='session')
def oracle_cases(oracle_dir):
    return json.loads((oracle_dir / 'cases.json').read_text())['cases']
