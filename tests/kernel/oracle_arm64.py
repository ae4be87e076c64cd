"""tests/kernel/oracle_arm64.py — what is particular to the arm64 oracle
(issue 10): its guests, its reservation sweep, its build's manifest
(build_kernel_arm64.py), the runner's records on the one UART, and the
atomic pools its kernel takes from the default area at boot."""
import json
import os
import re

from numa import arm64_4n

ARM64_TOPOLOGIES = {
    # arm64 (issue 10): Debian's own arm64 kernel (6.1: cma_pernuma=, no
    # numa_cma=) in `-M virt -cpu cortex-a57` guests, memory from 1 GiB up,
    # all below the 4 GiB DMA-zone limit (so a 32-bit mask is GFP_DMA there).
    "a2": dict(arch="arm64", mem=[256, 256], dist=[[10, 21], [21, 10]], ops=1500, mask30=0.0,
               params=["cma=16M cma_pernuma=8M", "cma=6M cma_pernuma=5M"]),
    "a4": dict(arch="arm64", mem=[256] * 4, dist=arm64_4n(), ops=1500, mask30=0.0,
               params=["cma=24M cma_pernuma=6M", "cma=0 cma_pernuma=10M"]),
    # memory up to 5 GiB (node 0: 1-4 GiB, node 1: 4-5 GiB): the default area
    # stays below the 4 GiB DMA-zone limit, on node 0. A 32-bit mask is
    # GFP_DMA on arm64, and node 1 has no ZONE_DMA: its page buffers come from
    # node 0's (A7, dma-direct's zones).
    "a2hi": dict(arch="arm64", mem=[3072, 1024], dist=[[10, 21], [21, 10]], ops=1500, mask30=0.0,
                 params=["cma=32M cma_pernuma=16M"]),
}

# The arm64 sweep (`reserve --arch arm64`): Debian's 6.1 kernel, cma_pernuma=
# only; the default area below its 4 GiB DMA-zone limit.
RESERVE_SWEEP_ARM64 = [
    ("a2", "cma=100K cma_pernuma=3M"),
    ("a2", "cma=300M cma_pernuma=1k"),
    ("a4", "cma=200M cma_pernuma=16M"),
    ("a4", "cma=5m cma_pernuma=1k"),
    ("a2hi", "cma=64M cma_pernuma=32M"),
    ("a2hi", "cma=1G"),
    # Known differences (docs/semantics.md, "Checked against the kernel
    # itself"): the kernel image (about 32 MiB of Debian's), the initrd and the
    # device tree lie in node 0's memory, which numacma does not know, so an
    # area that would fill node 0 fails there in the kernel (and the default
    # area may then find room on node 0 instead). Booted and printed; a
    # divergence here is reported as known, its absence too.
    ("a2", "cma=0 cma_pernuma=200M", "known"),
    ("a4", "cma=5m cma_pernuma=250M", "known"),
]


def load_manifest_arm64(kdir):
    """(manifest of build_kernel_arm64.py, None) or (None, what is missing)."""
    path = os.path.join(kdir, "arm64", "current.json")
    if not os.path.exists(path):
        return None, "%s missing: run tests/kernel/build_kernel_arm64.py (kernel_arm64_build) first" % path
    m = json.load(open(path))
    for k in ("kernel", "module", "runner", "busybox"):
        if not os.path.exists(m[k]):
            return None, "%s missing (rebuild: tests/kernel/build_kernel_arm64.py)" % m[k]
    return m, None


def runner_on_console(init):
    """virt has one UART: the runner writes its records to the console
    (KDIFF_OUT=-), where boot() reads them back."""
    return init.replace("kdiff_runner ", "KDIFF_OUT=- kdiff_runner ")


def atomic_pool_prelude(console, kareas, arch):
    """arm64 (CONFIG_DMA_DIRECT_REMAP): at boot, dma_atomic_pool_init takes
    each atomic pool (GFP_KERNEL, GFP_DMA, GFP_DMA32; 128 KiB per GiB of
    memory, at least 128 KiB) from the default CMA area when the area lies in
    the pool's zone (all of it here: the guests' memory is below 4 GiB), in
    that order, never to give it back. numacma replays them first, as
    allocations of a no-node device that are never freed (their decisions are
    left out of the comparison)."""
    if arch != "arm64" or "reserved" not in kareas:
        return []
    sizes = [int(m.group(1)) for m in re.finditer(r"preallocated (\d+) KiB \S+ pool for atomic allocations",
                                                  console)]
    return ["alloc kernel_atomic_pool%d -1 %dK cpu=0" % (i, kib) for i, kib in enumerate(sizes)]

