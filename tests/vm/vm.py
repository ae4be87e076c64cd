#!/usr/bin/env python3
"""tests/vm/vm.py — multi-node NUMA and real DMA tests inside QEMU guests.

This host has one NUMA node, so the claims that matter most (memory lands on
the device's node, the DMA address is where the device writes, fallback when a
node is full) are tested inside QEMU/TCG guests with the topologies below:

  vm.py list                                   "<topology> <check>" per line (for CMake)
  vm.py boot TOPO --cli BIN --vmcheck BIN --out DIR [--timeout S]
      packs busybox-static + the two static programs + /init into an initramfs,
      boots Debian's kernel (unpacked from its .deb by scripts/debs.sh, never
      installed on the host) with the topology's NUMA nodes, distances, per-node
      hugepages and PCI devices (edu / nvme behind pxb bridges on chosen nodes),
      and splits the serial console into DIR/TOPO/<check>.txt (+ console.log)
  vm.py report TOPO CHECK --out DIR            prints the guest's output of one check;
                                               exit 0 pass, 77 skip, 1 fail
  vm.py qemu-args TOPO                         the QEMU command line (to run by hand)

vfio2 is a q35 guest with an emulated Intel IOMMU (machine="q35-iommu"): the
devices sit behind pxb-pcie + pcie-root-port on their nodes, NVMe controllers
are backed by sparse raw images in DIR/TOPO, and /init loads the guest kernel's
vfio modules (irqbypass ... vfio-pci, from the unpacked package's lib/modules)
before the checks (VFIO_CHECKS).

arm64_2n and arm64_4n are arm64 guests (machine="arm64-virt"):
qemu-system-aarch64 -M virt,iommu=smmuv3 with Debian's arm64 kernel and
busybox-static:arm64 (scripts/debs.sh arm64, cached under build/debs/arm64), the
programs cross-built for aarch64 (--cli/--vmcheck/--hello/--hello-c), every
device on the PCIe host bridge, whose node vm.py writes into QEMU's own DTB
(arm64_dtb()); the edu bound to pci-stub, VFIO for the NVMe (ARM64_VFIO_CHECKS).

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


def arm64_seed_4n():
    # The arm64 server per-NUMA CMA was written for (issue 10): node 3 far
    # from 0 and 1, 2 and 3 a close pair.
    return [[10, 16, 32, 33], [16, 10, 38, 39], [32, 38, 10, 24], [33, 39, 24, 10]]


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
    """Other nodes by increasing distance, ties by lower id (docs/semantics.md A5)."""
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
    # VFIO: q35 + intel-iommu (intremap=on), each device behind its own
    # pxb-pcie + pcie-root-port; NVMe backed by a sparse raw image of nvme_mib.
    # The edu stays unbound (for "not bound to vfio-pci" error tests).
    "vfio2": dict(
        machine="q35-iommu", nvme_mib=16,
        # node 1 is large enough for the 1 GiB areas of vfio_bench (hugetlb and anon)
        mem=[512, 2560], cpus=[1, 1], dist=[[10, 21], [21, 10]], huge=[16, 528],
        devices=[("nvme", 0, None), ("nvme", 1, None), ("edu", 1, MASK64)]),
    # arm64 (machine="arm64-virt"): qemu-system-aarch64 -M virt,iommu=smmuv3
    # -cpu cortex-a57 under TCG, booted from a device tree, Debian's arm64
    # kernel (built with CONFIG_DMA_PERNUMA_CMA) with the guest's own
    # cma=64M cma_pernuma=16M, the programs cross-built for aarch64. The
    # virt machine's device tree has one PCIe host bridge (pxb-pcie needs
    # ACPI, whose NUMA the 6.1 kernel loses under QEMU's UEFI: see
    # docs/vm-tests.md), so every device sits on pcie.0 and the whole bridge
    # on pci_node: vm.py writes numa-node-id = pci_node into QEMU's own DTB
    # for the host bridge and the SMMUv3 (arm64_dtb()). exhaust_nodes: the
    # nodes whose exhaust_kernel/exhaust_nearest checks run.
    "arm64_2n": dict(
        machine="arm64-virt", mem=[512, 512], cpus=[1, 1], dist=[[10, 21], [21, 10]], huge=[16, 16],
        pci_node=1, devices=[("edu", 1, MASK64)], exhaust_nodes=[0, 1]),
    "arm64_4n": dict(
        machine="arm64-virt", mem=[512, 512, 512, 512], cpus=[1, 1, 1, 1], dist=arm64_seed_4n(),
        huge=[16, 16, 16, 0], pci_node=2, devices=[("edu", 2, MASK64), ("nvme", 2, None)], nvme_mib=16,
        exhaust_nodes=[0, 1, 2, 3]),
}

# Modules the arm64 guests load (from the arm64 kernel package's tree):
# pci-stub for the edus, VFIO where there is an NVMe (irqbypass is built in).
ARM64_MODULES = ["pci-stub"]
ARM64_VFIO_MODULES = ["vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci"]

# The VFIO checks of an arm64 guest with an NVMe (numacma nvme-selftest
# behind the SMMUv3): as vfio2's, on the one controller.
ARM64_VFIO_CHECKS = [
    ("vfio_bind", "numacma vfio bind {nvme0} && numacma vfio bind {nvme0} && numacma topo | grep -e {nvme0}"),
    ("vfio_nvme_node{nvme0_node}", "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node}"),
    ("vfio_selftest_json_node{nvme0_node}",
     "numacma nvme-selftest {nvme0} --json > /tmp/st0.json; rc=$?; cat /tmp/st0.json; "
     "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st0.json {nvme0_node}"),
    ("vfio_mask28", "numacma nvme-selftest {nvme0} --dma-bits 28 --json > /tmp/m28.json; rc=$?; cat /tmp/m28.json; "
                    "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/m28.json {nvme0_node} 28 && "
                    "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node} 28"),
    ("vfio_unbind", "numacma vfio unbind {nvme0} && [ ! -e /sys/bus/pci/devices/{nvme0}/driver ]"),
]


def arm64_bind_lines(topo):
    """/init lines binding every edu to pci-stub. On arm64 (device tree) a
    PCI device gets its IOMMU group, and an SMMUv3 stream table entry, only
    when a driver probes it; with iommu.passthrough=1 that is an identity
    domain, so the edu's DMA to physical addresses passes the SMMUv3 (an
    unprobed device's DMA is aborted: 2-level stream table, no entry)."""
    out = []
    for (kind, _, _), bdf in zip(topo["devices"], bdfs(topo)):
        if kind != "edu":
            continue
        d = "/sys/bus/pci/devices/" + bdf
        out.append("echo pci-stub > %s/driver_override && echo %s > /sys/bus/pci/drivers_probe && "
                   "echo \"VMTEST-BIND %s pci-stub group $(basename $(readlink %s/iommu_group))\" || "
                   "echo 'VMTEST-BIND %s FAILED'" % (d, bdf, bdf, d, bdf))
    return out


