"""tests/vm/vm_checks.py — the guest checks of every topology: (check name,
guest shell command) in the order the guest runs them; each check is its own
ctest test vm_<topo>_<check> (`vm.py list`)."""
from vm_topologies import MASK64, TOPOLOGIES, bdfs, device_vars, fill, is_arm64, is_q35, nearest_order
from vm_vfio import ARM64_VFIO_CHECKS, noiommu_checks, vfio_checks


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


# The DPDK guest (dpdk2): both virtio-net ports bound to vfio-pci, hugetlbfs
# for DPDK's own memory, then numacma-dpdkcheck (tests/vm/guest/dpdk_check.cpp):
# 10,000 frames port 0 -> port 1, every payload checked, each port's mbufs on
# its node and in its node's area; again with a 32-bit mask on port 1, and with
# port 1's mask below its node's area (A8: the default area serves it instead);
# and once on a reserved pool, seen by `numacma status`.
DPDK_CHECKS = [
    ("dpdk_bind", "numacma vfio bind {virtio-net0} && numacma vfio bind {virtio-net1} && "
                  "numacma vfio bind {e1000e0} && numacma vfio bind {e1000e1} && "
                  "mkdir -p /dev/hugepages /var/run && mount -t hugetlbfs none /dev/hugepages"),
    ("dpdk_fwd", "numacma-dpdkcheck {virtio-net0} {virtio-net0_node} {virtio-net1} {virtio-net1_node} 10000"),
    ("dpdk_mask32", "numacma-dpdkcheck {virtio-net0} {virtio-net0_node} {virtio-net1} {virtio-net1_node} "
                    "2000 --mask32 1"),
    ("dpdk_mask_below_area", "numacma-dpdkcheck {virtio-net0} {virtio-net0_node} {virtio-net1} {virtio-net1_node} "
                             "2000 --mask-below-area 1"),
    # A reserved pool, attached by the DPDK program: `numacma status` (the
    # reservation's state) counts each port's mbufs in its node's area.
    ("dpdk_status", "numacma reserve dpdk --backing anon cma=16M cma_pernuma=48M && "
                    "numacma-dpdkcheck {virtio-net0} {virtio-net0_node} {virtio-net1} {virtio-net1_node} "
                    "2000 --pool dpdk && numacma status dpdk && numacma release dpdk"),
    # net_e1000_em allocates each queue's ring at queue setup, on the socket
    # it is given: numacma's port heap, so the rings are in the port's node's
    # area and counted there.
    ("dpdk_e1000e_rings", "numacma-dpdkcheck {e1000e0} {e1000e0_node} {e1000e1} {e1000e1_node} 2000"),
]


def checks(name):
    """[(check name, guest shell command)] for a topology."""
    t = TOPOLOGIES[name]
    if t.get("dpdk"):
        v = device_vars(t)
        return [(n, fill(cmd, v)) for n, cmd in DPDK_CHECKS]
    if t.get("noiommu"):
        return noiommu_checks(name)
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
