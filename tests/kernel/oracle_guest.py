"""tests/kernel/oracle_guest.py — booting the oracle's guests (the kernel of
build_kernel.py / build_kernel_arm64.py, its test module and the runner in an
initramfs; tests/guest/qemu.py launches them) and collecting what they
recorded: the runner's JSON records, the kernel log, the guest's own sysfs."""
import json
import os
import shutil

import cpio
import qemu
from oracle_arm64 import load_manifest_arm64, runner_on_console
from oracle_topologies import KLOG_SHOW, TOPOLOGIES, arch_of, say


def load_manifest(kdir, arch="x86_64"):
    if arch == "arm64":
        return load_manifest_arm64(kdir)
    path = os.path.join(kdir, "current.json")
    if not os.path.exists(path):
        return None, "%s missing: run tests/kernel/build_kernel.py (the kernel_build test) first" % path
    m = json.load(open(path))
    for k in ("bzImage", "module", "runner"):
        if not os.path.exists(m[k]):
            return None, "%s missing (rebuild: tests/kernel/build_kernel.py)" % m[k]
    return m, None


def qemu_args(topo_name, params, kernel, initrd, console, data):
    """One CPU per node; x86-64: the console on the first serial port, the
    runner's records on the second (data); arm64 (one UART): both on the
    console."""
    t = TOPOLOGIES[topo_name]
    arm64 = arch_of(topo_name) == "arm64"
    return qemu.command(arch_of(topo_name), t["mem"], t["dist"], kernel, initrd, "loglevel=3 panic=-1 " + params,
                        console=console, data=None if arm64 else data)


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
    init = runner_on_console(INIT) if arm64 else INIT
    entries = [("bin", 0o40755, None), ("proc", 0o40755, None), ("sys", 0o40755, None),
               ("dev", 0o40755, None), ("tmp", 0o41777, None),
               ("init", 0o100755, init.encode()),
               ("bin/busybox", 0o100755, rd(manifest.get("busybox", "/bin/busybox"))),
               ("bin/kdiff_runner", 0o100755, rd(manifest["runner"])),
               ("numacma_dma_test.ko", 0o100644, rd(manifest["module"]))]
    if trace_text is not None:
        entries.append(("trace", 0o100644, trace_text.encode()))
    initrd = os.path.join(wdir, "initramfs.cpio")
    cpio.cpio_newc(entries, initrd)
    console, data = os.path.join(wdir, "console.log"), os.path.join(wdir, "data.jsonl")
    cmd = qemu_args(topo_name, params, manifest["kernel"] if arm64 else manifest["bzImage"], initrd, console,
                    data)
    with open(os.path.join(wdir, "qemu.cmd"), "w") as f:
        f.write(qemu.quote(cmd) + "\n")
    res = qemu.run(cmd, timeout, console=console)
    err, text, wall = res.error(timeout), res.console, res.wall
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
