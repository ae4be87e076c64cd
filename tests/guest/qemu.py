"""tests/guest/qemu.py — the one guest launcher of tests/vm and tests/kernel.

command() builds the QEMU command line of a multi-node guest; run() boots it
with a deadline and returns its console. Both harnesses import this file by
putting tests/guest on sys.path (tests/vm/vm.py, tests/kernel/oracle.py).

Guests (TCG, no network, no display, -no-reboot: `poweroff -f` ends QEMU):
  x86_64            qemu-system-x86_64, machine pc; each device behind its own
                    pxb on its node (bus_nr 4*(i+1)), the device on the next bus
  x86_64 + iommu    q35,kernel-irqchip=split with intel-iommu,intremap=on
                    (VFIO asks for interrupt remapping); each device behind a
                    pxb-pcie + pcie-root-port on its node
  arm64             qemu-system-aarch64 -M virt -cpu cortex-a57; devices on the
                    root bus pcie.0, slot i+1 (the device tree has one host
                    bridge: its node is set by devtree.with_pci_node())
  arm64 + iommu     virt,iommu=smmuv3,gic-version=3 (the ITS remaps MSIs,
                    which VFIO's type1 backend asks for)
Nodes: memory-backend-ram of mem[i] MiB each, cpus[i] CPUs (0: memory only),
distances from the matrix (both directions where it is not symmetric).
"""
import os
import re
import subprocess
import time

# The edu's own DMA mask when none is given (28 bits).
EDU_DEFAULT_MASK = "0xfffffff"

BINARY = {"x86_64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}
# The Debian packages that hold them (scripts/deps.sh test installs them).
PACKAGE = {"x86_64": "qemu-system-x86", "arm64": "qemu-system-arm"}
CONSOLE = {"x86_64": "ttyS0", "arm64": "ttyAMA0"}

_TERMINAL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r")


def bdfs(arch, n):
    """Guest BDF of each of n devices laid out by command(). pc: QEMU puts a
    PCI bridge on the pxb's bus and the device on the next bus, slot 0.
    q35: the pxb-pcie's root bus holds the pcie-root-port (00.0) and the
    firmware gives the port the next bus, where the device is, slot 0.
    arm64 virt: device i on the root bus pcie.0, slot i+1 (no bridges)."""
    if arch == "arm64":
        return ["0000:00:%02x.0" % (i + 1) for i in range(n)]
    return ["0000:%02x:00.0" % (4 * (i + 1) + 1) for i in range(n)]


def _nodes(mem, cpus, dist):
    a, cpu = [], 0
    for i, size in enumerate(mem):
        a += ["-object", "memory-backend-ram,id=m%d,size=%dM" % (i, size)]
        spec = "node,nodeid=%d,memdev=m%d" % (i, i)
        if cpus[i]:
            last = cpu + cpus[i] - 1
            spec += ",cpus=%d" % cpu + ("-%d" % last if last > cpu else "")
            cpu = last + 1
        a += ["-numa", spec]
    n = len(mem)
    for i in range(n):
        for j in range(i + 1, n):
            a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (i, j, dist[i][j])]
            if dist[j][i] != dist[i][j]:
                a += ["-numa", "dist,src=%d,dst=%d,val=%d" % (j, i, dist[j][i])]
    return a


def _devices(arch, iommu, devices):
    """devices: [(kind "edu"|"nvme"|"virtio-net"|"e1000e", node, dma mask or
    None, raw image or None)]; an NVMe without an image has no namespace. Per
    device: its bridge (x86), the image's drive, the device. Every virtio-net
    is a modern device that asks for the IOMMU (iommu_platform), on QEMU's
    hub 0: what one sends, the others receive; every e1000e (an Intel 82574L,
    whose DPDK PMD allocates its rings at queue setup) is on hub 1."""
    a = []
    for i, (kind, node, mask, image) in enumerate(devices):
        if arch == "arm64":
            where = "addr=%d" % (i + 1)
        elif iommu:
            where = "bus=rp%d" % i
            a += ["-device", "pxb-pcie,id=pxb%d,bus_nr=%d,numa_node=%d,bus=pcie.0" % (i, 4 * (i + 1), node),
                  "-device", "pcie-root-port,id=rp%d,bus=pxb%d,chassis=%d" % (i, i, i + 1)]
        else:
            where = "bus=bridge%d" % i
            a += ["-device", "pxb,id=bridge%d,bus=pci.0,bus_nr=%d,numa_node=%d" % (i, 4 * (i + 1), node)]
        if kind == "edu":
            opts = ["edu", where] + (["dma_mask=" + mask] if mask and mask != EDU_DEFAULT_MASK else [])
        elif kind == "virtio-net":
            a += ["-netdev", "hubport,id=net%d,hubid=0" % i]
            opts = ["virtio-net-pci", "disable-legacy=on", "iommu_platform=on", "netdev=net%d" % i,
                    "mac=52:54:00:12:34:%02x" % (0x50 + i), where]
        elif kind == "e1000e":
            a += ["-netdev", "hubport,id=net%d,hubid=1" % i]
            opts = ["e1000e", "netdev=net%d" % i, "mac=52:54:00:12:35:%02x" % (0x50 + i), where]
        else:
            opts = ["nvme", "serial=numacma%d" % i]
            if image:
                a += ["-drive", "file=%s,if=none,id=nvm%d,format=raw" % (image, i)]
                opts.append("drive=nvm%d" % i)
            opts.append(where)
        a += ["-device", ",".join(opts)]
    return a


