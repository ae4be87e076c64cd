#!/usr/bin/env python3
"""tests/kernel/oracle.py — the real kernel as the oracle: differential tests of
`numacma replay` / `numacma plan` against Linux 6.12's own per-NUMA CMA and
dma_alloc_coherent, run in multi-node QEMU (TCG) guests.

  oracle.py list                          the ctest names (diff_<topo>, reserve)
  oracle.py diff TOPO --cli BIN [--kernel-dir DIR] [--work DIR] [--seed S]
      for each parameter string of the topology: generates a seeded trace,
      boots the guest with those parameters (built by build_kernel.py: a
      minimal kernel, the test module numacma_dma_test.ko, the static runner
      kdiff_runner and busybox in an initramfs written here), runs the trace
      through dma_alloc_coherent in the guest, rebuilds the guest's sysfs tree
      from its dump, runs the same trace through `numacma replay` on that tree
      and compares every decision and the final per-area counters; also
      compares the areas the kernel reserved with `numacma plan`
      --trace FILE [--params P]: the same for a given trace (e.g. a prefix to
      check against the kernel again)
  oracle.py reserve --cli BIN [...]       boots each topology with each string of
      RESERVE_SWEEP (no trace) and compares the areas the kernel reserved
      (name, node, size) with `numacma plan`
      --arch arm64: RESERVE_SWEEP_ARM64 against Debian's arm64 kernel
  The a* topologies boot Debian's own arm64 kernel (6.1, built by
  build_kernel_arm64.py) in qemu-system-aarch64 `virt` guests and compare with
  `numacma replay/plan --arch arm64`; the k* ones the x86-64 6.12 build.
  oracle.py gen TOPO PARAMS [--seed S]    prints a trace (what `diff` would run)
  oracle.py qemu-args TOPO PARAMS         the QEMU command line (to run by hand)

Exit status: 0 no divergence, 1 divergences (each printed with the trace prefix
that reproduces it), 2 the harness could not run (no kernel build, a guest that
did not finish, numacma could not be run at all).

What is compared, per decision (allocs and frees, in trace order):
  success; the area (the kernel's: the CMA area whose [base_pfn, base_pfn+count)
  holds the DMA address, else "pages"); the offset of the buffer inside its
  area; the node of the buffer (page_to_nid in the kernel, the decision's node
  in numacma); at the end, per area, the counters alloc_pages_success,
  alloc_pages_fail, release_pages_success (deltas over the trace), used and
  maxchunk. The traces are made of epochs that end with every buffer freed, so
  the prefix that reproduces a divergence starts at its epoch's first line
  (CMA bitmaps are empty there on both sides).
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
sys.dont_write_bytecode = True  # leave no __pycache__ in tests/vm
import vm  # noqa: E402  (distance matrices, initramfs writer)

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
    "k4": dict(mem=[256] * 4, dist=vm.arm64_4n(), ops=1500, mask28=0.06, mask30=0.06,
               params=["cma=24M cma_pernuma=6M numa_cma=2:8M,3:4M",
                       "cma_pernuma=10M numa_cma=1:7M"]),
    "k8": dict(mem=[256] * 8, dist=vm.epyc_8n(), ops=1500, mask28=0.06, mask30=0.06,
               params=["cma=32M cma_pernuma=4M numa_cma=5:8M",
                       "cma=9M numa_cma=0:4M,3:6M,7:10M"]),
    # arm64 (issue 10): Debian's own arm64 kernel (6.1: cma_pernuma=, no
    # numa_cma=) in `-M virt -cpu cortex-a57` guests, memory from 1 GiB up,
    # all below the 4 GiB DMA-zone limit (so a 32-bit mask is GFP_DMA there).
    "a2": dict(arch="arm64", mem=[256, 256], dist=[[10, 21], [21, 10]], ops=1500, mask30=0.0,
               params=["cma=16M cma_pernuma=8M", "cma=6M cma_pernuma=5M"]),
    "a4": dict(arch="arm64", mem=[256] * 4, dist=vm.arm64_4n(), ops=1500, mask30=0.0,
               params=["cma=24M cma_pernuma=6M", "cma=0 cma_pernuma=10M"]),
    # memory up to 5 GiB (node 0: 1-4 GiB, node 1: 4-5 GiB): the default area
    # stays below the 4 GiB DMA-zone limit, on node 0. A 32-bit mask is
    # GFP_DMA on arm64, and node 1 has no ZONE_DMA: its page buffers come from
    # node 0's (A7, dma-direct's zones).
    "a2hi": dict(arch="arm64", mem=[3072, 1024], dist=[[10, 21], [21, 10]], ops=1500, mask30=0.0,
                 params=["cma=32M cma_pernuma=16M"]),
}


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


# kernel log lines worth showing: reservations and anything that went wrong
KLOG_SHOW = re.compile(r"cma: (Reserved|Failed)|reservation failed|invalid node|Not enough slots|exceeds limit|"
                       r"WARNING|BUG|Oops|Call Trace|panic", re.I)


def say(msg=""):
    print(msg, flush=True)


# ---- parameters ------------------------------------------------------------------

def memparse(s):
    m = re.match(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([KkMmGgTtPpEe]?)", s)
    if not m:
        return 0, s
    v = int(m.group(1), 0)
    v <<= {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}[m.group(2).lower()]
    return v, s[m.end():]


def area_sizes(params, nodes):
    """Rough sizes (bytes) of the areas the parameters ask for: what the trace
    generator sizes its requests by (the comparison reads the real ones)."""
    sizes = []
    for tok in params.split():
        k, _, v = tok.partition("=")
        if k in ("cma", "cma_pernuma"):
            size, _ = memparse(v)
            if size:
                sizes.append(size)
        elif k == "numa_cma":
            for part in v.split(","):
                n, _, sz = part.partition(":")
                size, _ = memparse(sz)
                if n.isdigit() and int(n) < nodes and size:
                    sizes.append(size)
    return sizes or [4 * MiB]


# ---- trace generation ------------------------------------------------------------

def fmt_size(b):
    if b % MiB == 0:
        return "%dM" % (b // MiB)
    if b % KiB == 0 and random.random() < 0.7:
        return "%dK" % (b // KiB)
    return str(b)


def gen_trace(topo_name, params, seed, ops=None, mask30=None, mask32=None, mask28=None):
    """[(line text, epoch start index)] — seeded; every epoch ends with all of
    its buffers freed, in random order, then a CHECKPOINT line."""
    t = dict(TOPOLOGIES[topo_name])
    if mask28 is not None:
        t["mask28"] = mask28
    if mask30 is not None:
        t["mask30"] = mask30
    if mask32 is not None:
        t["mask32"] = mask32
    n = len(t["mem"])
    ops = ops or t["ops"]
    rng = random.Random("%s|%s|%d" % (topo_name, params, seed))
    random.seed(rng.random())  # fmt_size
    sizes = area_sizes(params, n)
    big, small = max(sizes), min(sizes)
    lines, qn = [], [0]

    def size_of(kind):
        if kind == "page":
            return rng.choice([1, 100, 2048, 4000, 4096])
        if kind == "small":
            return rng.choice([4097, 8192, 12345, 16384, 32768, 40000, 65536])
        if kind == "medium":
            return rng.randrange(16, 257) * PAGE - rng.choice([0, 0, 0, 1, 100])
        if kind == "large":
            return max(2 * PAGE, rng.randrange(256 * PAGE, max(257 * PAGE, big // 2 + 1), PAGE))
        if kind == "near":
            a = rng.choice(sizes)
            return max(2 * PAGE, a + rng.choice([-2, -1, 0, 0, 1, 2]) * PAGE)
        # beyond any area; sometimes within the page allocator's 4 MiB
        return rng.choice([big + PAGE, 2 * big, big + 4 * MiB, 3 * MiB, 4 * MiB, 4 * MiB + PAGE])

    def alloc(node=None, kind=None):
        q = "q%d" % qn[0]
        qn[0] += 1
        if node is None:
            node = -1 if rng.random() < 0.15 else rng.randrange(n)
        if kind is None:
            kind = rng.choices(["page", "small", "medium", "large", "near", "beyond"],
                               [12, 28, 30, 18, 7, 5])[0]
        size = size_of(kind)
        # cumulative shares: 28 bits, then 30, then 32 up to mask32 (which
        # includes the lower ones), then 64 bits, then none (all ones)
        r = rng.random()
        m28 = t.get("mask28", 0.0)
        if r < m28:
            mask = " dma_mask=0x%x" % MASK28
        elif r < m28 + t.get("mask30", 0.0):
            mask = " dma_mask=0x%x" % MASK30
        elif r < t.get("mask32", 0.27):
            mask = " dma_mask=0x%x" % MASK32
        elif r < 0.55:
            mask = " dma_mask=0x%x" % MASK64
        else:
            mask = ""
        cpu = rng.randrange(n)
        return q, size, "alloc %s %d %s%s cpu=%d" % (q, node, fmt_size(size), mask, cpu)

    while sum(1 for x, _ in lines if not x.startswith("#")) < ops:
        start = len(lines)
        live = {}  # id -> bytes
        style = rng.choices(["random", "exhaust", "fragment"], [6, 2, 2])[0]
        if style == "random":
            for _ in range(rng.randrange(20, 150)):
                if live and (len(live) >= 40 or sum(live.values()) > 96 * MiB or rng.random() < 0.38):
                    q = rng.choice(sorted(live))
                    del live[q]
                    lines.append(("free %s" % q, start))
                else:
                    q, size, text = alloc()
                    live[q] = size
                    lines.append((text, start))
        elif style == "exhaust":
            # one node until well past its areas: failures and fallbacks
            node = rng.choice([-1] + list(range(n)))
            total = 0
            while total < 1.5 * big + 8 * MiB and len(live) < 48:
                q, size, text = alloc(node, rng.choice(["medium", "large", "large", "near"]))
                live[q] = size
                total += size
                lines.append((text, start))
        else:
            # many small buffers, every other one freed, then larger requests
            node = rng.randrange(n)
            for _ in range(rng.randrange(12, 40)):
                q, size, text = alloc(node, rng.choice(["small", "medium"]))
                live[q] = size
                lines.append((text, start))
            for q in sorted(live, key=lambda s: int(s[1:]))[::2]:
                del live[q]
                lines.append(("free %s" % q, start))
            for _ in range(rng.randrange(4, 12)):
                q, size, text = alloc(node, rng.choice(["medium", "large", "near"]))
                live[q] = size
                lines.append((text, start))
        rest = sorted(live)
        rng.shuffle(rest)
        for q in rest:
            lines.append(("free %s" % q, start))
        lines.append((CHECKPOINT, start))
    return lines


# ---- guests ----------------------------------------------------------------------

def load_manifest(kdir, arch="x86_64"):
    if arch == "arm64":
        path = os.path.join(kdir, "arm64", "current.json")
        if not os.path.exists(path):
            return None, "%s missing: run tests/kernel/build_kernel_arm64.py (kernel_arm64_build) first" % path
        m = json.load(open(path))
        for k in ("kernel", "module", "runner", "busybox"):
            if not os.path.exists(m[k]):
                return None, "%s missing (rebuild: tests/kernel/build_kernel_arm64.py)" % m[k]
        return m, None
    path = os.path.join(kdir, "current.json")
    if not os.path.exists(path):
        return None, "%s missing: run tests/kernel/build_kernel.py (the kernel_build test) first" % path
    m = json.load(open(path))
    for k in ("bzImage", "module", "runner"):
        if not os.path.exists(m[k]):
            return None, "%s missing (rebuild: tests/kernel/build_kernel.py)" % m[k]
    return m, None


def qemu_args(topo_name, params, kernel, initrd, console, data):
    t = TOPOLOGIES[topo_name]
    n = len(t["mem"])
    if arch_of(topo_name) == "arm64":
        # one UART on virt: the runner's data goes to the console too
        a = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg",
             "-m", "%dM" % sum(t["mem"]), "-smp", str(n), "-display", "none", "-nic", "none",
             "-no-reboot", "-monitor", "none", "-serial", "file:" + console]
        console_dev = "ttyAMA0"
    else:
        a = ["qemu-system-x86_64", "-accel", "tcg", "-m", "%dM" % sum(t["mem"]), "-smp", str(n),
             "-display", "none", "-vga", "none", "-nic", "none", "-no-reboot", "-monitor", "none",
             "-serial", "file:" + console, "-serial", "file:" + data]
        console_dev = "ttyS0"
    for i in range(n):
        a += ["-object", "memory-backend-ram,id=m%d,size=%dM" % (i, t["mem"][i]),
              "-numa", "node,nodeid=%d,cpus=%d,memdev=m%d" % (i, i, i)]
    for i in range(n):
        for j in range(i + 1, n):
            a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (i, j, t["dist"][i][j])]
            if t["dist"][j][i] != t["dist"][i][j]:
                a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (j, i, t["dist"][j][i])]
    a += ["-kernel", kernel, "-initrd", initrd,
          "-append", "console=%s loglevel=3 panic=-1 %s" % (console_dev, params)]
    return a


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
echo KDIFF-START
insmod /numacma_dma_test.ko || echo KDIFF-INSMOD-FAILED
kdiff_runner dump || echo KDIFF-DUMP-FAILED
if [ -f /trace ]; then kdiff_runner run /trace || echo KDIFF-RUN-FAILED; fi
dmesg | grep -i -e cma -e numa -e srat -e "node " -e warn -e bug -e oops -e "call trace" -e "atomic allocations" | sed 's/^/KLOG /'
echo KDIFF-DONE
poweroff -f
"""


