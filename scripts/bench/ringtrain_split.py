"""RingTrain's seeded splits re-implemented (xoshiro256** seeded through SplitMix64, streams by
FNV-1a), so a reference model can be fitted on exactly the rows RingTrain trains and tests on.
Pinned against Tests/TensorCoreTests/SplitVectorTests.swift."""
import math

M = (1 << 64) - 1


def fnv(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M
    return h


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class RNG:
    def __init__(self, seed, stream=None, index=0):
        if stream is not None:
            seed = seed ^ fnv(stream) ^ ((index * 0x9E3779B97F4A7C15) & M)
        sm, self.s = seed, []
        for _ in range(4):
            sm = (sm + 0x9E3779B97F4A7C15) & M
            z = sm
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        threshold = ((-n) & M) % n
        while True:
            m = self.next() * n
            if (m & M) >= threshold:
                return m >> 64

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def split(n, validation_fraction, test_fraction, seed=0):
    """(train, validation, test) row indices, as DataLoading splits a training file."""
    nv = math.floor(n * validation_fraction + 0.5)
    nt = math.floor(n * test_fraction + 0.5)
    perm = RNG(seed, "split").permutation(n)
    return sorted(perm[nv + nt:]), sorted(perm[:nv]), sorted(perm[nv:nv + nt])


def split_tail(n, validation_fraction, test_fraction):
    """The same for text (data.text.holdout: tail): the last blocks, validation then test."""
    nv = math.floor(n * validation_fraction + 0.5)
    nt = math.floor(n * test_fraction + 0.5)
    return list(range(n - nv - nt)), list(range(n - nv - nt, n - nt)), list(range(n - nt, n))


assert RNG(0, "split").permutation(10) == [1, 5, 4, 7, 9, 2, 0, 3, 8, 6], "split generator drifted from RingTrain's"