def command(arch, mem, dist, kernel, initrd, append, cpus=None, iommu=False, devices=(), console=None,
            data=None, cpu_model=None):
    """The QEMU command line of a guest.
    arch: "x86_64" or "arm64"; mem: MiB per node; dist: the distance matrix;
    cpus: CPUs per node (default one each); iommu: see the module's doc;
    devices: [(kind, node, dma mask, image)] (see _devices()); kernel, initrd:
    host paths; append: the kernel command line after console=<the serial>;
    console: None, the serial console on QEMU's stdout (-nographic), else a
    file the console is written to; data: a second serial port's file (x86);
    cpu_model: x86's -cpu (None: QEMU's default; "max" for programs built for
    SSE4.2, as Debian's DPDK is)."""
    cpus = list(cpus) if cpus is not None else [1] * len(mem)
    a = [BINARY[arch]]
    if arch == "arm64":
        a += ["-M", "virt,iommu=smmuv3,gic-version=3" if iommu else "virt", "-cpu", "cortex-a57"]
    a += ["-accel", "tcg", "-m", "%dM" % sum(mem), "-smp", str(sum(cpus))]
    if cpu_model and arch == "x86_64":
        a += ["-cpu", cpu_model]
    if console is None:
        a += ["-nographic"]
    else:
        a += ["-display", "none", "-monitor", "none", "-serial", "file:" + console]
        if data is not None:
            if arch == "arm64":
                raise ValueError("arm64 virt has one UART: no data serial port")
            a += ["-serial", "file:" + data]
    a += ["-no-reboot"] + (["-vga", "none"] if arch == "x86_64" else []) + ["-nic", "none"]
    if arch == "x86_64" and iommu:
        # intel-iommu must come before the other -device options; without
        # intremap (needs the split irqchip) VFIO_SET_IOMMU fails.
        a += ["-machine", "q35,kernel-irqchip=split", "-device", "intel-iommu,intremap=on"]
    a += _nodes(mem, cpus, dist)
    a += _devices(arch, iommu, devices)
    return a + ["-kernel", kernel, "-initrd", initrd, "-append", "console=%s %s" % (CONSOLE[arch], append)]


def quote(cmd):
    """The command line as one shell-pastable string."""
    return " ".join("'%s'" % c if " " in c else c for c in cmd)


class Result:
    """A guest's run: console (its serial console, terminal controls and CRs
    removed), output (what QEMU itself printed; the console too when it went
    to stdout), returncode (None: killed at the deadline), timed_out, wall
    (seconds)."""

    def __init__(self, console, output, returncode, timed_out, wall):
        self.console, self.output, self.returncode = console, output, returncode
        self.timed_out, self.wall = timed_out, wall

    def error(self, timeout):
        """None when QEMU exited 0 in time, else what went wrong."""
        if self.timed_out:
            return "guest did not finish in %d s" % timeout
        if self.returncode != 0:
            return "qemu exited %d: %s" % (self.returncode, self.output[-500:])
        return None


def run(cmd, timeout, console=None):
    """Boots the guest of `cmd` (command()) and waits at most `timeout`
    seconds, then kills it. console: the file command() was given for the
    console (None: it is QEMU's stdout)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc, timed_out = p.stdout, p.returncode, False
    except subprocess.TimeoutExpired as e:
        out, rc, timed_out = e.stdout or b"", None, True
    wall = time.monotonic() - t0
    out = out.decode(errors="replace")
    if console is None:
        text = out
    else:
        text = open(console, errors="replace").read() if os.path.exists(console) else ""
    return Result(_TERMINAL.sub("", text), out, rc, timed_out, wall)
