"""tests/kernel/oracle_compare.py — the kernel's decisions, areas and
counters against numacma's, and the report of every divergence
(Divergences) with the trace prefix that reproduces it."""
import json
import os
import re

from oracle_guest import kernel_areas
from oracle_topologies import COUNTERS, PAGE, say


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