# The arm64 guests' own kernel command line: the kernel reserves its per-NUMA
# areas (pernuma0..N-1 at the top of each node) and the default one.
ARM64_KERNEL_CMA = "cma=64M cma_pernuma=16M"

# Modules the q35-iommu guests load (with their dependencies, from the unpacked
# kernel package's lib/modules/<version>/modules.dep: guest_trees()), in
# dependency order.
VFIO_MODULES = ["irqbypass", "vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci"]

# vfio2's checks after vfio_smoke and topo (name, guest shell command), run in
# this order before vfio_dmesg. In a command, {nvme0} {nvme1} {edu} (also {edu0})
# stand for the devices' guest BDFs and {nvme0_node} {nvme1_node} {edu_node}
# for their nodes (see device_vars()). vfio_bind binds both NVMe controllers
# to vfio-pci with `numacma vfio bind` (the edu stays unbound: it is the
# "not bound" case of vfio_errors); vfio_unbind gives them back at the end.
# The vmcheck side of each check: tests/vm/guest/vfio_checks.cpp.
VFIO_CHECKS = [
    ("vfio_bind", "numacma vfio bind {nvme0} && numacma vfio bind {nvme1} && numacma vfio bind {nvme1} && "
                  "numacma topo | grep -e {nvme0} -e {nvme1} -e {edu}"),
    ("vfio_nvme_node0", "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node}"),
    ("vfio_nvme_node1", "numacma-vmcheck vfio-nvme {nvme1} {nvme1_node}"),
    ("vfio_selftest_json_node0", "numacma nvme-selftest {nvme0} --json > /tmp/st0.json; rc=$?; cat /tmp/st0.json; "
                                 "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st0.json {nvme0_node}"),
    ("vfio_selftest_json_node1", "numacma nvme-selftest {nvme1} --json > /tmp/st1.json; rc=$?; cat /tmp/st1.json; "
                                 "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st1.json {nvme1_node}"),
    ("vfio_mask28", "numacma nvme-selftest {nvme1} --dma-bits 28 --json > /tmp/m28.json; rc=$?; cat /tmp/m28.json; "
                    "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/m28.json {nvme1_node} 28 && "
                    "numacma-vmcheck vfio-nvme {nvme1} {nvme1_node} 28"),
    ("vfio_fault", "numacma-vmcheck vfio-fault {nvme0}"),
    ("vfio_attach_later", "numacma-vmcheck vfio-attach {nvme0} {nvme1}"),
    ("vfio_dma_avail", "numacma-vmcheck vfio-avail {nvme1} 10000"),
    ("vfio_errors", "numacma-vmcheck vfio-errors {nvme0} {edu}"),
    ("vfio_bench", "numacma-vmcheck vfio-bench {nvme1} {nvme1_node}"),
    ("vfio_unbind", "numacma vfio unbind {nvme0} && numacma vfio unbind {nvme1} && "
                    "[ ! -e /sys/bus/pci/devices/{nvme0}/driver ] && [ ! -e /sys/bus/pci/devices/{nvme1}/driver ]"),
]

# Modules packed into the q35-iommu guests' initramfs but not loaded at boot
# (every check before the data checks wants its NVMe without a driver):
# the kernel's own NVMe driver and ext4 (which mounts ext2; its mount asks
# the crypto API for crc32c, which no request_module can load here), loaded
# by the first data check, in the order of /nvme-modules.
NVME_GUEST_MODULES = ["nvme", "crc32c_generic", "ext4"]