def boot(topo_name, params, manifest, wdir, trace_text=None, timeout=240):
    """Boots one guest; returns (records, console, wall seconds, error)."""
    shutil.rmtree(wdir, ignore_errors=True)
    os.makedirs(wdir)
    rd = lambda p: open(p, "rb").read()
    arm64 = arch_of(topo_name) == "arm64"
    # arm64: the runner writes its records to the console (KDIFF_OUT=-)
    init = INIT.replace("kdiff_runner ", "KDIFF_OUT=- kdiff_runner ") if arm64 else INIT
    entries = [("bin", 0o40755, None), ("proc", 0o40755, None), ("sys", 0o40755, None),
               ("dev", 0o40755, None), ("tmp", 0o41777, None),
               ("init", 0o100755, init.encode()),
               ("bin/busybox", 0o100755, rd(manifest.get("busybox", "/bin/busybox"))),
               ("bin/kdiff_runner", 0o100755, rd(manifest["runner"])),
               ("numacma_dma_test.ko", 0o100644, rd(manifest["module"]))]
    if trace_text is not None:
        entries.append(("trace", 0o100644, trace_text.encode()))
    initrd = os.path.join(wdir, "initramfs.cpio")
    vm.cpio_newc(entries, initrd)
    console, data = os.path.join(wdir, "console.log"), os.path.join(wdir, "data.jsonl")
    cmd = qemu_args(topo_name, params, manifest["kernel"] if arm64 else manifest["bzImage"], initrd, console,
                    data)
    with open(os.path.join(wdir, "qemu.cmd"), "w") as f:
        f.write(" ".join("'%s'" % c if " " in c else c for c in cmd) + "\n")
    t0 = time.monotonic()
    err = None
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        if p.returncode != 0:
            err = "qemu exited %d: %s" % (p.returncode, p.stdout.decode(errors="replace")[-500:])
    except subprocess.TimeoutExpired:
        err = "guest did not finish in %d s" % timeout
    wall = time.monotonic() - t0
    text = open(console, errors="replace").read() if os.path.exists(console) else ""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r", "", text)
    records = []
    if arm64:
        lines = text.splitlines()
    else:
        lines = open(data, errors="replace").read().splitlines() if os.path.exists(data) else []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    if not err:
        for marker in ("KDIFF-INSMOD-FAILED", "KDIFF-DUMP-FAILED", "KDIFF-RUN-FAILED"):
            if marker in text:
                err = "guest: %s" % marker
        if "KDIFF-DONE" not in text:
            err = "guest never reached KDIFF-DONE"
        if trace_text is not None and not any(r.get("t") == "done" for r in records):
            err = err or "the runner did not finish the trace"
    return records, text, wall, err


