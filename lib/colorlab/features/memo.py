"""What several nets, or several readouts of one net, make of the same photos: made once while they colour them.

    from colorlab.features import memo
    with memo.shared_maps():              # scoring 8 runs on one batch of photos:
        for model in models:              # the first makes each photo's semantic maps and features,
            model.colorize(gray)          # the others read them

Outside `shared_maps` nothing is kept (a colourisation times its own features).
Inside, what `kept` is asked for is looked up by a key of what makes it, so it is
the same either way: a score does not depend on whether it was kept, only its time
does. Two kinds of callers build keys: Cheng et al.'s model for its feature maps
(the image's bytes, the feature settings, a digest of the parser's weights), and
the readouts of one trained CNN (`colorlab.readout`'s chroma gains, the vividness
extension's temperatures) for the network's output (the network object, a digest of
its weights, the bytes of its input), so a run read out five ways runs its network
once per photo. What is kept is a NumPy array (made read-only), a tensor (handed to
every caller as it is: they never change it in place) or a tuple of them. At most
`max_bytes` are held, the oldest dropped first.

The package's `__init__` does not import this module: the scene parser's run key
covers the feature code it imports, and keeping maps changes nothing it computes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

Made = TypeVar("Made", np.ndarray, torch.Tensor, tuple)  # what `kept` keeps
MAX_BYTES = 1 << 29  # 512 MiB: a batch of 32 photos' maps at Cheng's cpu working size (128 px) is about 350 MB


def _nbytes(made) -> int:
    """Bytes held by an array, a tensor, or a tuple of them (None: 0)."""
    if isinstance(made, tuple):
        return sum(_nbytes(m) for m in made)
    return 0 if made is None else int(made.nbytes)


def _read_only(made):
    """NumPy arrays made read-only (a tensor cannot be: its callers never change it in place)."""
    for m in made if isinstance(made, tuple) else (made,):
        if isinstance(m, np.ndarray):
            m.setflags(write=False)
    return made


class Kept:
    """Arrays, tensors or tuples of them by key, at most `max_bytes` in all; `hits` and `misses` count the
    look-ups."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.arrays = max_bytes, 0, OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple, make: Callable[[], Made]) -> Made:
        if key in self.arrays:
            self.hits += 1
            self.arrays.move_to_end(key)
            return self.arrays[key]
        self.misses += 1
        out = _read_only(make())  # shared by every caller: nobody may change it
        size = _nbytes(out)
        if size <= self.max_bytes:
            self.arrays[key] = out
            self.bytes += size
            while self.bytes > self.max_bytes:
                self.bytes -= _nbytes(self.arrays.popitem(last=False)[1])
        return out


_active: list[Kept] = []


@contextmanager
def shared_maps(max_bytes: int = MAX_BYTES) -> Iterator[Kept]:
    """Keep the maps made inside the block."""
    kept_here = Kept(max_bytes)
    _active.append(kept_here)
    try:
        yield kept_here
    finally:
        _active.remove(kept_here)


def image_digest(image: np.ndarray | torch.Tensor) -> tuple:
    """What an array's (or a tensor's) key holds of it: a digest of its bytes, its shape and its dtype."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.ascontiguousarray(image)
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest(), image.shape, image.dtype.str


def weights_digest(module) -> str | None:
    """A digest of a network's weights, kept on the module while its tensors are unchanged (None: not a network)."""
    if not isinstance(module, torch.nn.Module):
        return None
    state = module.state_dict()
    versions = tuple((name, t._version, t.data_ptr()) for name, t in state.items())
    known = module.__dict__.get("_weights_digest")
    if known is None or known[0] != versions:
        h = hashlib.sha256()
        for name, t in state.items():
            h.update(name.encode() + t.detach().cpu().contiguous().numpy().tobytes())
        known = (versions, h.hexdigest())
        module.__dict__["_weights_digest"] = known
    return known[1]


def kept(key: Callable[[], tuple | None], make: Callable[[], Made]) -> Made:
    """`make()`, or inside `shared_maps` the array kept under `key()` (a key of None: never kept). The key is a
    function so a colourisation outside the block hashes nothing."""
    if not _active:
        return make()
    k = key()
    return make() if k is None else _active[-1].get(k, make)