# Shell the data checks start with. nvme_up BDF: loads the kernel's nvme
# driver (once), waits for BDF's namespace and its /dev node, prints its
# name. lnk: the name a link points to. mbr DEV: writes a known first MiB
# to DEV: random bytes under an MBR with one Linux partition (LBA 2048, 8 MiB),
# kept in /tmp/head; the kernel reads the table again.
DATA_SHELL = r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
lnk() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo -; fi; }
nvme_up() {
  [ -d /sys/module/nvme ] || for m in $(cat /nvme-modules); do insmod /$m || echo "insmod /$m FAILED" >&2; done
  i=0
  while [ $i -lt 600 ]; do
    for n in /sys/bus/pci/devices/$1/nvme/nvme*/nvme*n1; do
      [ -e "$n" ] && [ -b /dev/${n##*/} ] && { echo ${n##*/}; return 0; }
    done
    usleep 100000; i=$((i + 1))
  done
  echo "no namespace of $1 after 60 s (driver $(lnk /sys/bus/pci/devices/$1/driver))" >&2; return 1
}
mbr() {
  dd if=/dev/urandom of=/tmp/head bs=512 count=2048 2>/dev/null
  dd if=/dev/zero of=/tmp/head bs=1 seek=446 count=64 conv=notrunc 2>/dev/null
  printf '\000\040\041\000\203\376\377\377\000\010\000\000\000\100\000\000' |
    dd of=/tmp/head bs=1 seek=446 conv=notrunc 2>/dev/null
  printf '\125\252' | dd of=/tmp/head bs=1 seek=510 conv=notrunc 2>/dev/null
  dd if=/tmp/head of=/dev/$1 bs=4096 conv=fsync 2>/dev/null && blockdev --rereadpt /dev/$1
}
"""

# The checks that the user's data survives (run after vfio_unbind, before
# vfio_dmesg; each binds the controllers to the kernel's nvme driver first):
# a default nvme-selftest gives every byte back, and `vfio bind` refuses a
# disk with a mounted file system or active swap, the disk staying on nvme.
VFIO_DATA_CHECKS = [
    ("vfio_selftest_restores", DATA_SHELL + r"""ns=$(nvme_up {nvme0}) || exit 1
mbr $ns || exit 1
want=$(md5sum < /tmp/head)
[ -e /sys/class/block/${ns}p1 ] && echo "{nvme0}: $ns, partition ${ns}p1, first MiB md5 $want" ||
  bad "the kernel found no partition on $ns"
numacma vfio bind {nvme0} || exit 1
numacma nvme-selftest {nvme0} --json > /tmp/rs.json 2> /tmp/rs.err; rc=$?
cat /tmp/rs.json /tmp/rs.err
[ $rc -eq 0 ] || bad "nvme-selftest exit $rc"
grep -q '"mode":"restore"' /tmp/rs.json && grep -q '"restored":true' /tmp/rs.json || bad "not restored"
grep -q "{nvme0} namespace 1: LBAs 0-63 .*(read-modify-restore)" /tmp/rs.err || bad "not announced"
numacma vfio unbind {nvme0} || exit 1
ns=$(nvme_up {nvme0}) || exit 1
got=$(dd if=/dev/$ns bs=4096 count=256 2>/dev/null | md5sum)
echo "after the self-test: $ns, first MiB md5 $got"
[ "$got" = "$want" ] || bad "the first MiB of $ns changed (md5 $got, was $want)"
[ -e /sys/class/block/${ns}p1 ] || bad "the partition table of $ns is gone"
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("vfio_bind_refuses_mounted", DATA_SHELL + r"""ns=$(nvme_up {nvme0}) || exit 1
[ -e /sys/class/block/${ns}p1 ] || mbr $ns || exit 1
mke2fs /dev/${ns}p1 > /dev/null || exit 1
mkdir -p /mnt/data && mount -t ext2 /dev/${ns}p1 /mnt/data || exit 1
echo kept > /mnt/data/file && sync
numacma vfio bind {nvme0} 2> /tmp/b.err; rc=$?; cat /tmp/b.err
[ $rc -eq 1 ] || bad "vfio bind exit $rc, want 1"
grep -q "{nvme0} is in use: ${ns}p1 is mounted on /mnt/data" /tmp/b.err || bad "the message does not name the mount"
d=$(lnk /sys/bus/pci/devices/{nvme0}/driver); echo "driver: $d"
[ "$d" = nvme ] || bad "{nvme0} is on $d, not nvme"
[ "$(cat /mnt/data/file)" = kept ] || bad "the file system lost its file"
umount /mnt/data
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("vfio_bind_refuses_swap", DATA_SHELL + r"""ns=$(nvme_up {nvme1}) || exit 1
mkswap /dev/$ns > /dev/null && swapon /dev/$ns || exit 1
cat /proc/swaps
numacma vfio bind {nvme1} 2> /tmp/s.err; rc=$?; cat /tmp/s.err
[ $rc -eq 1 ] || bad "vfio bind exit $rc, want 1"
grep -q "{nvme1} is in use: $ns is used as swap" /tmp/s.err || bad "the message does not name the swap"
d=$(lnk /sys/bus/pci/devices/{nvme1}/driver); echo "driver: $d"
[ "$d" = nvme ] || bad "{nvme1} is on $d, not nvme"
grep -q "^/dev/$ns " /proc/swaps || bad "the swap is gone"
swapoff /dev/$ns
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
]


def is_q35(topo):
    return topo.get("machine") == "q35-iommu"


def is_arm64(topo):
    return topo.get("machine") == "arm64-virt"


def bdfs(topo):
    """Guest BDF of each device: bridge i gets bus_nr 4*(i+1). pc: QEMU puts a
    PCI bridge on the pxb's bus and the device on the next bus, slot 0.
    q35-iommu: the pxb-pcie's root bus holds the pcie-root-port (00.0) and the
    firmware gives the port the next bus, where the device is, slot 0.
    arm64-virt: device i on the root bus pcie.0, slot i+1 (no bridges)."""
    if is_arm64(topo):
        return ["0000:00:%02x.0" % (i + 1) for i in range(len(topo["devices"]))]
    return ["0000:%02x:00.0" % (4 * (i + 1) + 1) for i in range(len(topo["devices"]))]


def device_vars(topo):
    """{nvme0: BDF, nvme0_node: N, ...}: devices numbered per kind in list
    order; the first edu is also {edu} / {edu_node}."""
    v, seen = {}, {}
    for (kind, node, _), bdf in zip(topo["devices"], bdfs(topo)):
        k = "%s%d" % (kind, seen.get(kind, 0))
        seen[kind] = seen.get(kind, 0) + 1
        v[k], v[k + "_node"] = bdf, str(node)
        if k in ("edu0", "nvme0"):
            v.setdefault(kind, bdf)
            v.setdefault(kind + "_node", str(node))
    return v


def fill(cmd, v):
    """Replaces {key} by v[key] (not str.format: shell commands have braces)."""
    for k in sorted(v, key=len, reverse=True):
        cmd = cmd.replace("{%s}" % k, v[k])
    return cmd


# Guest shell (busybox) for vfio_smoke, a %-format: %(devs)s are "BDF NODE KIND"
# lines, %(nvmes)s the NVMe BDFs (write a literal % as %%).
VFIO_SMOKE = r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
lnk() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo -; fi; }
echo "-- PCI devices (sysfs): bdf class vendor:device numa_node iommu_group driver"
for d in /sys/bus/pci/devices/*; do
  echo "${d##*/} $(cat $d/class) $(cat $d/vendor):$(cat $d/device) node=$(cat $d/numa_node) group=$(lnk $d/iommu_group) driver=$(lnk $d/driver)"
