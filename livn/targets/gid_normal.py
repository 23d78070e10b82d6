"""The counter-based normal numbers that every simulator target draws its noise from.

``gid_normal(seed, gid, stream, step)`` is a standard normal number that depends on those four
integers only: a cell's noise does not depend on the other cells, on the order in which a
simulator visits them or on the MPI rank that owns the cell, and the Brian2 and NEURON targets
draw the *same* numbers for the same cell and time step (so their noisy runs can be compared
trace by trace). splitmix64's finaliser hashes (seed, gid, stream) into a key and the key with
the pair counter step // 2 into two uniform numbers; Box–Muller turns them into two independent
normal numbers, the cosine one for the even step and the sine one for the odd step (a
simulator that steps through time computes one pair per two steps).

:data:`C_SOURCE` is the one implementation both compiled targets include (NEURON in a
``VERBATIM`` block, Brian2 through Cython); :func:`gid_normal` is the same in numpy (Brian2's
numpy code generation, and tests). This module imports nothing but numpy, so compiled
simulation directories carry a copy of it.
"""

from __future__ import annotations

import numpy as np

#: C99: ``livn_gid_normal(seed, gid, stream, step)`` and ``livn_gid_normal_pair(seed, gid, stream,
#: pair, &even, &odd)`` (the numbers of steps 2·pair and 2·pair + 1 at the cost of one)
C_SOURCE = """
#include <math.h>
#include <stdint.h>

/* every identifier starts with livn_: NEURON's generated code #defines its variable names */
static inline uint64_t livn_mix64(uint64_t livn_x) {
    livn_x += 0x9E3779B97F4A7C15ULL;
    livn_x = (livn_x ^ (livn_x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    livn_x = (livn_x ^ (livn_x >> 27)) * 0x94D049BB133111EBULL;
    return livn_x ^ (livn_x >> 31);
}

static inline void livn_gid_uniform_pair(uint64_t livn_seed, uint64_t livn_gid, uint64_t livn_stream,
                                         uint64_t livn_pair, double* livn_radius, double* livn_angle) {
    uint64_t livn_key = livn_mix64(livn_mix64(livn_mix64(livn_seed) ^ livn_gid) ^ livn_stream);
    uint64_t livn_a = livn_mix64(livn_key ^ (livn_pair << 1));
    uint64_t livn_b = livn_mix64(livn_key ^ ((livn_pair << 1) | 1ULL));
    double livn_u1 = 1.0 - (double)(livn_a >> 11) * 1.1102230246251565e-16;  /* (0, 1]: finite log */
    double livn_u2 = (double)(livn_b >> 11) * 1.1102230246251565e-16;
    *livn_radius = sqrt(-2.0 * log(livn_u1));
    *livn_angle = 6.283185307179586 * livn_u2;
}

static inline void livn_gid_normal_pair(uint64_t livn_seed, uint64_t livn_gid, uint64_t livn_stream,
                                        uint64_t livn_pair, double* livn_even, double* livn_odd) {
    double livn_radius, livn_angle;
    livn_gid_uniform_pair(livn_seed, livn_gid, livn_stream, livn_pair, &livn_radius, &livn_angle);
    *livn_even = livn_radius * cos(livn_angle);
    *livn_odd = livn_radius * sin(livn_angle);
}

/* one number without its partner (what a stateless caller, such as Brian2's code, needs) */
static inline double livn_gid_normal(uint64_t livn_seed, uint64_t livn_gid, uint64_t livn_stream,
                                     uint64_t livn_step) {
    double livn_radius, livn_angle;
    livn_gid_uniform_pair(livn_seed, livn_gid, livn_stream, livn_step >> 1, &livn_radius, &livn_angle);
    return livn_radius * ((livn_step & 1ULL) ? sin(livn_angle) : cos(livn_angle));
}
"""


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def gid_normal(seed, gid, stream, step) -> np.ndarray:
    """Standard normal numbers for (seed, gid, stream, step); arguments broadcast (integers)."""
    seed, gid, stream, step = (np.asarray(a, dtype=np.int64).astype(np.uint64) for a in (seed, gid, stream, step))
    key = _mix(_mix(_mix(seed) ^ gid) ^ stream)
    one = np.uint64(1)
    pair = step >> one
    a = _mix(key ^ (pair << one))
    b = _mix(key ^ ((pair << one) | one))
    u1 = 1.0 - (a >> np.uint64(11)).astype(float) * 2.0**-53
    u2 = (b >> np.uint64(11)).astype(float) * 2.0**-53
    angle = 2 * np.pi * u2
    return np.sqrt(-2.0 * np.log(u1)) * np.where((step & one) == one, np.sin(angle), np.cos(angle))
