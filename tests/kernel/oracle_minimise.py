"""tests/kernel/oracle_minimise.py — shorter trace prefixes for each
divergence, confirmed against the kernel in one more guest (minimise())."""
import json
import os
import re

from oracle_compare import epoch_prefix, judge, kernel_area_of
from oracle_guest import boot, kernel_areas
from oracle_topologies import CHECKPOINT, say


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