def show_klog(console):
    for line in console.splitlines():
        if line.startswith("KLOG") and KLOG_SHOW.search(line):
            say("  " + line)


def build_sysfs(records, tree):
    """The guest's own sysfs (what it dumped) as a tree for --sysfs-root."""
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    for r in records:
        if r.get("t") not in ("file", "link") or not r["path"].startswith("/sys/"):
            continue
        dst = os.path.join(tree, r["path"][len("/sys/"):])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if r["t"] == "file":
            with open(dst, "wb") as f:
                f.write(bytes.fromhex(r["hex"]))
        else:
            os.symlink(r["target"], dst)
            target = os.path.normpath(os.path.join(os.path.dirname(dst), r["target"]))
            os.makedirs(target, exist_ok=True)


def kernel_areas(records, phase):
    return {r["name"]: r for r in records if r.get("t") == "cma" and r["phase"] == phase}


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


# ---- numacma ---------------------------------------------------------------------

class Cli:
    """The numacma binary and what it supports (probed once)."""

    def __init__(self, path, tree, arch="x86_64"):
        self.path = path
        self.arch = arch
        self.prelude = []  # trace lines replayed before every trace (atomic_pool_prelude)
        self.gaps = []
        rh = self.run(["replay", "--help"]).stdout
        ph = self.run(["plan", "--help"]).stdout
        self.replay_arch = "--arch" in rh
        self.plan_arch = "--arch" in ph
        if not self.replay_arch:
            self.gaps.append("numacma replay has no --arch (x86_64 placement not selectable): ran without it")
        if not self.plan_arch:
            self.gaps.append("numacma plan has no --arch: ran without it")
        p = self.run(["replay", "--json", "--backing", "sim", "--sysfs-root", tree, "--params", "cma=4M", "-"],
                     stdin="alloc probe 0 8K cpu=0\n")
        first = p.stdout.splitlines()[0] if p.stdout.strip() else "{}"
        try:
            obj = json.loads(first)
        except ValueError:
            obj = {}
        self.cpu_ok = obj.get("op") == "alloc"
        if not self.cpu_ok:
            self.gaps.append("numacma replay does not accept cpu=<N> in trace alloc lines (%s): ran with cpu= "
                             "stripped, so node -1 single-page buffers use numacma's own idea of the CPU" %
                             (obj.get("error") or p.stderr.strip() or "exit %d" % p.returncode)[:160])

    def run(self, args, stdin=None):
        return subprocess.run([self.path] + args, input=stdin, capture_output=True, text=True)

    def replay(self, tree, params, trace_path):
        args = ["replay", "--json", "--backing", "sim", "--policy", "kernel"]
        if self.replay_arch:
            args += ["--arch", self.arch]
        args += ["--sysfs-root", tree, "--params", params, trace_path]
        if not self.prelude:
            return args, self.run(args)
        # the prelude's decisions are dropped: what follows lines up with the trace
        text = "\n".join(self.prelude) + "\n" + open(trace_path).read()
        if not self.cpu_ok:
            text = re.sub(r" cpu=\d+", "", text)
        p = self.run(args[:-1] + ["-"], stdin=text)
        out, skip = [], len(self.prelude)
        for line in p.stdout.splitlines():
            if skip and line.startswith("{") and json.loads(line).get("op") in ("alloc", "free", "error"):
                skip -= 1
                continue
            out.append(line)
        p.stdout = "\n".join(out) + "\n"
        return args, p

    def plan(self, tree, params):
        args = ["plan", "--json"]
        if self.plan_arch:
            args += ["--arch", self.arch]
        args += ["--sysfs-root", tree, params]
        return args, self.run(args)


