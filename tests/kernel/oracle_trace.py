"""tests/kernel/oracle_trace.py — the seeded alloc/free traces the kernel
and `numacma replay` both run (gen_trace()), sized by the areas the
parameter string asks for."""
import random
import re

from oracle_topologies import CHECKPOINT, KiB, MASK28, MASK30, MASK32, MASK64, MiB, PAGE, TOPOLOGIES


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

