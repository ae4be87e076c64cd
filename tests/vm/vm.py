#!/usr/bin/env python3
"""tests/vm/vm.py — multi-node NUMA and real DMA tests inside QEMU guests.

This host has one NUMA node, so the claims that matter most (memory lands on
the device's node, the DMA address is where the device writes, fallback when a
node is full) are tested inside QEMU/TCG guests with the topologies below:

  vm.py list                                   "<topology> <check>" per line (for CMake)
  vm.py boot TOPO --cli BIN --vmcheck BIN --out DIR [--timeout S]
      packs busybox-static + the two static programs + /init into an initramfs,
      boots Debian's kernel with the topology's NUMA nodes, distances, per-node
      hugepages and PCI devices (edu / nvme behind pxb bridges on chosen nodes),
      and splits the serial console into DIR/TOPO/<check>.txt (+ console.log)
  vm.py report TOPO CHECK --out DIR            prints the guest's output of one check;
                                               exit 0 pass, 77 skip, 1 fail
  vm.py qemu-args TOPO                         the QEMU command line (to run by hand)

Each guest run is bounded (--timeout, default 240 s) and killed past it.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MiB = 1 << 20
EDU, NVME = "0x1234:0x11e8", "0x1b36:0x10"
MASK28, MASK64 = "0xfffffff", "0xffffffffffffffff"


def arm64_4n():
    # The motivating server: 4 nodes, SMMU-like device on node 2.
    return [[10, 12, 20, 22], [12, 10, 22, 24], [20, 22, 10, 12], [22, 24, 12, 10]]


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


def nearest_order(dist, frm):
    """Other nodes by increasing distance, ties by lower id (SEMANTICS A5)."""
    return [n for _, n in sorted((dist[frm][m], m) for m in range(len(dist)) if m != frm)]


# Each topology: node memory (MiB), CPUs per node, distances, 2M hugepages per
# node, devices (kind, node, dma mask), and the checks run inside the guest.
TOPOLOGIES = {
    "vm2": dict(
        mem=[512, 512], cpus=[1, 1], dist=[[10, 21], [21, 10]], huge=[16, 16],
        devices=[("edu", 1, MASK64), ("nvme", 0, None)]),
    "vm4": dict(
        mem=[256, 512, 512, 512], cpus=[1, 1, 1, 1], dist=arm64_4n(), huge=[16, 16, 16, 0],
        devices=[("edu", 2, MASK64), ("edu", 1, MASK28), ("nvme", 3, None)]),
    "vm8": dict(
        mem=[256] * 8, cpus=[1] * 8, dist=epyc_8n(), huge=[8, 8, 8, 8, 8, 8, 8, 0],
        devices=[("edu", 5, MASK64), ("nvme", 7, None)]),
}


def bdfs(topo):
    """Guest BDF of each device: pxb bridge i gets bus_nr 4*(i+1); QEMU puts a
    PCI bridge there and the device on the next bus, slot 0."""
    return ["0000:%02x:00.0" % (4 * (i + 1) + 1) for i in range(len(topo["devices"]))]


def checks(name):
    """[(check name, guest shell command)] for a topology."""
    t = TOPOLOGIES[name]
    out = [("topo", "numacma topo --json > /tmp/topo.json && cat /tmp/topo.json && "
                    "numacma-vmcheck topo-match /tmp/topo.json /expect.json"),
           ("placement_hugetlb", "numacma-vmcheck placement hugetlb"),
           ("placement_anon", "numacma-vmcheck placement anon")]
    for (kind, node, mask), bdf in zip(t["devices"], bdfs(t)):
        if kind != "edu":
            continue
        if mask == MASK64:
            out.append(("contiguity_node%d" % node, "numacma-vmcheck contiguity %d" % node))
            out.append(("dma_edu_node%d" % node, "numacma-vmcheck dma %s %s" % (bdf, mask)))
            order = ",".join(map(str, nearest_order(t["dist"], node)))
            out.append(("exhaust_kernel_node%d" % node, "numacma-vmcheck exhaust %d kernel" % node))
            out.append(("exhaust_nearest_node%d" % node,
                        "numacma-vmcheck exhaust %d nearest %s" % (node, order)))
        else:
            out.append(("dma_mask28_node%d" % node, "numacma-vmcheck mask %s %s" % (bdf, mask)))
    for node, h in enumerate(t["huge"]):
        if h == 0:
            out.append(("nohuge_node%d" % node, "numacma-vmcheck nohuge %d" % node))
    if name == "vm4":
        out.append(("demo", "numacma demo"))
        # The command-queue benchmark across nodes (the figures mean nothing
        # under TCG; what is checked is where the queue and the threads are).
        cpu_nodes = [n for n, c in enumerate(t["cpus"]) if c > 0]
        dev = cpu_nodes[-1]
        order = [dev] + [n for n, m in enumerate(t["mem"]) if m > 0 and n != dev]
        out.append(("cmdq", "numacma bench cmdq --quick --json > /tmp/cmdq.json && cat /tmp/cmdq.json && "
                            "numacma-vmcheck cmdq /tmp/cmdq.json %d %d %s" % (
                                cpu_nodes[0], dev, ",".join(map(str, order)))))
    return out


def expect_json(name):
    t = TOPOLOGIES[name]
    devices = []
    for kind, node, _ in t["devices"]:
        devices.append("%s@%d" % (EDU if kind == "edu" else NVME, node))
    return {"nodes": list(range(len(t["mem"]))), "distances": t["dist"],
            "hugepages": {str(i): h for i, h in enumerate(t["huge"])}, "devices": devices}


def kernel_image():
    imgs = sorted(glob.glob("/boot/vmlinuz-*-amd64"))
    return imgs[-1] if imgs else None


def qemu_args(name, kernel, initrd):
    t = TOPOLOGIES[name]
    n = len(t["mem"])
    a = ["qemu-system-x86_64", "-accel", "tcg", "-m", "%dM" % sum(t["mem"]),
         "-smp", str(sum(t["cpus"])), "-nographic", "-no-reboot", "-vga", "none", "-nic", "none"]
    cpu = 0
    for i in range(n):
        a += ["-object", "memory-backend-ram,id=m%d,size=%dM" % (i, t["mem"][i])]
        spec = "node,nodeid=%d,memdev=m%d" % (i, i)
        if t["cpus"][i]:
            last = cpu + t["cpus"][i] - 1
            spec += ",cpus=%d" % cpu + ("-%d" % last if last > cpu else "")
            cpu = last + 1
        a += ["-numa", spec]
    for i in range(n):
        for j in range(i + 1, n):
            a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (i, j, t["dist"][i][j])]
            if t["dist"][j][i] != t["dist"][i][j]:
                a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (j, i, t["dist"][j][i])]
    for i, (kind, node, mask) in enumerate(t["devices"]):
        br = "bridge%d" % i
        a += ["-device", "pxb,id=%s,bus=pci.0,bus_nr=%d,numa_node=%d" % (br, 4 * (i + 1), node)]
        if kind == "edu":
            a += ["-device", "edu,bus=%s" % br + (",dma_mask=%s" % mask if mask != MASK28 else "")]
        else:
            a += ["-device", "nvme,serial=numacma%d,bus=%s" % (i, br)]
    huge = ",".join("%d:%d" % (i, h) for i, h in enumerate(t["huge"]))
    a += ["-kernel", kernel, "-initrd", initrd,
          "-append", "console=ttyS0 quiet panic=-1 hugepagesz=2M hugepages=%s" % huge]
    return a


# ---- initramfs (newc cpio, written here so no cpio tool is needed) ----------

def cpio_newc(entries, path):
    """entries: [(name, mode, data-bytes-or-None)]."""
    out = bytearray()
    ino = 1

    def pad4(b):
        b.extend(b"\0" * ((4 - len(b) % 4) % 4))

    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        data = data or b""
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        pad4(out)
        out += data
        pad4(out)
        ino += 1
    with open(path, "wb") as f:
        f.write(out)


def init_script(name):
    lines = ["#!/bin/busybox sh",
             "/bin/busybox --install -s /bin",
             "export PATH=/bin",
             "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev",
             "echo VMTEST-START %s" % name,
             "run() { n=$1; shift; echo \"VMCHECK-BEGIN $n\"; timeout 90 sh -c \"$*\" 2>&1; "
             "echo \"VMCHECK-END $n rc=$?\"; }"]
    for check, cmd in checks(name):
        lines.append("run %s '%s'" % (check, cmd.replace("'", "'\\''")))
    lines += ["echo VMTEST-DONE", "poweroff -f", ""]
    return "\n".join(lines)


def need_tools():
    missing = [w for w, ok in (("qemu-system-x86", shutil.which("qemu-system-x86_64")),
                               ("linux-image-amd64", kernel_image()),
                               ("busybox-static", os.path.exists("/bin/busybox"))) if not ok]
    if missing and os.geteuid() == 0:
        print("vm.py: installing " + " ".join(missing), flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "test"], check=False)
        missing = [w for w, ok in (("qemu-system-x86", shutil.which("qemu-system-x86_64")),
                                   ("linux-image-amd64", kernel_image()),
                                   ("busybox-static", os.path.exists("/bin/busybox"))) if not ok]
    return missing


def boot(args):
    missing = need_tools()
    if missing:
        print("vm.py: cannot boot: missing " + " ".join(missing) +
              " (run scripts/deps.sh test as root)")
        return 1
    kernel = kernel_image()
    if not os.access(kernel, os.R_OK):
        print("vm.py: cannot read %s (needs root)" % kernel)
        return 1
    d = os.path.join(args.out, args.topology)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rd = lambda p: open(p, "rb").read()
    entries = [("bin", 0o40755, None), ("proc", 0o40755, None), ("sys", 0o40755, None),
               ("dev", 0o40755, None), ("tmp", 0o41777, None),
               ("init", 0o100755, init_script(args.topology).encode()),
               ("bin/busybox", 0o100755, rd("/bin/busybox")),
               ("bin/numacma", 0o100755, rd(args.cli)),
               ("bin/numacma-vmcheck", 0o100755, rd(args.vmcheck)),
               ("expect.json", 0o100644, json.dumps(expect_json(args.topology)).encode())]
    initrd = os.path.join(d, "initramfs.cpio")
    cpio_newc(entries, initrd)
    cmd = qemu_args(args.topology, kernel, initrd)
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=args.timeout)
        console, timed_out = p.stdout.decode(errors="replace"), False
    except subprocess.TimeoutExpired as e:
        console, timed_out = (e.stdout or b"").decode(errors="replace"), True
    wall = time.monotonic() - t0
    console = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r", "", console)
    with open(os.path.join(d, "console.log"), "w") as f:
        f.write(console)
    print(console)
    results = split_console(console)
    for check, _ in checks(args.topology):
        text, rc = results.get(check, ("(the guest never ran this check)\n", None))
        with open(os.path.join(d, check + ".txt"), "w") as f:
            f.write(text + ("rc=%s\n" % rc))
    done = "VMTEST-DONE" in console
    passed = sum(1 for c, _ in checks(args.topology) if results.get(c, ("", None))[1] == 0)
    print("vm.py: %s: %d of %d guest checks passed, wall %.1f s%s" % (
        args.topology, passed, len(checks(args.topology)), wall,
        ", TIMED OUT after %d s" % args.timeout if timed_out else ""))
    return 0 if done and not timed_out else 1


def split_console(console):
    res, cur, buf = {}, None, []
    for line in console.splitlines():
        m = re.match(r"VMCHECK-BEGIN (\S+)", line)
        if m:
            cur, buf = m.group(1), []
            continue
        m = re.match(r"VMCHECK-END (\S+) rc=(\d+)", line)
        if m and cur == m.group(1):
            res[cur] = ("\n".join(buf) + "\n", int(m.group(2)))
            cur = None
            continue
        if cur:
            buf.append(line)
    return res


def report(args):
    path = os.path.join(args.out, args.topology, args.check + ".txt")
    if not os.path.exists(path):
        print("no result for %s/%s: did the boot test run?" % (args.topology, args.check))
        return 1
    text = open(path).read()
    print(text, end="")
    m = re.search(r"rc=(\d+|None)\s*$", text)
    rc = m.group(1) if m else "None"
    return 0 if rc == "0" else 77 if rc == "77" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    b = sub.add_parser("boot")
    b.add_argument("topology", choices=sorted(TOPOLOGIES))
    b.add_argument("--cli", required=True)
    b.add_argument("--vmcheck", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--timeout", type=int, default=240)
    r = sub.add_parser("report")
    r.add_argument("topology", choices=sorted(TOPOLOGIES))
    r.add_argument("check")
    r.add_argument("--out", required=True)
    q = sub.add_parser("qemu-args")
    q.add_argument("topology", choices=sorted(TOPOLOGIES))
    a = ap.parse_args()
    if a.cmd == "list":
        for t in sorted(TOPOLOGIES):
            for c, _ in checks(t):
                print(t, c)
        return 0
    if a.cmd == "boot":
        return boot(a)
    if a.cmd == "report":
        return report(a)
    print(" ".join(qemu_args(a.topology, kernel_image() or "KERNEL", "INITRD")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