# ---- comparison ------------------------------------------------------------------

def area_kind(name):
    return re.sub(r"\d+$", "", name) if name else name


def kernel_area_of(areas, dma):
    pfn = dma // PAGE
    for a in areas.values():
        if a["base_pfn"] <= pfn < a["base_pfn"] + a["count"]:
            return a
    return None


class Divergences:
    def __init__(self):
        self.items = []  # dicts: cause, detail, line (1-based) or None, prefix lines

    def add(self, cause, detail, line=None, prefix=None):
        self.items.append(dict(cause=cause, detail=detail, line=line, prefix=prefix))

    def report(self, outdir, label, repro_header, minimal=None):
        """minimal: {cause: (lines, detail)}, prefixes confirmed by a second boot."""
        if not self.items:
            return
        minimal = minimal or {}
        by = {}
        for d in self.items:
            by.setdefault(d["cause"], []).append(d)
        say("  %d divergence(s) in %d cause(s):" % (len(self.items), len(by)))
        for cause, ds in sorted(by.items(), key=lambda kv: (kv[0].startswith("follow-on"), -len(kv[1]))):
            first = ds[0]
            say("  - [%d x] %s" % (len(ds), cause))
            say("      first: %s" % first["detail"])
            if first["prefix"] is None:
                continue
            name = re.sub(r"[^A-Za-z0-9]+", "_", cause).strip("_")[:60]
            path = os.path.join(outdir, "divergence_%s_%s.trace" % (label, name))
            with open(path, "w") as f:
                f.write(repro_header)
                f.write("# diverges at the last line: %s\n" % first["detail"])
                f.write("\n".join(first["prefix"]) + "\n")
            if cause in minimal and len(minimal[cause][0]) < len(first["prefix"]):
                lines, detail = minimal[cause]
                mpath = path[:-len(".trace")] + ".min.trace"
                with open(mpath, "w") as f:
                    f.write(repro_header)
                    f.write("# diverges at the last line (confirmed in a second boot): %s\n" % detail)
                    f.write("\n".join(lines) + "\n")
                say("      minimal trace prefix (%d line(s), the same divergence confirmed in a second boot: %s;"
                    % (len(lines), detail))
                say("      the epoch's full prefix, %d line(s): %s):" % (len(first["prefix"]), path))
                shown = lines
            else:
                say("      trace prefix that reproduces it (%d line(s), from its epoch's start; also %s):"
                    % (len(first["prefix"]), path))
                shown = first["prefix"]
            if len(shown) > 80:
                say("        ... %d earlier line(s) in the file ..." % (len(shown) - 60))
                shown = shown[-60:]
            for ln in shown:
                say("        " + ln)


def compare_plan(kareas, plan_obj, params, div, where):
    """Areas the kernel reserved vs `numacma plan`."""
    k = {}
    for a in kareas.values():
        node = a["node_first"] if a["node_first"] == a["node_last"] else "%d..%d" % (a["node_first"], a["node_last"])
        k[a["name"]] = (node, a["count"] * PAGE)
    n = {a["name"]: (a["node"], a["bytes"]) for a in plan_obj.get("areas", [])}
    notes = {a["name"]: a.get("reason", "") for a in plan_obj.get("not_placed", [])}
    compared = 0
    for name in sorted(set(k) | set(n)):
        compared += 1
        if name not in n:
            div.add("plan: kernel reserved an area numacma does not",
                    "%s: kernel %s on node %s, %d bytes; numacma: %s (params %r)" % (
                        where, name, k[name][0], k[name][1],
                        "not placed: " + notes[name] if name in notes else "no such area", params))
        elif name not in k:
            div.add("plan: numacma reserves an area the kernel did not",
                    "%s: numacma %s on node %d, %d bytes; kernel: none (params %r)" % (
                        where, name, n[name][0], n[name][1], params))
        else:
            if k[name][1] != n[name][1]:
                div.add("plan: area size",
                        "%s: %s kernel %d bytes, numacma %d bytes (params %r)" % (
                            where, name, k[name][1], n[name][1], params))
            if k[name][0] != n[name][0]:
                div.add("plan: area node (%s)" % area_kind(name),
                        "%s: %s kernel node %s, numacma node %s (params %r)" % (
                            where, name, k[name][0], n[name][0], params))
    return compared


def judge(k, nd, kareas, nbase, kname_of_free=None):
    """One decision: the kernel's record k and numacma's object nd. Returns
    None when they agree, else (cause, detail, state, alone): state, the two
    sides are left in different states (what follows in the epoch may diverge
    because of it; a node-only divergence does not); alone, the line reproduces
    it by itself (the node of an area does not depend on what came before).
    For an alloc, also returns the kernel's area name ("pages"; None: failed)."""
    if k["t"] == "alloc":
        ka = kernel_area_of(kareas, int(k["dma"], 16)) if k["ok"] else None
        kname = (ka["name"] if ka else "pages") if k["ok"] else None
        nok = nd.get("ok") is True and nd.get("op") == "alloc"
        kdesc = ("ok %s node %d dma %s" % (kname, k["nid"], k["dma"])) if k["ok"] else "FAILED"
        ndesc = ("ok %s node %s dma %s" % (nd.get("area"), nd.get("node"), nd.get("dma_addr"))) if nok else \
            "FAILED %s" % (nd.get("code") or nd.get("error"))
        both = "kernel %s; numacma %s" % (kdesc, ndesc)
        if k["ok"] != nok:
            if k["ok"]:
                return ("alloc: kernel succeeds (%s), numacma fails (%s)" % (area_kind(kname), nd.get("code")),
                        both, True, False), kname
            return ("alloc: kernel fails, numacma succeeds (%s)" % area_kind(nd.get("area")), both, True, False), kname
        if not k["ok"]:
            return None, kname
        if kname != nd.get("area"):
            return ("alloc: area kernel=%s numacma=%s" % (area_kind(kname), area_kind(nd.get("area"))),
                    both, True, False), kname
        if kname != "pages":
            koff = int(k["dma"], 16) - ka["base_pfn"] * PAGE
            noff = int(nd["dma_addr"], 16) - nbase.get(kname, 0)
            if koff != noff:
                return ("alloc: offset inside %s" % area_kind(kname),
                        "%s (offset kernel 0x%x, numacma 0x%x)" % (both, koff, noff), True, False), kname
        if k["nid"] != nd.get("node"):
            return ("alloc: node of a %s buffer" % area_kind(kname), both, False, kname != "pages"), kname
        if k["pages"] != nd.get("pages"):
            return ("alloc: pages", "%s (pages kernel %d, numacma %s)" % (both, k["pages"], nd.get("pages")),
                    True, False), kname
        return None, kname
    kname = kname_of_free
    if kname is None:
        # the kernel never allocated it: its free is a no-op here, numacma must refuse it
        if nd.get("ok"):
            return ("free: numacma frees a buffer the kernel never had", "numacma %s" % nd, True, False), None
        return None, None
    if not nd.get("ok"):
        return ("free: numacma refuses the free of a live buffer",
                "kernel freed from %s; numacma %s" % (kname, nd.get("error")), True, False), None
    if nd.get("area") != kname:
        return ("free: area", "kernel %s, numacma %s" % (kname, nd.get("area")), True, False), None
    return None, None


