"""tests/vm/vm_topologies.py — the guests of vm.py: their NUMA nodes,
distances, hugepages and PCI devices, the devices' guest BDFs, the topology
the guest must see (/expect.json) and the QEMU command line of each (built by
tests/guest/qemu.py, the launcher shared with tests/kernel)."""
import os

import qemu
from numa import arm64_4n, arm64_seed_4n, epyc_8n

MiB = 1 << 20
EDU, NVME, VIRTIO_NET, E1000E = "0x1234:0x11e8", "0x1b36:0x10", "0x1af4:0x1041", "0x8086:0x10d3"
MASK28, MASK64 = "0xfffffff", "0xffffffffffffffff"


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
    # iommufd2: vfio2's machine, devices and checks on our own kernel
    # (kernel="vfio": tests/kernel/build_kernel.py --variant vfio, from
    # linux-source-6.12 with kernel-vfio.config: vfio, vfio-pci, type1, NVMe
    # built in, plus IOMMUFD (/dev/iommu) and the VFIO device cdev
    # (/dev/vfio/devices/vfioN), which Debian's kernels lack); one check more,
    # iommufd_cdev (vm_vfio.IOMMUFD_CHECK).
    "iommufd2": dict(
        machine="q35-iommu", nvme_mib=16, kernel="vfio",
        mem=[512, 2560], cpus=[1, 1], dist=[[10, 21], [21, 10]], huge=[16, 528],
        devices=[("nvme", 0, None), ("nvme", 1, None), ("edu", 1, MASK64)]),
    # noiommu2: no IOMMU at all (QEMU's pc machine), our own kernel
    # (kernel="vfio", built with VFIO_NOIOMMU) booted with
    # vfio.enable_unsafe_noiommu_mode=1 (noiommu=True): VFIO's no-IOMMU mode,
    # the NVMe selftest with physical addresses from hugetlb areas
    # (vm_vfio.noiommu_checks()). The controller on node 1.
    "noiommu2": dict(
        kernel="vfio", noiommu=True, nvme_mib=16,
        mem=[512, 1024], cpus=[1, 1], dist=[[10, 21], [21, 10]], huge=[16, 16],
        devices=[("nvme", 1, None)]),
    # DPDK (machine q35-iommu, dpdk=True): two virtio-net devices on two
    # nodes, joined by QEMU's hub, bound to vfio-pci; DPDK's net_virtio PMD
    # on numacma's memory (tests/vm/guest/dpdk_check.cpp); and two e1000e on
    # the two nodes, joined by a hub of their own, for DPDK's net_e1000_em,
    # which allocates its rings at queue setup (on the socket it is given). Hugepages on both
    # nodes for DPDK's own memory; the CPU model has SSE4.2 (Debian's DPDK
    # is built for corei7).
    "dpdk2": dict(
        machine="q35-iommu", dpdk=True, mem=[768, 768], cpus=[1, 1], dist=[[10, 21], [21, 10]],
        huge=[40, 40], devices=[("virtio-net", 0, None), ("virtio-net", 1, None),
                                ("e1000e", 0, None), ("e1000e", 1, None)]),
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

# The arm64 guests' own kernel command line: the kernel reserves its per-NUMA
# areas (pernuma0..N-1 at the top of each node) and the default one.
ARM64_KERNEL_CMA = "cma=64M cma_pernuma=16M"


def is_q35(topo):
    return topo.get("machine") == "q35-iommu"


def is_arm64(topo):
    return topo.get("machine") == "arm64-virt"


def has_nvme_images(topo):
    """The NVMe controllers have namespaces (nvme_images()): the VFIO guests."""
    return is_q35(topo) or is_arm64(topo) or "nvme_mib" in topo


def kernel_variant(topo):
    """The variant of tests/kernel/build_kernel.py whose kernel the guest boots
    (all its drivers built in: no modules), or None: Debian's image."""
    return topo.get("kernel")


def arch_of(topo):
    return "arm64" if is_arm64(topo) else "x86_64"


def bdfs(topo):
    """Guest BDF of each device (qemu.bdfs(): each device behind its own
    bridge on its node, bridge i with bus_nr 4*(i+1); arm64-virt: device i on
    the root bus pcie.0, slot i+1, no bridges)."""
    return qemu.bdfs(arch_of(topo), len(topo["devices"]))


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


def expect_json(name):
    t = TOPOLOGIES[name]
    devices = []
    for kind, node, _ in t["devices"]:
        devices.append("%s@%d" % ({"edu": EDU, "nvme": NVME, "e1000e": E1000E}.get(kind, VIRTIO_NET), node))
    return {"nodes": list(range(len(t["mem"]))), "distances": t["dist"],
            "hugepages": {str(i): h for i, h in enumerate(t["huge"])}, "devices": devices}


def nvme_images(name, imgdir):
    """[(path, bytes)] of the raw images backing the topology's NVMe devices."""
    t = TOPOLOGIES[name]
    return [(os.path.join(imgdir, "nvme%d.img" % i), t.get("nvme_mib", 16) * MiB)
            for i, (kind, _, _) in enumerate(t["devices"]) if kind == "nvme"]


def qemu_args(name, kernel, initrd, imgdir="IMGDIR"):
    """The topology's QEMU command line (qemu.command()): on arm64 every
    device is on the host bridge's node (pci_node; vm_boot writes it into
    the device tree); q35-iommu: NVMe controllers backed by nvme_images()."""
    t = TOPOLOGIES[name]
    arch = arch_of(t)
    imgs = iter(p for p, _ in nvme_images(name, imgdir))
    devices = []
    for kind, node, mask in t["devices"]:
        if is_arm64(t):
            assert node == t["pci_node"], "arm64-virt: every device is on the host bridge's node"
        image = next(imgs) if kind == "nvme" and has_nvme_images(t) else None
        devices.append((kind, node, mask, image))
    huge = ",".join("%d:%d" % (i, h) for i, h in enumerate(t["huge"]))
    if is_arm64(t):
        # iommu.passthrough=1: a device a driver probed (the edus: pci-stub)
        # is in an identity domain of the SMMUv3 (vm_initramfs.arm64_bind_lines()).
        append = "quiet panic=-1 %s hugepagesz=2M hugepages=%s iommu.passthrough=1" % (ARM64_KERNEL_CMA, huge)
    else:
        append = "quiet panic=-1 hugepagesz=2M hugepages=%s" % huge + (" intel_iommu=on" if is_q35(t) else "")
        if t.get("noiommu"):  # vfio is built in: its parameter is set on the command line
            append += " vfio.enable_unsafe_noiommu_mode=1"
    return qemu.command(arch, t["mem"], t["dist"], kernel, initrd, append, cpus=t["cpus"],
                        iommu=is_q35(t) or is_arm64(t), devices=devices,
                        cpu_model="max" if t.get("dpdk") else None)
