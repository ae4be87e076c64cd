"""tests/kernel/oracle_cli.py — the numacma binary under test: what it
supports (probed once) and its replay and plan runs."""
import json
import re
import subprocess


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