def compare_run(trace_lines, krec, ndec, nstats, karea_after, karea_before, div):
    """Every decision, then the counters at the end. Returns (decisions
    compared, the first divergence of each cause that has a prefix to shorten:
    [dict(cause, kind="decision", i=line index, kbuf=kernel area of each id)])."""
    kd = {r["line"]: r for r in krec if r.get("t") in ("alloc", "free")}
    kerr = {r["line"]: r for r in krec if r.get("t") == "error"}
    nbase = {a["name"]: int(a["base_dma"], 16) for a in nstats.get("areas", [])}
    kbuf = {}  # id -> kernel area name (or pages / None)
    compared = 0
    firsts = {}
    diverged = set()  # epochs whose state (bitmaps, live buffers) differs between the two
    j = -1  # index into numacma's decisions (one per line that is not a comment)
    for i, (text, start) in enumerate(trace_lines):
        ln = i + 1
        if text.startswith("#"):
            continue
        j += 1

        def add(cause, detail, state=True, alone=False):
            if start in diverged:
                div.add("follow-on (after a divergence that changed the state, same epoch)",
                        "line %d %r: %s" % (ln, text, detail), ln, None)
                return
            prefix = [text] if alone else epoch_prefix(trace_lines, i)
            div.add(cause, "line %d %r: %s" % (ln, text, detail), ln, prefix)
            if cause not in firsts and not alone:
                firsts[cause] = dict(cause=cause, kind="decision", i=i, kbuf=dict(kbuf))
            if state:
                diverged.add(start)

        if ln in kerr:
            add("kernel side refused the line", kerr[ln]["msg"])
            continue
        k = kd.get(ln)
        nd = ndec[j] if j < len(ndec) else None
        if k is None or nd is None:
            add("missing decision", "kernel %s, numacma %s" % (k, nd))
            continue
        compared += 1
        verdict, kname = judge(k, nd, karea_after, nbase, kbuf.get(k["id"]))
        if k["t"] == "alloc":
            kbuf[k["id"]] = kname
        if verdict:
            add(*verdict)
    # used / maxchunk at the end (the per-epoch counters are compare_counters')
    nareas = {a["name"]: a for a in nstats.get("areas", [])}
    for name in sorted(set(karea_after) & set(nareas)):
        for c in ("used", "maxchunk"):
            if karea_after[name][c] < 0:  # not known (no CMA debugfs)
                continue
            if karea_after[name][c] != nareas[name].get(c):
                div.add("counters: %s at the end" % c, "%s: kernel %d, numacma %s" % (
                    name, karea_after[name][c], nareas[name].get(c)))
    return compared, list(firsts.values())


def epoch_prefix(trace_lines, i):
    """The lines of i's epoch up to i, comments left out."""
    start = trace_lines[i][1]
    return [t for t, _ in trace_lines[start:i + 1] if not t.startswith("#")]


def replay_counters(cli, tree, params, lines, path):
    """numacma's per-area counters after replaying lines on a fresh pool."""
    text = "\n".join(lines) + "\n"
    open(path, "w").write(text if cli.cpu_ok else re.sub(r" cpu=\d+", "", text))
    _, rp = cli.replay(tree, params, path)
    for x in rp.stdout.splitlines():
        if x.startswith("{") and '"op":"stats"' in x.replace(" ", ""):
            return {a["name"]: a for a in json.loads(x).get("areas", [])}
    return None


def compare_counters(trace_lines, records, cli, tree, params, wdir, div):
    """The CMA counters epoch by epoch: the kernel's at each CHECKPOINT (deltas
    over the epoch) against numacma's after replaying the trace up to there.
    Returns the first divergence of each cause: [dict(cause, kind="counters",
    area, counter, lines=the epoch's lines)]."""
    kcp = {"before": kernel_areas(records, "before")}
    order = ["before"]
    for r in records:
        if r.get("t") == "cma" and r["phase"].startswith("at:") and r["phase"] not in kcp:
            kcp[r["phase"]] = kernel_areas(records, r["phase"])
            order.append(r["phase"])
    firsts, prev_n = {}, {}
    checked = 0
    for ph_prev, ph in zip(order, order[1:]):
        ln = int(ph[3:])
        start = trace_lines[ln - 1][1]
        ncur = replay_counters(cli, tree, params, [t for t, _ in trace_lines[:ln] if not t.startswith("#")],
                               os.path.join(wdir, "upto.trace"))
        if ncur is None:
            div.add("counters: numacma could not replay a prefix", "up to line %d" % ln)
            return checked, list(firsts.values())
        epoch = [t for t, _ in trace_lines[start:ln] if not t.startswith("#")]
        for name in sorted(set(kcp[ph]) & set(ncur)):
            for c in COUNTERS:
                if kcp[ph][name][c] < 0:  # not known (no CMA sysfs)
                    continue
                kv = kcp[ph][name][c] - kcp[ph_prev].get(name, {}).get(c, 0)
                nv = ncur[name].get(c, 0) - prev_n.get(name, {}).get(c, 0)
                checked += 1
                if kv != nv:
                    cause = "counters: %s of %s" % (c, area_kind(name))
                    div.add(cause, "%s over the epoch of lines %d-%d: kernel %d, numacma %d" % (
                        name, start + 1, ln, kv, nv), ln, epoch)
                    firsts.setdefault(cause, dict(cause=cause, kind="counters", area=name, counter=c, lines=epoch))
        prev_n = ncur
    return checked, list(firsts.values())


# ---- minimising a divergence's prefix ----------------------------------------------

def parse_line(text):
    t = text.split()
    return t[0], t[1]


