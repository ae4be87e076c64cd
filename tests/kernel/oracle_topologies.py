"""tests/kernel/oracle_topologies.py — the guests of oracle.py (node memory,
distances, the parameter strings of their differential runs), the
reservation sweeps, the constants every part shares, and say()."""
import re

from numa import arm64_4n, epyc_8n
from oracle_arm64 import ARM64_TOPOLOGIES

KiB, MiB = 1 << 10, 1 << 20
# A trace comment after each epoch: the guest runner dumps the CMA counters
# there (kdiff_runner.c), the host replays the trace up to it with numacma.
CHECKPOINT = "# kdiff-counters"
COUNTERS = ("alloc_pages_success", "alloc_pages_fail", "release_pages_success")
PAGE = 4096
MASK64, MASK32, MASK30, MASK28 = (1 << 64) - 1, (1 << 32) - 1, (1 << 30) - 1, (1 << 28) - 1

# Each topology: node memory (MiB), 1 CPU per node, distances; the parameter
# strings of its differential runs (one boot each) and the number of trace
# operations per run; mask28, mask30: the shares of allocations with a 28-bit
# and a 30-bit mask, drawn for devices of every node (and -1). In the x86-64
# guests (nodes of 256 MiB from address 0) a 28-bit mask reaches node 0 only
# and a 30-bit one the first four nodes: a device on a node above its mask
# gets its pages from the lower zones — ZONE_DMA32, then ZONE_DMA, the first
# 16 MiB of node 0 — and the default area at the top of memory is allocated,
# found above the mask and released (its counters count it). The arm64
# guests' memory starts at 1 GiB, above both masks (their kernel refuses
# them: dma_direct_supported), so they draw none.
TOPOLOGIES = {
    "k2": dict(mem=[256, 256], dist=[[10, 21], [21, 10]], ops=1500, mask28=0.06, mask30=0.04,
               params=["cma=16M cma_pernuma=8M numa_cma=1:12M",
                       "cma=6M cma_pernuma=5M numa_cma=0:3M"]),
    "k4": dict(mem=[256] * 4, dist=arm64_4n(), ops=1500, mask28=0.06, mask30=0.06,
               params=["cma=24M cma_pernuma=6M numa_cma=2:8M,3:4M",
                       "cma_pernuma=10M numa_cma=1:7M"]),
    "k8": dict(mem=[256] * 8, dist=epyc_8n(), ops=1500, mask28=0.06, mask30=0.06,
               params=["cma=32M cma_pernuma=4M numa_cma=5:8M",
                       "cma=9M numa_cma=0:4M,3:6M,7:10M"]),
}
# The a* guests: oracle_arm64.
TOPOLOGIES.update(ARM64_TOPOLOGIES)


def arch_of(topo_name):
    return TOPOLOGIES[topo_name].get("arch", "x86_64")


# Reservation sweep: (topology, parameter string), one boot each.
RESERVE_SWEEP = [
    ("k2", "cma=100K cma_pernuma=3M numa_cma=1:5M"),
    ("k2", "cma=0 cma_pernuma=200M"),
    ("k2", "cma=2G numa_cma=1:4M,1:8M,7:2M"),
    ("k4", "cma=5m cma_pernuma=1k numa_cma=3:7m"),
    ("k4", "cma=300M cma_pernuma=200M numa_cma=0:100M"),
    # node 9: not possible (the kernel warns "invalid node"; numacma reports it)
    ("k4", "cma=1G numa_cma=2:3M,9:4M,1:4M,3:2M"),
    ("k8", "cma=64M cma_pernuma=3M numa_cma=4:1M,4:9M"),
    ("k8", "cma=2G cma_pernuma=250M"),
    ("k8", "cma=1500K numa_cma=0:5M,1:0,8:4M"),
    # What the kernel's parsers let through silently and numacma refuses with a
    # clear error on purpose (docs/params.md, "Where numacma differs from the
    # kernel's parser"): the last of a repeated key wins, memparse and
    # early_numa_cma stop at the first character they do not know, a node at
    # MAX_NUMNODES stops the list. Checked: numacma refuses, and the kernel's
    # areas are printed for the record.
    ("k4", "cma=3M cma=5M numa_cma=0:1G", "refuse"),
    ("k2", "cma_pernuma=0 numa_cma=1:4M;0:2M", "refuse"),
    ("k4", "cma=1G numa_cma=2:3M,9:4M,1:4M,1024:2M,3:2M", "refuse"),
]


# kernel log lines worth showing: reservations and anything that went wrong
KLOG_SHOW = re.compile(r"cma: (Reserved|Failed)|reservation failed|invalid node|Not enough slots|exceeds limit|"
                       r"WARNING|BUG|Oops|Call Trace|panic", re.I)


def say(msg=""):
    print(msg, flush=True)

