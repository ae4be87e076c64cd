"""tests/guest/numa.py — the distance matrices the guests of tests/vm and
tests/kernel share (QEMU's -numa dist, the guest's SLIT)."""


def arm64_4n():
    # The motivating server: 4 nodes, SMMU-like device on node 2.
    return [[10, 12, 20, 22], [12, 10, 22, 24], [20, 22, 10, 12], [22, 24, 12, 10]]


def arm64_seed_4n():
    # The arm64 server per-NUMA CMA was written for (issue 10): node 3 far
    # from 0 and 1, 2 and 3 a close pair.
    return [[10, 16, 32, 33], [16, 10, 38, 39], [32, 38, 10, 24], [33, 39, 24, 10]]


def epyc_8n():
    # Two sockets of four nodes, nodes paired inside a socket: non-uniform.
    def d(i, j):
        if i == j:
            return 10
        if i // 2 == j // 2:
            return 11
        if i // 4 == j // 4:
            return 12
        return 32
    return [[d(i, j) for j in range(8)] for i in range(8)]
