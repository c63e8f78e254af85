"""A Bloom filter over record ids: "surely not seen" or "maybe seen".

The index pass of a grouped source must find a repeated customer or invoice
id anywhere in a file, and tell a payment of an unknown invoice from one
whose invoice comes later, without keeping every id. A Bloom filter answers
"was this id added?" with no false "no" and a small share of false "yes"
(about 1 % at the default size), in about 12 bits per id instead of the
90 bytes a Python string in a set costs. Callers treat a "yes" as a
suspicion to confirm, never as a fact, so the size of the filter changes
how much is confirmed, never an answer.

Each id is hashed once with BLAKE2b; three 32-bit slices of the digest give
the three bit positions. BLAKE2b rather than Python's `hash()`, which is
salted per process: the same input then leads to the same suspicions, and
the same amount of work, on every run.
"""

from __future__ import annotations

import struct
from hashlib import blake2b

BITS_PER_ID = 12  # with three positions per id: about 1 % false "yes" when full
_MIN_BITS = 64
_POSITIONS = struct.Struct("<3I")


class IdFilter:
    """A fixed-size Bloom filter sized for `expected` ids.

    More ids than expected still work: the share of false "yes" grows.
    """

    def __init__(self, expected: int, bits_per_id: float = BITS_PER_ID) -> None:
        self.size = max(_MIN_BITS, int(expected * bits_per_id))
        self._bits = bytearray((self.size + 7) // 8)

    def add(self, key: str) -> bool:
        """Add `key`; True when it may have been added before."""
        a, b, c = _positions(key)
        size, bits = self.size, self._bits
        a, b, c = a % size, b % size, c % size
        seen = (
            bits[a >> 3] >> (a & 7) & bits[b >> 3] >> (b & 7) & bits[c >> 3] >> (c & 7)
        ) & 1
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        bits[c >> 3] |= 1 << (c & 7)
        return seen == 1

    def __contains__(self, key: str) -> bool:
        """False when `key` was surely never added."""
        a, b, c = _positions(key)
        size, bits = self.size, self._bits
        a, b, c = a % size, b % size, c % size
        return (
            bits[a >> 3] >> (a & 7)
            & bits[b >> 3] >> (b & 7)
            & bits[c >> 3] >> (c & 7)
            & 1
        ) == 1

    @property
    def nbytes(self) -> int:
        """Memory held by the bits."""
        return len(self._bits)


def _positions(key: str) -> tuple[int, ...]:
    """Three 32-bit numbers from one BLAKE2b digest of `key`."""
    try:
        data = key.encode()
    except UnicodeEncodeError:  # a lone surrogate, from JSON
        data = key.encode("utf-8", "surrogatepass")
    return _POSITIONS.unpack(blake2b(data, digest_size=12).digest())