done
echo "-- modules: $(cut -d" " -f1 /proc/modules | tr "\n" " ")"
for m in vfio vfio_iommu_type1 vfio_pci_core vfio_pci; do
  grep -q "^$m " /proc/modules || bad "module $m not loaded"
done
for u in /sys/class/iommu/*; do
  echo "${u##*/}: $(for f in version cap ecap address; do echo -n "$f=$(cat $u/intel-iommu/$f 2>/dev/null) "; done)"
done
if [ -c /dev/vfio/vfio ]; then echo "/dev/vfio/vfio: ok"; else bad "/dev/vfio/vfio missing"; fi
echo "%(devs)s" | while read bdf node kind; do
  d=/sys/bus/pci/devices/$bdf
  [ -e $d ] || { bad "$kind $bdf not in /sys/bus/pci/devices"; continue; }
  n=$(cat $d/numa_node)
  if [ "$n" = "$node" ]; then echo "$kind $bdf numa_node=$n: ok"; else bad "$kind $bdf numa_node=$n, want $node"; fi
  [ -L $d/iommu_group ] || { bad "$kind $bdf has no iommu_group"; continue; }
  g=$(lnk $d/iommu_group)
  echo "$kind $bdf iommu_group=$g (members: $(ls /sys/kernel/iommu_groups/$g/devices | tr "\n" " "))"
  echo "$kind $bdf reserved_regions: $(tr "\n" ";" < /sys/kernel/iommu_groups/$g/reserved_regions)"
  echo "$kind $bdf iommu_group type: $(cat /sys/kernel/iommu_groups/$g/type 2>/dev/null)"
  drv=$(lnk $d/driver)
  [ "$drv" = - ] || bad "$kind $bdf starts bound to $drv, want unbound"
  [ $kind = nvme ] || continue
  echo vfio-pci > $d/driver_override && echo $bdf > /sys/bus/pci/drivers_probe
  drv=$(lnk $d/driver)
  if [ "$drv" = vfio-pci ]; then echo "$kind $bdf bound to vfio-pci: ok"; else bad "$kind $bdf driver=$drv after drivers_probe"; fi
  if [ -c /dev/vfio/$g ]; then echo "/dev/vfio/$g: ok"; else bad "/dev/vfio/$g missing"; fi
done > /tmp/smoke.out
cat /tmp/smoke.out; grep -q "^FAIL" /tmp/smoke.out && fail=1
echo "-- /dev/vfio: $(ls /dev/vfio | tr "\n" " ")"
for bdf in %(nvmes)s; do
  d=/sys/bus/pci/devices/$bdf
  [ -e $d/driver ] && echo $bdf > $d/driver/unbind
  echo > $d/driver_override
  if [ -e $d/driver ]; then bad "$bdf still bound to $(lnk $d/driver)"; else echo "$bdf unbound again"; fi
done
echo "-- dmesg (DMAR / IOMMU / vfio)"
dmesg | grep -i -e dmar -e iommu -e vfio | tail -40
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""


def vfio_checks(name):
    t = TOPOLOGIES[name]
    v = device_vars(t)
    devs = "\n".join("%s %d %s" % (bdf, node, kind) for (kind, node, _), bdf in zip(t["devices"], bdfs(t)))
    nvmes = " ".join(bdf for (kind, _, _), bdf in zip(t["devices"], bdfs(t)) if kind == "nvme")
    out = [("vfio_smoke", VFIO_SMOKE % {"devs": devs, "nvmes": nvmes})]
    out.append(("topo", "numacma topo --json > /tmp/topo.json && cat /tmp/topo.json && "
                        "numacma-vmcheck topo-match /tmp/topo.json /expect.json"))
    out += [(c, fill(cmd, v)) for c, cmd in VFIO_CHECKS + VFIO_DATA_CHECKS]
    # Last: the guest's kernel log (DMAR faults and the like), never fails.
    out.append(("vfio_dmesg", "dmesg | tail -200"))
    return out


def cmdq_check(t):
    """The command-queue benchmark across nodes (the figures mean nothing under
    TCG; what is checked is where the queue and the threads are): the driver on
    the first node with CPUs, the device on the last, the queue in every node
    with memory, the device's own first."""
    cpu_nodes = [n for n, c in enumerate(t["cpus"]) if c > 0]
    dev = cpu_nodes[-1]
    order = [dev] + [n for n, m in enumerate(t["mem"]) if m > 0 and n != dev]
    return ("cmdq", "numacma bench cmdq --quick --json > /tmp/cmdq.json && cat /tmp/cmdq.json && "
                    "numacma-vmcheck cmdq /tmp/cmdq.json %d %d %s" % (cpu_nodes[0], dev, ",".join(map(str, order))))


