"""Counter-based random streams keyed by (seed, purpose, gid).

Every gid owns an independent Philox stream, so what a cell draws does not depend on which
other cells exist, in what order they are processed, or how many processes share the work.
"""

from __future__ import annotations

import zlib

import numpy as np


def purpose_id(purpose: str) -> int:
    """A stable 32-bit id for a purpose name (e.g. "placement", "connectivity:EXC->INH")."""
    return zlib.crc32(purpose.encode("utf-8"))


class Streams:
    """Random streams of one purpose: ``Streams(seed, "placement").generator(gid)``.

    Philox's 256-bit counter is laid out as [draws, 0, gid, purpose]; the key is the seed.
    A gid's stream has 2**64 blocks before it could reach another's.
    """

    def __init__(self, seed: int, purpose: str):
        self._key = np.array([seed % 2**64, seed // 2**64], dtype=np.uint64)
        self._purpose = purpose_id(purpose)
        self._bits = np.random.Philox(key=seed)
        self._generator = np.random.Generator(self._bits)

    def generator(self, gid: int) -> np.random.Generator:
        """The generator positioned at the start of ``gid``'s stream.

        The returned object is reused by the next call: draw from it before asking again.
        """
        self._bits.state = {
            "bit_generator": "Philox",
            "state": {"counter": np.array([0, 0, gid, self._purpose], dtype=np.uint64), "key": self._key},
            "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0,
        }
        return self._generator

    def uniform(self, gid: int, n: int) -> np.ndarray:
        """``n`` uniforms in [0, 1) from the start of ``gid``'s stream."""
        return self.generator(gid).random(n)
