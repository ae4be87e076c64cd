"""tests/kernel/oracle_commands.py — `oracle.py diff` (run_diff) and
`oracle.py reserve` (run_reserve): the guests one after another, numacma on
what each recorded, the comparison and its report."""
import json
import os
import re
import shutil
import time

import qemu
from oracle_arm64 import RESERVE_SWEEP_ARM64, atomic_pool_prelude
from oracle_cli import Cli
from oracle_compare import Divergences, compare_counters, compare_plan, compare_run, kernel_area_of
from oracle_guest import boot, build_sysfs, kernel_areas, load_manifest, show_klog
from oracle_minimise import minimise
from oracle_topologies import CHECKPOINT, KiB, MiB, PAGE, RESERVE_SWEEP, TOPOLOGIES, arch_of, say
from oracle_trace import gen_trace


def prepare(args, arch="x86_64"):
    m, err = load_manifest(args.kernel_dir, arch)
    if err:
        say("oracle: " + err)
        return None
    binary = qemu.BINARY[arch]
    if not shutil.which(binary):
        say("oracle: %s missing (scripts/deps.sh test)" % binary)
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