def checks(name):
    """[(check name, guest shell command)] for a topology."""
    t = TOPOLOGIES[name]
    if is_q35(t):
        return vfio_checks(name)
    if is_arm64(t):
        return arm64_checks(name)
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
    if name == "vm2":
        # No IOMMU in this guest (pc machine): VFIO must say so, and what to do instead.
        nvme = [b for (k, _, _), b in zip(t["devices"], bdfs(t)) if k == "nvme"][0]
        out.append(("vfio_no_iommu", "out=$(numacma nvme-selftest %s --json 2>&1); rc=$?; echo \"$out\"; "
                                     "[ $rc -eq 1 ] && echo \"$out\" | grep -q \"no IOMMU\" && "
                                     "echo \"$out\" | grep -q \"phys mode\"" % nvme))
    if name == "vm4":
        out.append(("demo", "numacma demo"))
        out.append(cmdq_check(t))
        # DmaPool (the kernel's dma_pool): blocks for a device on every node
        # and for each edu (its BDF and DMA mask), the edus writing into blocks.
        edus = " ".join("%s %s" % (bdf, mask) for (kind, _, mask), bdf in zip(t["devices"], bdfs(t))
                        if kind == "edu")
        out.append(("dmapool", "numacma-vmcheck dmapool %s" % edus))
        # A reserved pool shared by two processes: one with the (64-bit) edu,
        # the other with a device on another node that has hugepages; the edu
        # writes a buffer of each.
        devs = list(zip(t["devices"], bdfs(t)))
        edu = [(b, n, m) for (k, n, m), b in devs if k == "edu" and m == MASK64][0]
        other = [b for (k, n, m), b in devs if n != edu[1] and t["huge"][n] > 0][0]
        out.append(("shared", "mkdir -p /run /dev/hugepages && (grep -q hugetlbfs /proc/mounts || "
                              "mount -t hugetlbfs none /dev/hugepages) && numacma-vmcheck shared %s %s %s" %
                    (edu[0], edu[2], other)))
    return out


def arm64_checks(name):
    """The device-free checks of an arm64 guest (no PCI device can be put on a
    node of QEMU's virt machine booted from a device tree)."""
    t = TOPOLOGIES[name]
    # kernel: an aarch64 kernel with the guest's own per-NUMA CMA areas
    # (its log) and the SMMUv3 probed.
    out = [("kernel", "uname -a; uname -m | grep -qx aarch64 && cat /proc/cmdline && "
                      "dmesg | grep -i -e \"cma:\" -e \"smmu\" -e \"NUMA\" | head -60; "
                      "dmesg | grep -q \"arm-smmu-v3\""),
           ("topo", "numacma topo --json > /tmp/topo.json && cat /tmp/topo.json && "
                    "numacma-vmcheck topo-match /tmp/topo.json /expect.json"),
           ("placement_hugetlb", "numacma-vmcheck placement hugetlb"),
           ("placement_anon", "numacma-vmcheck placement anon")]
    for node, h in enumerate(t["huge"]):
        if h >= 4:
            out.append(("contiguity_node%d" % node, "numacma-vmcheck contiguity %d" % node))
    for node in t["exhaust_nodes"]:
        order = ",".join(map(str, nearest_order(t["dist"], node)))
        out.append(("exhaust_kernel_node%d" % node, "numacma-vmcheck exhaust %d kernel" % node))
        out.append(("exhaust_nearest_node%d" % node, "numacma-vmcheck exhaust %d nearest %s" % (node, order)))
    for node, h in enumerate(t["huge"]):
        if h == 0:
            out.append(("nohuge_node%d" % node, "numacma-vmcheck nohuge %d" % node))
    # The edu on the host bridge's node: its DMA engine writes through the
    # returned DMA addresses (start, middle, end of pernuma<N>), and into
    # DmaPool blocks.
    edus = [(bdf, node, mask) for (kind, node, mask), bdf in zip(t["devices"], bdfs(t)) if kind == "edu"]
    for bdf, node, mask in edus:
        out.append(("dma_edu_node%d" % node, "numacma-vmcheck dma %s %s" % (bdf, mask)))
    out.append(("dmapool", "numacma-vmcheck dmapool %s" % " ".join("%s %s" % (b, m) for b, _, m in edus)))
    if len(t["mem"]) >= 4:
        out.append(("demo", "numacma demo"))
        out.append(cmdq_check(t))  # the command queue of the motivating SMMUv3 across nodes
    if any(k == "nvme" for k, _, _ in t["devices"]):
        v = device_vars(t)
        out += [(fill(c, v), fill(cmd, v)) for c, cmd in ARM64_VFIO_CHECKS]
    # The README's examples (auto backing, /sys): node 0's per-NUMA area.
    out.append(("hello_cpp", "out=$(hello_cpp); rc=$?; echo \"$out\"; [ $rc -eq 0 ] && "
                             "echo \"$out\" | grep -q \"^area pernuma0 node 0 dma 0x\""))
    out.append(("hello_c", "out=$(hello_c); rc=$?; echo \"$out\"; [ $rc -eq 0 ] && "
                           "echo \"$out\" | grep -q \"^cma=16M cma_pernuma=4M: node 0 dma 0x\""))
    return out


def expect_json(name):
    t = TOPOLOGIES[name]
    devices = []
    for kind, node, _ in t["devices"]:
        devices.append("%s@%d" % (EDU if kind == "edu" else NVME, node))
    return {"nodes": list(range(len(t["mem"]))), "distances": t["dist"],
            "hugepages": {str(i): h for i, h in enumerate(t["huge"])}, "devices": devices}


