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
  vm.py kernels                                "<topology> <variant>" per line: the guests
                                               that boot a kernel of tests/kernel/build_kernel.py
                                               --variant <variant> (for CMake)

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

iommufd2 is vfio2's guest on our own kernel (kernel="vfio"): Linux 6.12 from
Debian's linux-source-6.12 built by tests/kernel/build_kernel.py --variant vfio
(tests/kernel/kernel-vfio.config: vfio, vfio-pci, type1, NVMe built in, plus
IOMMUFD and the VFIO device cdev), read from --kernel-dir (build/kernel)/
current-vfio.json; vfio2's checks and iommufd_cdev.

Each guest run is bounded (--timeout, default 240 s) and killed past it.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in tests/vm or tests/guest
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "guest")]
from vm_boot import boot, report  # noqa: E402
from vm_checks import checks  # noqa: E402
from vm_initramfs import custom_kernel, guest_trees  # noqa: E402
from vm_topologies import TOPOLOGIES, is_arm64, kernel_variant, qemu_args  # noqa: E402


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
    b.add_argument("--dpdkcheck", help="numacma-dpdkcheck (the dpdk guests)")
    b.add_argument("--kernel-dir", help="tests/kernel/build_kernel.py's cache, for the guests that boot "
                                        "a kernel of it (default: $NUMACMA_KERNEL_CACHE_DIR or build/kernel)")
    r = sub.add_parser("report")
    r.add_argument("topology", choices=sorted(TOPOLOGIES))
    r.add_argument("check")
    r.add_argument("--out", required=True)
    q = sub.add_parser("qemu-args")
    q.add_argument("topology", choices=sorted(TOPOLOGIES))
    q.add_argument("--kernel-dir")
    sub.add_parser("kernels")
    a = ap.parse_args()
    if a.cmd == "list":
        for t in sorted(TOPOLOGIES):
            for c, _ in checks(t):
                print(t, c)
        return 0
    if a.cmd == "kernels":
        for t in sorted(TOPOLOGIES):
            if kernel_variant(TOPOLOGIES[t]):
                print(t, kernel_variant(TOPOLOGIES[t]))
        return 0
    if a.cmd == "boot":
        return boot(a)
    if a.cmd == "report":
        return report(a)
    if kernel_variant(TOPOLOGIES[a.topology]):
        kernel = custom_kernel(kernel_variant(TOPOLOGIES[a.topology]), a.kernel_dir)[0]
    else:
        kernel = guest_trees("arm64" if is_arm64(TOPOLOGIES[a.topology]) else "amd64", False)["kernel"]
    print(" ".join(qemu_args(a.topology, kernel or "KERNEL", "INITRD")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