def candidates(first, trace_lines, ndec_by_line):
    """Shorter traces that may show the same divergence. A decision's: the line
    alone; the buffers still live at the line that the kernel or numacma put
    in the areas the line involves, then the line; every buffer still live,
    then the line; the epoch's prefix (known to reproduce it). A counter's:
    each alloc of the epoch alone (the first 150), the epoch cut after 1/8, 2/8,
    ... of its lines, then the whole epoch."""
    if first["kind"] == "counters":
        singles = [[t] for t in first["lines"] if t.startswith("alloc")][:150]
        ep = first["lines"]
        cuts = sorted({max(1, len(ep) * k // 8) for k in range(1, 8)})
        return singles + [ep[:c] for c in cuts] + [ep]
    i, kbuf = first["i"], first["kbuf"]
    prefix = epoch_prefix(trace_lines, i)
    op, qid = parse_line(prefix[-1])
    live = {}
    for t in prefix[:-1]:
        o, q = parse_line(t)
        if o == "alloc":
            live[q] = t
        else:
            live.pop(q, None)
    last = [prefix[-1]] if op == "alloc" else [live.pop(qid, None) or "", prefix[-1]]
    nd_by_id = {}
    for t in prefix:
        o, q = parse_line(t)
        nd = ndec_by_line.get(t)
        if o == "alloc" and nd:
            nd_by_id[q] = nd.get("area")
    involved = {kbuf.get(qid), nd_by_id.get(qid)} - {None}
    if op == "free" or not involved:
        involved |= {kbuf.get(q) for q in live} | {nd_by_id.get(q) for q in live}
    related = [t for q, t in live.items() if kbuf.get(q) in involved or nd_by_id.get(q) in involved]
    out = []
    cands = ([] if op == "free" else [last]) + [related + last, list(live.values()) + last, prefix]
    for c in cands:
        if c and "" not in c and c not in out:
            out.append(c)
    return out


def rename(lines, tag):
    out, live = [], []
    for t in lines:
        parts = t.split()
        parts[1] = "%s_%s" % (tag, parts[1])
        out.append(" ".join(parts))
        if parts[0] == "alloc":
            live.append(parts[1])
        elif parts[1] in live:
            live.remove(parts[1])
    return out, ["free %s" % q for q in live]


def unrename(lines):
    return [re.sub(r"^(alloc|free) m\d+_\d+_", r"\1 ", t) for t in lines]


def minimise(firsts, trace_lines, ndec_by_line, topo_name, params, manifest, wdir, cli, tree, timeout):
    """One more boot runs the candidates of every first divergence one after
    the other (each followed by the frees of its buffers and a CHECKPOINT);
    numacma replays each on a fresh pool. Returns {cause: (the shortest
    candidate that shows the same cause, what was seen)}; {} when the boot
    failed."""
    runs, order, combined = {}, {}, []
    for first in firsts:
        keys = []
        for cand in candidates(first, trace_lines, ndec_by_line):
            key = tuple(cand)
            if key not in runs:
                lines, frees = rename(cand, "m%d_0" % len(runs))
                cp_before = "at:%d" % len(combined) if combined else "before"
                combined += lines
                last_ln = len(combined)
                combined += frees + [CHECKPOINT]
                runs[key] = (lines, frees, last_ln, len(combined), cp_before)
            keys.append(key)
        order[first["cause"]] = (first, keys)
    if not runs:
        return {}
    os.makedirs(wdir, exist_ok=True)
    records, console, wall, err = boot(topo_name, params, manifest, wdir, "\n".join(combined) + "\n", timeout)
    say("  minimising: %d candidate trace(s) for %d cause(s), %d lines, one more guest: %.1f s%s" % (
        len(runs), len(firsts), len(combined), wall, "" if not err else ", ERROR: " + err))
    if err:
        return {}
    kareas = kernel_areas(records, "after")
    kd = {r["line"]: r for r in records if r.get("t") in ("alloc", "free")}
    path = os.path.join(wdir, "candidate.trace")
    ncache = {}

    def numacma(key, with_frees):
        if (key, with_frees) not in ncache:
            lines, frees = runs[key][0], runs[key][1]
            text = "\n".join(lines + (frees if with_frees else [])) + "\n"
            open(path, "w").write(text if cli.cpu_ok else re.sub(r" cpu=\d+", "", text))
            _, rp = cli.replay(tree, params, path)
            ncache[(key, with_frees)] = [json.loads(x) for x in rp.stdout.splitlines() if x.startswith("{")]
        return ncache[(key, with_frees)]

    best = {}
    for cause, (first, keys) in order.items():
        for key in keys:
            lines, frees, last_ln, cp_ln, cp_before = runs[key]
            if first["kind"] == "counters":
                stats = [o for o in numacma(key, True) if o.get("op") == "stats"]
                k0, k1 = kernel_areas(records, cp_before), kernel_areas(records, "at:%d" % cp_ln)
                a, c = first["area"], first["counter"]
                if not stats or a not in k1:
                    continue
                nst = {x["name"]: x for x in stats[0].get("areas", [])}
                if a not in nst:
                    continue
                kv, nv = k1[a][c] - k0.get(a, {}).get(c, 0), nst[a].get(c, 0)
                if kv != nv:
                    best[cause] = (unrename(lines), "%s of %s: kernel %d, numacma %d" % (c, a, kv, nv))
                    break
                continue
            out = numacma(key, False)
            dec = [o for o in out if o.get("op") in ("alloc", "free", "error")]
            stats = [o for o in out if o.get("op") == "stats"]
            k = kd.get(last_ln)
            if not stats or len(dec) != len(lines) or k is None:
                continue
            nbase = {x["name"]: int(x["base_dma"], 16) for x in stats[0].get("areas", [])}
            kname_of_free = None
            if k["t"] == "free":
                qid = lines[-1].split()[1]
                j = [n for n, t in enumerate(lines) if t.startswith("alloc") and t.split()[1] == qid][0]
                al = kd.get(last_ln - len(lines) + 1 + j)
                if al and al["ok"]:
                    ka = kernel_area_of(kareas, int(al["dma"], 16))
                    kname_of_free = ka["name"] if ka else "pages"
            verdict, _ = judge(k, dec[-1], kareas, nbase, kname_of_free)
            if verdict and verdict[0] == cause:
                best[cause] = (unrename(lines), verdict[1])
                break
    return best


# ---- commands --------------------------------------------------------------------

def prepare(args, arch="x86_64"):
    m, err = load_manifest(args.kernel_dir, arch)
    if err:
        say("oracle: " + err)
        return None
    qemu = "qemu-system-aarch64" if arch == "arm64" else "qemu-system-x86_64"
    if not shutil.which(qemu):
        say("oracle: %s missing (scripts/deps.sh test)" % qemu)
        return None
    if not os.access(args.cli, os.X_OK):
        say("oracle: numacma CLI %s not found" % args.cli)
        return None
    say("oracle: kernel %s (%s), module %s, runner %s" % (m["kernel_release"], m.get("kernel", m.get("bzImage")),
                                                         m["module"], m["runner"]))
    return m


def run_diff(args):
    arch = arch_of(args.topology)
    m = prepare(args, arch)
    if not m:
        return 2
    t = TOPOLOGIES[args.topology]
    work = os.path.join(args.work, "diff_" + args.topology)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    total_decisions, total_counters, total_div, harness_err = 0, 0, 0, False
    cli = None
    t_all = time.monotonic()
    plist = [args.params] if args.params else t["params"]
    for pi, params in enumerate(plist):
        label = "%s_p%d" % (args.topology, pi)
        wdir = os.path.join(work, "p%d" % pi)
        if args.trace:
            # a given trace (e.g. a divergence's prefix): one epoch
            trace = [(x.strip(), 0) for x in open(args.trace) if x.strip() and not x.startswith("#")]
            trace.append((CHECKPOINT, 0))
        else:
            trace = gen_trace(args.topology, params, args.seed, args.ops, args.mask30, args.mask32, args.mask28)
        trace_text = "\n".join(x for x, _ in trace) + "\n"
        say("=== %s: %d nodes x %d MiB, params %r, seed %d: %d trace lines (%d allocs, %d epochs)" % (
            label, len(t["mem"]), t["mem"][0], params, args.seed, len(trace),
            sum(1 for x, _ in trace if x.startswith("alloc")), sum(1 for x, _ in trace if x == CHECKPOINT)))
        records, console, wall, err = boot(args.topology, params, m, wdir, trace_text, args.timeout)
        done = [r for r in records if r.get("t") == "done"]
        say("  guest: %.1f s wall%s%s" % (wall, ", trace ran in %.1f s in the guest" % done[0]["seconds"]
                                          if done else "", "" if not err else ", ERROR: " + err))
        if err:
            say("  last console lines:\n    " + "\n    ".join(console.splitlines()[-25:]))
            harness_err = True
            continue
        tree = os.path.join(wdir, "sysfs")
        build_sysfs(records, tree)
        with open(os.path.join(wdir, "trace"), "w") as f:
            f.write(trace_text)
        if cli is None:
            cli = Cli(args.cli, tree, arch)
        div = Divergences()
        for g in cli.gaps:
            div.add("tool gap: " + g.split(":")[0], g)
        kb, ka = kernel_areas(records, "before"), kernel_areas(records, "after")
        show_klog(console)
        cli.prelude = atomic_pool_prelude(console, ka, arch)
        if cli.prelude:
            say("  replayed first (the kernel's atomic pools in the default area): " + "; ".join(cli.prelude))
        say("  kernel areas: " + (", ".join("%s node %s %d MiB%s" % (
            a["name"], a["node_first"], a["count"] * PAGE // MiB,
            "" if a["count"] * PAGE % MiB == 0 else "+%dK" % (a["count"] * PAGE % MiB // KiB))
            for a in sorted(ka.values(), key=lambda a: a["name"])) or "none"))
        # numacma plan
        pargs, pp = cli.plan(tree, params)
        if pp.returncode != 0:
            div.add("plan: numacma refuses the parameters", "exit %d: %s" % (pp.returncode, pp.stderr.strip()))
        else:
            compare_plan(ka, json.loads(pp.stdout), params, div, label)
        # numacma replay
        rtrace = os.path.join(wdir, "trace.numacma")
        text = trace_text if cli.cpu_ok else re.sub(r" cpu=\d+", "", trace_text)
        open(rtrace, "w").write(text)
        rargs, rp = cli.replay(tree, params, rtrace)
        out = [json.loads(x) for x in rp.stdout.splitlines() if x.startswith("{")]
        with open(os.path.join(wdir, "numacma.jsonl"), "w") as f:
            f.write(rp.stdout)
        stats = [o for o in out if o.get("op") == "stats"]
        if rp.returncode != 0 or not stats:
            say("  numacma replay failed: exit %d: %s" % (rp.returncode, rp.stderr.strip()[:400]))
            div.add("replay: numacma cannot run the trace", "exit %d: %s" % (rp.returncode, rp.stderr.strip()[:300]))
            harness_err = harness_err or rp.returncode not in (0, 1, 2)
            div.report(work, label, "")
            total_div += len(div.items)
            continue
        ndec = [o for o in out if o.get("op") in ("alloc", "free", "error")]
        hdr = ("# kernel differential test %s (%s): guest sysfs tree %s\n"
               "# reproduce: %s %s\n" % (label, params, tree, args.cli,
                                         " ".join("'%s'" % a if " " in a else a for a in rargs[:-1]) + " THIS_FILE"))
        krec = [r for r in records if r.get("t") in ("alloc", "free", "error")]
        n, firsts = compare_run(trace, krec, ndec, stats[0], ka, kb, div)
        ncounters, cfirsts = compare_counters(trace, records, cli, tree, params, wdir, div)
        ndec_by_line = dict(zip([x for x, _ in trace if not x.startswith("#")], ndec))
        minimal = {}
        if (firsts or cfirsts) and not args.no_minimise:
            minimal = minimise(firsts + cfirsts, trace, ndec_by_line, args.topology, params, m,
                               os.path.join(wdir, "minimise"), cli, tree, args.timeout)
        total_decisions += n
        total_counters += ncounters
        kok = sum(1 for r in krec if r.get("t") == "alloc" and r["ok"])
        kpages = sum(1 for r in krec if r.get("t") == "alloc" and r["ok"] and kernel_area_of(ka, int(r["dma"], 16)) is None)
        say("  decisions compared: %d (%d allocs: %d ok in the kernel, %d of them from pages; %d frees); "
            "%d per-epoch area counters compared" % (
                n, sum(1 for r in krec if r.get("t") == "alloc"), kok, kpages,
                sum(1 for r in krec if r.get("t") == "free"), ncounters))
        wrong_cpu = [r for r in krec if r.get("t") == "alloc" and r["cpu"] >= 0 and "cpu=" in trace[r["line"] - 1][0]
                     and r["cpu"] != int(re.search(r"cpu=(\d+)", trace[r["line"] - 1][0]).group(1))]
        if wrong_cpu:
            div.add("harness: the runner was not on the trace's CPU", "%d alloc(s), first %s" % (
                len(wrong_cpu), wrong_cpu[0]))
        if div.items:
            div.report(work, label, hdr, minimal)
        else:
            say("  no divergence")
        total_div += len(div.items)
    say("=== %s: %d decisions compared across %d boot(s) (and %d per-epoch counters), %d divergence(s), %.0f s"
        % (args.topology, total_decisions, len(plist), total_counters, total_div, time.monotonic() - t_all))
    if harness_err:
        return 2
    return 1 if total_div else 0


def run_reserve(args):
    m = prepare(args, args.arch)
    if not m:
        return 2
    work = os.path.join(args.work, "reserve" if args.arch == "x86_64" else "reserve_" + args.arch)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    total_div, compared, harness_err, cli = 0, 0, False, None
    t_all = time.monotonic()
    sweep = [tuple(c.split(":", 1)) for c in args.case] if args.case else \
        RESERVE_SWEEP_ARM64 if args.arch == "arm64" else RESERVE_SWEEP
    for case in sweep:
        if arch_of(case[0]) != args.arch:
            say("oracle: topology %s is not %s" % (case[0], args.arch))
            return 2
    for i, case in enumerate(sweep):
        topo, params = case[0], case[1]
        refuse = len(case) > 2 and case[2] == "refuse"
        known = len(case) > 2 and case[2] == "known"
        label = "r%d_%s" % (i, topo)
        wdir = os.path.join(work, label)
        records, console, wall, err = boot(topo, params, m, wdir, None, args.timeout)
        say("=== %s: %s %r: guest %.1f s%s" % (label, topo, params, wall, "" if not err else ", ERROR: " + err))
        if err:
            say("  last console lines:\n    " + "\n    ".join(console.splitlines()[-25:]))
            harness_err = True
            continue
        show_klog(console)
        tree = os.path.join(wdir, "sysfs")
        build_sysfs(records, tree)
        if cli is None:
            cli = Cli(args.cli, tree, args.arch)
        div = Divergences()
        for g in cli.gaps:
            if "plan" in g:
                div.add("tool gap: " + g.split(":")[0], g)
        ka = kernel_areas(records, "boot")
        say("  kernel: " + (", ".join("%s node %s %d bytes" % (a["name"], a["node_first"], a["count"] * PAGE)
                                      for a in sorted(ka.values(), key=lambda a: a["name"])) or "no area"))
        pargs, pp = cli.plan(tree, params)
        if refuse:
            if pp.returncode == 0 or not pp.stderr.strip():
                div.add("plan: numacma accepts a string it documents that it refuses",
                        "%r: exit %d" % (params, pp.returncode))
            else:
                say("  numacma refuses, as documented: " + pp.stderr.strip().splitlines()[-1])
                compared += 1
        elif pp.returncode != 0:
            div.add("plan: numacma refuses parameters the kernel takes",
                    "%r: exit %d: %s" % (params, pp.returncode, pp.stderr.strip()))
        else:
            pj = json.loads(pp.stdout)
            say("  numacma: " + (", ".join("%s node %d %d bytes" % (a["name"], a["node"], a["bytes"])
                                           for a in sorted(pj.get("areas", []), key=lambda a: a["name"]))
                                 or "no area") +
                "".join("; not placed: %s (%s)" % (a["name"], a.get("reason")) for a in pj.get("not_placed", [])))
            compared += compare_plan(ka, pj, params, div, label)
        if known:
            say("  known difference (the kernel image and initrd in node 0; docs/semantics.md): %s" % (
                "; ".join(d["detail"] for d in div.items) if div.items else "not seen this time: same areas"))
        elif div.items:
            div.report(work, label, "")
        else:
            say("  same areas")
        if not known:
            total_div += len(div.items)
    say("=== reservation sweep: %d boot(s), %d area decisions compared, %d divergence(s), %.0f s" % (
        len(sweep), compared, total_div, time.monotonic() - t_all))
    if harness_err:
        return 2
    return 1 if total_div else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cli", required=True, help="the numacma binary")
    common.add_argument("--kernel-dir", default=os.path.join(ROOT, "build", "kernel"))
    common.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "numacma-kernel-tests"))
    common.add_argument("--timeout", type=int, default=200, help="seconds per guest")
    d = sub.add_parser("diff", parents=[common])
    d.add_argument("topology", choices=sorted(TOPOLOGIES))
    d.add_argument("--seed", type=int, default=int(os.environ.get("NUMACMA_KERNEL_SEED", "1")),
                   help="trace seed (default $NUMACMA_KERNEL_SEED or 1)")
    d.add_argument("--ops", type=int, default=None, help="trace lines per run (default: the topology's)")
    d.add_argument("--mask28", type=float, default=None,
                   help="share of allocations with a 28-bit mask (default: the topology's)")
    d.add_argument("--mask30", type=float, default=None,
                   help="share of allocations with a 30-bit mask (default: the topology's)")
    d.add_argument("--mask32", type=float, default=None,
                   help="allocations with a mask of 32 bits or less: the share below which a draw gets a "
                        "32-bit mask (default: the topology's, 0.27; includes the 28- and 30-bit shares)")
    d.add_argument("--params", help="run only these parameters (default: the topology's strings)")
    d.add_argument("--trace", help="run this trace instead of generated ones (one epoch; e.g. a divergence's "
                                    "prefix, to check it against the kernel again)")
    d.add_argument("--no-minimise", action="store_true",
                   help="skip the second boot that confirms shorter prefixes of each divergence")
    r = sub.add_parser("reserve", parents=[common])
    r.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64",
                   help="which kernel: the 6.12 x86-64 build (k* topologies) or Debian's arm64 6.1 (a*)")
    r.add_argument("--case", action="append", default=[], metavar="TOPO:PARAMS",
                   help="boot only these (repeatable; default: RESERVE_SWEEP)")
    g = sub.add_parser("gen")
    g.add_argument("topology", choices=sorted(TOPOLOGIES))
    g.add_argument("params")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--ops", type=int, default=None)
    q = sub.add_parser("qemu-args")
    q.add_argument("topology", choices=sorted(TOPOLOGIES))
    q.add_argument("params")
    a = ap.parse_args()
    if a.cmd == "list":
        for t in sorted(TOPOLOGIES):
            if TOPOLOGIES[t]["params"]:
                print(("arm64_diff_" if arch_of(t) == "arm64" else "diff_") + t)
        print("reserve")
        print("arm64_reserve")
        return 0
    if a.cmd == "diff":
        return run_diff(a)
    if a.cmd == "reserve":
        return run_reserve(a)
    if a.cmd == "gen":
        for text, _ in gen_trace(a.topology, a.params, a.seed, a.ops):
            print(text)
        return 0
    print(" ".join(qemu_args(a.topology, a.params, "BZIMAGE", "INITRD", "CONSOLE", "DATA")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