def guest_trees(arch, fetch):
    """{"kernel": vmlinuz, "root": the unpacked kernel package, "busybox": path}
    of the guests of Debian architecture `arch` (amd64, arm64). The kernel is
    Debian's linux-image-<arch> unpacked by scripts/debs.sh into its cache
    (build/debs/<arch>/root: apt-get download + dpkg-deb -x, never installed,
    so the host's /boot and boot loader stay as they are); its modules are
    under root/lib/modules/<version>. busybox: busybox-static:arm64 from the
    same cache for arm64, the host's /bin/busybox (busybox-static) for amd64.
    fetch=True runs debs.sh (downloads what the cache lacks); missing entries
    are None."""
    out = {"kernel": None, "root": None, "busybox": None}
    cache = os.path.join(os.environ.get("NUMACMA_DEBS_CACHE", os.path.join(ROOT, "build", "debs")), arch)
    pkgs = ["linux-image-" + arch] + (["busybox-static"] if arch == "arm64" else [])
    if fetch:
        p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "debs.sh"), arch] + pkgs,
                           stdout=subprocess.PIPE)
        if p.returncode != 0:
            return out
        dirs = p.stdout.decode().split()
        kdir, bdir = dirs[0], (dirs[1] if len(dirs) > 1 else "")
    else:
        k = sorted(glob.glob(os.path.join(cache, "root", "linux-image-*-%s_*" % arch, ".done")))
        b = sorted(glob.glob(os.path.join(cache, "root", "busybox-static_*", ".done")))
        kdir = os.path.dirname(k[-1]) if k else ""
        bdir = os.path.dirname(b[-1]) if b else ""
    imgs = sorted(glob.glob(os.path.join(kdir, "boot", "vmlinuz-*-" + arch))) if kdir else []
    out["kernel"] = imgs[-1] if imgs else None
    out["root"] = kdir or None
    if arch == "arm64":
        bb = os.path.join(bdir, "bin", "busybox") if bdir else ""
    else:
        bb = "/bin/busybox"
    out["busybox"] = bb if bb and os.path.exists(bb) else None
    return out


def nvme_images(name, imgdir):
    """[(path, bytes)] of the raw images backing the topology's NVMe devices."""
    t = TOPOLOGIES[name]
    return [(os.path.join(imgdir, "nvme%d.img" % i), t.get("nvme_mib", 16) * MiB)
            for i, (kind, _, _) in enumerate(t["devices"]) if kind == "nvme"]


def qemu_args(name, kernel, initrd, imgdir="IMGDIR"):
    t = TOPOLOGIES[name]
    n = len(t["mem"])
    if is_arm64(t):
        # gic-version=3: the ITS remaps MSIs, which VFIO's type1 backend asks for.
        a = ["qemu-system-aarch64", "-M", "virt,iommu=smmuv3,gic-version=3", "-cpu", "cortex-a57", "-accel", "tcg",
             "-m", "%dM" % sum(t["mem"]), "-smp", str(sum(t["cpus"])), "-nographic", "-no-reboot",
             "-nic", "none"]
    else:
        a = ["qemu-system-x86_64", "-accel", "tcg", "-m", "%dM" % sum(t["mem"]),
             "-smp", str(sum(t["cpus"])), "-nographic", "-no-reboot", "-vga", "none", "-nic", "none"]
    if is_q35(t):
        # intel-iommu must come before the other -device options; without
        # intremap (needs the split irqchip) VFIO_SET_IOMMU fails.
        a += ["-machine", "q35,kernel-irqchip=split", "-device", "intel-iommu,intremap=on"]
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
    imgs = dict((i, p) for i, (p, _) in zip(
        [i for i, d in enumerate(t["devices"]) if d[0] == "nvme"], nvme_images(name, imgdir)))
    for i, (kind, node, mask) in enumerate(t["devices"]):
        if is_arm64(t):
            assert node == t["pci_node"], "arm64-virt: every device is on the host bridge's node"
            if kind == "edu":
                a += ["-device", "edu,addr=%d" % (i + 1) + (",dma_mask=%s" % mask if mask != MASK28 else "")]
            else:
                a += ["-drive", "file=%s,if=none,id=nvm%d,format=raw" % (imgs[i], i),
                      "-device", "nvme,serial=numacma%d,drive=nvm%d,addr=%d" % (i, i, i + 1)]
            continue
        if is_q35(t):
            rp = "rp%d" % i
            a += ["-device", "pxb-pcie,id=pxb%d,bus_nr=%d,numa_node=%d,bus=pcie.0" % (i, 4 * (i + 1), node),
                  "-device", "pcie-root-port,id=%s,bus=pxb%d,chassis=%d" % (rp, i, i + 1)]
            if kind == "edu":
                a += ["-device", "edu,bus=%s" % rp + (",dma_mask=%s" % mask if mask != MASK28 else "")]
            else:
                a += ["-drive", "file=%s,if=none,id=nvm%d,format=raw" % (imgs[i], i),
                      "-device", "nvme,serial=numacma%d,drive=nvm%d,bus=%s" % (i, i, rp)]
            continue
        br = "bridge%d" % i
        a += ["-device", "pxb,id=%s,bus=pci.0,bus_nr=%d,numa_node=%d" % (br, 4 * (i + 1), node)]
        if kind == "edu":
            a += ["-device", "edu,bus=%s" % br + (",dma_mask=%s" % mask if mask != MASK28 else "")]
        else:
            a += ["-device", "nvme,serial=numacma%d,bus=%s" % (i, br)]
    huge = ",".join("%d:%d" % (i, h) for i, h in enumerate(t["huge"]))
    if is_arm64(t):
        # iommu.passthrough=1: a device a driver probed (the edus: pci-stub)
        # is in an identity domain of the SMMUv3 (arm64_bind_lines()).
        return a + ["-kernel", kernel, "-initrd", initrd,
                    "-append", "console=ttyAMA0 quiet panic=-1 %s hugepagesz=2M hugepages=%s "
                               "iommu.passthrough=1" % (ARM64_KERNEL_CMA, huge)]
    a += ["-kernel", kernel, "-initrd", initrd,
          "-append", "console=ttyS0 quiet panic=-1 hugepagesz=2M hugepages=%s" % huge +
          (" intel_iommu=on" if is_q35(t) else "")]
    return a


