"""Code-free reader for official EG3D / StyleGAN network pickles (`network-snapshot-*.pkl`).

The official format embeds Python source in every persistent object and `exec()`s it on load; this reader never
imports or executes anything from the file. Globals are resolved against an explicit allow-list of inert stand-ins
(records and a legacy-tensor parser); anything else (os.system, builtins.eval, subprocess, ...) is refused with a
`CheckpointError` naming the file and the global before it could be called. Result: for each module, its official
class name, init kwargs, plain attributes and tensors (see `module_tensors`).
"""
import collections
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from reenact.errors import CheckpointError

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}


class PersistentRecord:
    """A `@persistent_class` object: official class name plus its pickled `__dict__` (module_src is dropped)."""

    def __init__(self, class_name, state):
        self.class_name = class_name
        self.state = state


class ReferenceRecord:
    """A module pickled by reference (e.g. training.triplane.OSGDecoder): class name plus its `__dict__`.

    One inert subclass per allowed qualified name; NEWOBJ creates it empty and BUILD stores the state.
    """

    class_name = qualname = None
    state = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f'malformed state for {self.qualname}')
        self.state = state


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a plain dict here)."""


class LazyTensor:
    """A tensor whose bytes are parsed only when materialized (the discriminator's are never needed)."""

    def __init__(self, storage_bytes, offset, size, stride):
        self.storage_bytes, self.offset, self.size, self.stride = storage_bytes, offset, tuple(size), tuple(stride)

    def materialize(self):
        flat = _parse_legacy_storage(self.storage_bytes)
        return flat.as_strided(self.size, self.stride, self.offset).clone()


class _NumpyDtype:
    def __init__(self, name, align=False, copy=False):
        self.name, self.byteorder = str(name), '<'

    def __setstate__(self, state):
        self.byteorder = state[1] if isinstance(state, tuple) and len(state) > 1 else '<'

    def to_numpy(self):
        if self.name.startswith(('O', 'V', 'U', 'S')):
            raise pickle.UnpicklingError(f'numpy dtype {self.name!r} is not allowed')
        return np.dtype(self.name).newbyteorder('<' if self.byteorder in ('<', '|', '=') else '>')


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes):
        raise pickle.UnpicklingError('malformed numpy scalar')
    return np.frombuffer(data, dtype=dtype.to_numpy())[0].item()


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(meta.get('state'), dict):
        raise pickle.UnpicklingError('unsupported persistent object (only persistent classes are allowed)')
    return PersistentRecord(str(meta.get('class_name')), meta['state'])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, bytes):
        raise pickle.UnpicklingError('tensor storage is not a serialized byte stream')
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


def _load_from_bytes(data):
    return bytes(data)


def _reference_class(qualname):
    name = qualname.rsplit('.', 1)[-1]
    return type(name, (ReferenceRecord,), {'class_name': name, 'qualname': qualname})


_REFERENCE_CLASSES = (
    'training.triplane.OSGDecoder', 'training.volumetric_rendering.renderer.ImportanceRenderer',
    'training.volumetric_rendering.ray_marcher.MipRayMarcher2',
    'training.volumetric_rendering.ray_sampler.RaySampler',
    'torch.nn.modules.container.Sequential', 'torch.nn.modules.activation.Softplus',
)

ALLOWED_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy', 'dtype'): _NumpyDtype,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    **{tuple(q.rsplit('.', 1)): _reference_class(q) for q in _REFERENCE_CLASSES},
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f'{module}.{name}') from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('unexpected persistent id in a network pickle')


class _LegacyStorageUnpickler(pickle.Unpickler):
    """Reads the object pickle of a legacy (non-zip) torch.save stream holding one storage."""

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise ForbiddenGlobal(f'{module}.{name}')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage' and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError('malformed storage record')
        self.storages[str(pid[2])] = (pid[1], int(pid[4]))
        return str(pid[2])


def _parse_legacy_storage(data):
    """Legacy torch.save stream (magic, protocol, sys info, object, keys, raw data) -> flat 1-D tensor."""
    f = io.BytesIO(data)
    unp = _LegacyStorageUnpickler(f)
    if unp.load() != _LEGACY_MAGIC or unp.load() != 1001:
        raise pickle.UnpicklingError('tensor bytes are not a legacy torch.save stream')
    sys_info = unp.load()
    if not (isinstance(sys_info, dict) and sys_info.get('little_endian', True)):
        raise pickle.UnpicklingError('big-endian tensor data is not supported')
    root = unp.load()
    keys = unp.load()
    tensors = {}
    for key in keys:
        dtype, numel = unp.storages[str(key)]
        count = struct.unpack('<q', f.read(8))[0]
        nbytes = count * torch.empty((), dtype=dtype).element_size()
        raw = f.read(nbytes)
        if count != numel or len(raw) != nbytes:
            raise pickle.UnpicklingError('truncated tensor data')
        tensors[str(key)] = torch.frombuffer(bytearray(raw), dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
    return tensors[root]


def read_network_pickle(path):
    """Unpickle an official network pickle without running its code -> top-level dict of records.

    Raises CheckpointError for forbidden globals and for truncated or malformed files.
    """
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            data = _RestrictedUnpickler(f).load()
    except ForbiddenGlobal as exc:
        raise CheckpointError(f'{path}: refused: the pickle references the forbidden global {exc} '
                              f'(not on the EG3D allow-list); nothing from the file was run') from None
    except Exception as exc:  # any parse failure of untrusted bytes: truncated, garbage, malformed records
        raise CheckpointError(f'{path}: truncated or not a network pickle ({type(exc).__name__}: {exc})') from None
    if not isinstance(data, dict):
        raise CheckpointError(f'{path}: not a network pickle (top level is {type(data).__name__}, not dict)')
    return data


def module_tensors(record, prefix=''):
    """Flatten a module record like `state_dict()`: {dotted name: tensor}, plus {dotted prefix: class name}."""
    state = record.state
    tensors, classes = collections.OrderedDict(), {prefix.rstrip('.'): record.class_name}
    skip = set(state.get('_non_persistent_buffers_set', ()))
    for group in ('_parameters', '_buffers'):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == '_buffers' and name in skip):
                continue
            if not isinstance(value, LazyTensor):
                raise pickle.UnpicklingError(f'{prefix}{name} is not a tensor')
            tensors[prefix + name] = value.materialize()
    for name, child in (state.get('_modules') or {}).items():
        if child is None:
            continue
        if not isinstance(child, (PersistentRecord, ReferenceRecord)):
            raise pickle.UnpicklingError(f'{prefix}{name} is not a module')
        sub_tensors, sub_classes = module_tensors(child, f'{prefix}{name}.')
        tensors.update(sub_tensors)
        classes.update(sub_classes)
    return tensors, classes