def fdt_set_node_prop(blob, node_prefixes, prop, value):
    """The flattened device tree `blob` with a u32 property `prop` = value
    added to every node at depth 1 whose name starts with one of
    node_prefixes (e.g. "pcie@"); returns (new blob, names of those nodes)."""
    import struct
    be = lambda off: struct.unpack_from(">I", blob, off)[0]
    magic, total, off_struct, off_strings, off_rsv = (be(i * 4) for i in range(5))
    size_strings, size_struct = be(32), be(36)
    if magic != 0xd00dfeed or not off_rsv < off_struct < off_strings:
        raise RuntimeError("not a flattened device tree laid out as libfdt writes it")
    strings = bytearray(blob[off_strings:off_strings + size_strings])
    key = prop.encode() + b"\0"
    nameoff = 0
    while True:
        if strings[nameoff:nameoff + len(key)] == key and (nameoff == 0 or strings[nameoff - 1] == 0):
            break
        nameoff = strings.find(key, nameoff + 1)
        if nameoff < 0:
            nameoff = len(strings)
            strings += key
            break
    st = blob[off_struct:off_struct + size_struct]
    out, pos, depth, hit = bytearray(), 0, 0, []
    pad = lambda n: (n + 3) & ~3
    while pos < len(st):
        tok = struct.unpack_from(">I", st, pos)[0]
        if tok == 1:  # FDT_BEGIN_NODE
            end = st.index(b"\0", pos + 4)
            name = st[pos + 4:end].decode()
            nxt = pos + 4 + pad(end - pos - 4 + 1)
            out += st[pos:nxt]
            depth += 1
            if depth == 2 and any(name.startswith(p) for p in node_prefixes):
                out += struct.pack(">III", 3, 4, nameoff) + struct.pack(">I", value)
                hit.append(name)
            pos = nxt
        elif tok == 3:  # FDT_PROP
            ln = struct.unpack_from(">I", st, pos + 4)[0]
            nxt = pos + 12 + pad(ln)
            out += st[pos:nxt]
            pos = nxt
        else:
            depth -= tok == 2  # FDT_END_NODE
            out += st[pos:pos + 4]
            pos += 4
            if tok == 9:  # FDT_END
                break
    hdr = bytearray(blob[:off_struct])
    new_strings = off_struct + len(out)
    struct.pack_into(">I", hdr, 4, new_strings + len(strings))
    struct.pack_into(">I", hdr, 12, new_strings)
    struct.pack_into(">I", hdr, 32, len(strings))
    struct.pack_into(">I", hdr, 36, len(out))
    return bytes(hdr + out + strings), hit


def arm64_dtb(cmd, pci_node, path):
    """QEMU's own device tree for the machine of `cmd` (-M ...,dumpdtb),
    with numa-node-id = pci_node on the PCIe host bridge and the SMMUv3,
    written to `path`; returns `cmd` booting from it (-dtb path)."""
    dump = list(cmd)
    m = dump.index("-M") + 1
    dump[m] += ",dumpdtb=%s.qemu" % path
    p = subprocess.run(dump, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0 or not os.path.exists(path + ".qemu"):
        raise RuntimeError("qemu dumpdtb failed: " + p.stdout.decode(errors="replace"))
    blob, hit = fdt_set_node_prop(open(path + ".qemu", "rb").read(), ("pcie@", "smmuv3@"),
                                  "numa-node-id", pci_node)
    if len(hit) != 2:
        raise RuntimeError("QEMU's device tree: expected one pcie@ and one smmuv3@ node, found %s" % hit)
    with open(path, "wb") as f:
        f.write(blob)
    print("vm.py: %s: numa-node-id = <%d> added to %s" % (path, pci_node, " ".join(hit)), flush=True)
    return list(cmd) + ["-dtb", path]


def guest_modules(kernel, root, names=VFIO_MODULES):
    """[(host path, path in the initramfs)] of the modules `names` and their
    dependencies in load order, for the kernel image `kernel` whose modules
    are under root/lib/modules/<version> (root: the unpacked kernel package,
    guest_trees()["root"]); raises RuntimeError saying what is missing."""
    ver = os.path.basename(kernel)[len("vmlinuz-"):]
    base = os.path.join(root, "lib/modules", ver)
    dep_file = os.path.join(base, "modules.dep")
    if not os.path.exists(dep_file):
        raise RuntimeError("%s missing (the modules of %s; package linux-image-%s)" % (dep_file, kernel, ver))
    deps = {}
    for line in open(dep_file):
        mod, _, rest = line.partition(":")
        deps[mod.strip()] = rest.split()
    by_name = {}
    for path in deps:
        by_name[re.sub(r"\.ko(\.(xz|zst|gz))?$", "", os.path.basename(path)).replace("-", "_")] = path
    order = []

    def visit(path):
        for d in deps.get(path, []):
            visit(d)
        if path not in order:
            order.append(path)

    for m in names:
        path = by_name.get(m.replace("-", "_"))
        if path is None:
            raise RuntimeError("module %s not in %s (kernel %s built without it?)" % (m, dep_file, ver))
        visit(path)
    out = []
    for path in order:
        host = os.path.join(base, path)
        if not path.endswith(".ko"):
            raise RuntimeError("%s is compressed; busybox insmod needs an uncompressed .ko" % host)
        if not os.access(host, os.R_OK):
            raise RuntimeError("module file %s missing or unreadable" % host)
        out.append((host, os.path.join("lib/modules", ver, path)))
    return out


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


def init_script(name, modules=(), pre=()):
    """modules: initramfs paths to insmod, in order, before the checks; pre:
    shell lines run after them, before the checks."""
    lines = ["#!/bin/busybox sh",
             "/bin/busybox --install -s /bin",
             "export PATH=/bin",
             "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev",
             "echo VMTEST-START %s" % name]
    for m in modules:
        lines.append("insmod /%s && echo 'VMTEST-INSMOD %s ok' || echo 'VMTEST-INSMOD %s FAILED'" % (m, m, m))
    lines += list(pre)
    lines.append("run() { n=$1; shift; echo \"VMCHECK-BEGIN $n\"; timeout 90 sh -c \"$*\" 2>&1; "
                 "echo \"VMCHECK-END $n rc=$?\"; }")
    for check, cmd in checks(name):
        lines.append("run %s '%s'" % (check, cmd.replace("'", "'\\''")))
    lines += ["echo VMTEST-DONE", "poweroff -f", ""]
    return "\n".join(lines)


def need_tools(arm64=False):
    arch = "arm64" if arm64 else "amd64"

    def missing_now():
        tr = guest_trees(arch, fetch=shutil.which("apt-get") is not None)
        qemu = ("qemu-system-arm", "qemu-system-aarch64") if arm64 else ("qemu-system-x86", "qemu-system-x86_64")
        return [w for w, ok in ((qemu[0], shutil.which(qemu[1])),
                                ("linux-image-%s:%s (scripts/debs.sh %s)" % (arch, arch, arch), tr["kernel"]),
                                ("busybox-static" + (":arm64 (scripts/debs.sh arm64)" if arm64 else ""),
                                 tr["busybox"])) if not ok]
    missing = missing_now()
    if missing and os.geteuid() == 0:
        print("vm.py: installing " + " ".join(missing), flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "test"], check=False)
        missing = missing_now()
    return missing


def boot(args):
    arm64 = is_arm64(TOPOLOGIES[args.topology])
    missing = need_tools(arm64)
    if missing:
        print("vm.py: cannot boot: missing " + " ".join(missing) +
              " (run scripts/deps.sh test as root)")
        return 1
    extra = []  # (path in the initramfs, host file)
    trees = guest_trees("arm64" if arm64 else "amd64", fetch=False)
    kernel, busybox = trees["kernel"], trees["busybox"]
    if arm64:
        for name, path in (("hello_cpp", args.hello), ("hello_c", args.hello_c)):
            if not path or not os.path.exists(path):
                print("vm.py: cannot boot %s: --%s %s missing (the arm64 cross build)" % (
                    args.topology, name.replace("_", "-"), path))
                return 1
            extra.append(("bin/" + name, path))
        for path in (args.cli, args.vmcheck):
            if not os.path.exists(path):
                print("vm.py: cannot boot %s: %s missing (the arm64 cross build)" % (args.topology, path))
                return 1
    if not os.access(kernel, os.R_OK):
        print("vm.py: cannot read %s" % kernel)
        return 1
    modules, pre, packed = [], [], []
    try:
        if is_q35(TOPOLOGIES[args.topology]):
            modules = guest_modules(kernel, trees["root"])
            # Loaded by the data checks, not at boot (NVME_GUEST_MODULES).
            packed = [m for m in guest_modules(kernel, trees["root"], NVME_GUEST_MODULES) if m not in modules]
        elif arm64:
            # pci-stub for the edus: see arm64_bind_lines().
            names = ARM64_MODULES + (ARM64_VFIO_MODULES if any(
                k == "nvme" for k, _, _ in TOPOLOGIES[args.topology]["devices"]) else [])
            modules = guest_modules(kernel, trees["root"], names)
            pre = arm64_bind_lines(TOPOLOGIES[args.topology])
    except RuntimeError as e:
        print("vm.py: cannot boot %s: %s" % (args.topology, e))
        return 1
    d = os.path.join(args.out, args.topology)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for path, size in nvme_images(args.topology, d) if is_q35(TOPOLOGIES[args.topology]) or arm64 else []:
        open(path, "wb").close()
        os.truncate(path, size)  # sparse
    rd = lambda p: open(p, "rb").read()
    mod_entries, mod_dirs = [], []
    for host, guest in modules + packed:
        parts = guest.split("/")
        for k in range(1, len(parts)):
            if "/".join(parts[:k]) not in mod_dirs:
                mod_dirs.append("/".join(parts[:k]))
        mod_entries.append((guest, 0o100644, rd(host)))
    entries = [("bin", 0o40755, None), ("proc", 0o40755, None), ("sys", 0o40755, None),
               ("dev", 0o40755, None), ("tmp", 0o41777, None),
               ("init", 0o100755, init_script(args.topology, [g for _, g in modules], pre).encode()),
               ("bin/busybox", 0o100755, rd(busybox)),
               ("bin/numacma", 0o100755, rd(args.cli)),
               ("bin/numacma-vmcheck", 0o100755, rd(args.vmcheck)),
               ("expect.json", 0o100644, json.dumps(expect_json(args.topology)).encode()),
               ("nvme-modules", 0o100644, "".join(g + "\n" for _, g in packed).encode())]
    entries += [(p, 0o40755, None) for p in mod_dirs] + mod_entries
    entries += [(g, 0o100755, rd(h)) for g, h in extra]
    initrd = os.path.join(d, "initramfs.cpio")
    cpio_newc(entries, initrd)
    cmd = qemu_args(args.topology, kernel, initrd, d)
    if arm64:
        try:
            cmd = arm64_dtb(cmd, TOPOLOGIES[args.topology]["pci_node"], os.path.join(d, "virt.dtb"))
        except RuntimeError as e:
            print("vm.py: cannot boot %s: %s" % (args.topology, e))
            return 1
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
    b.add_argument("--hello", help="examples/hello.cpp built for the guest (arm64 guests)")
    b.add_argument("--hello-c", help="examples/hello.c built for the guest (arm64 guests)")
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
    kernel = guest_trees("arm64" if is_arm64(TOPOLOGIES[a.topology]) else "amd64", False)["kernel"]
    print(" ".join(qemu_args(a.topology, kernel or "KERNEL", "INITRD")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
