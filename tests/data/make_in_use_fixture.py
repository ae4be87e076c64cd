#!/usr/bin/env python3
"""Writes tests/data/in-use/: a machine whose PCI devices are in use in every
way `numacma vfio bind` must refuse (src/vfio/in_use.hpp), and some that are
free. Run from anywhere; the tree is committed (git keeps the links), this
script documents and regenerates it.

  sys/                 what the kernel's sysfs shows, laid out as the kernel
                       lays it out: device directories under devices/ (each
                       PCI function behind a root port), bus/pci/devices/<bdf>
                       and class/{block,net}/<name> links into them, a
                       `subsystem` link in every device directory, partitions
                       inside their disk, holders/ and slaves/ links, and the
                       controller's `device` link back up (a cycle for anyone
                       who follows links). Git keeps no empty directory: an
                       empty holders/ is absent in the committed tree, which
                       the reader takes for "no holders" as it must
  proc/                self/mountinfo, swaps, net/route, net/ipv6_route with
                       the root file system on nvme0n1p2
  proc-root-on-lvm/    the same machine booted with / on dm-1, an LVM volume
                       over md127, the RAID of sda1

The devices (each has an IOMMU group and a driver; there is no vfio-pci
driver, so a bind that gets past the in-use check stops at "vfio-pci is not
loaded" without writing anything):

  0000:01:00.0  nvme0: nvme0n1p1 /boot/efi, nvme0n1p2 / (root), nvme0n1p3 swap
  0000:02:00.0  nvme1: nvme1n1p1 held by dm-0 (LVM vg-srv), dm-0 on /srv
  0000:03:00.0  nvme2: nvme2n1 with a partition, neither used: free
  0000:04:00.0  nvme3: a path nvme3c3n1 of the multipath head nvme3n1
                (devices/virtual/nvme-subsystem), nvme3n1p1 on /data and, by
                a bind mount, on "/srv/nfs export" (escaped \\040)
  0000:05:00.0  ahci: sda, sda1 held by md127 (software RAID), md127 by dm-1
  0000:06:00.0  nvme4: btrfs on nvme4n1, mountinfo shows 0:45 and the source
  0000:07:00.0  ixgbe: enp7s0 up, addresses, routes
  0000:07:00.1  ixgbe: enp7s0f1 down, no address, no route: free
  0000:08:00.0  e1000e: enp8s0 down but with an address (the test passes
                getifaddrs' answer: 198.51.100.7) and no route
  0000:09:00.0  nvme5: nvme5n1, the whole disk used as swap
  0000:0a:00.0  a GPU (no block device, no interface): free
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "in-use")
SYS = os.path.join(ROOT, "sys")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def up(path):
    """The ../ that leads from the directory `path` (relative to sys/) to sys/."""
    return "../" * path.count("/") + "../"


def device_dir(path, subsystem):
    """A device directory (relative to sys/) with its subsystem link."""
    os.makedirs(os.path.join(SYS, path), exist_ok=True)
    link(os.path.join(SYS, path, "subsystem"), up(path) + subsystem)


PORTS = {}


def pci(bdf, driver, group, cls):
    port = "0000:00:%02x.0" % (len(PORTS) + 1) if bdf[:10] not in PORTS else PORTS[bdf[:10]]
    PORTS[bdf[:10]] = port
    path = "devices/pci0000:00/%s/%s" % (port, bdf)
    device_dir(path, "bus/pci")
    for f, v in (("vendor", "0x8086"), ("device", "0x0001"), ("class", "0x%06x" % cls), ("numa_node", "0")):
        write(os.path.join(SYS, path, f), v + "\n")
    link(os.path.join(SYS, "bus/pci/devices", bdf), "../../../" + path)
    link(os.path.join(SYS, path, "iommu_group"), up(path) + "kernel/iommu_groups/%d" % group)
    link(os.path.join(SYS, "kernel/iommu_groups/%d/devices" % group, bdf), "../../../../" + path)
    link(os.path.join(SYS, path, "driver"), up(path) + "bus/pci/drivers/" + driver)
    link(os.path.join(SYS, "bus/pci/drivers", driver, bdf), "../../../../" + path)
    return path


def block(path, dev, holders=(), partition=None):
    """A disk or partition at `path` (relative to sys/)."""
    device_dir(path, "class/block")
    name = os.path.basename(path)
    write(os.path.join(SYS, path, "dev"), dev + "\n")
    write(os.path.join(SYS, path, "size"), "2097152\n")
    if partition is not None:
        write(os.path.join(SYS, path, "partition"), "%d\n" % partition)
    os.makedirs(os.path.join(SYS, path, "holders"), exist_ok=True)
    os.makedirs(os.path.join(SYS, path, "slaves"), exist_ok=True)
    os.makedirs(os.path.join(SYS, path, "queue"), exist_ok=True)
    write(os.path.join(SYS, path, "queue", "logical_block_size"), "512\n")
    link(os.path.join(SYS, "class/block", name), "../../" + path)
    for h in holders:
        hpath = "devices/virtual/block/" + h
        link(os.path.join(SYS, path, "holders", h), up(path + "/holders") + hpath)
    return path


def virtual_block(name, dev, slaves, holders=()):
    path = block("devices/virtual/block/" + name, dev, holders)
    for s in slaves:
        link(os.path.join(SYS, path, "slaves", s), up(path + "/slaves") + "class/block/" + s)
    return path


def nvme(bdf, ctrl, group, namespaces):
    """namespaces: [(name, dev, [(partition name, dev, holders)], holders)]."""
    dev = pci(bdf, "nvme", group, 0x010802)
    c = dev + "/nvme/" + ctrl
    device_dir(c, "class/nvme")
    write(os.path.join(SYS, c, "dev"), "241:%s\n" % ctrl[4:])
    link(os.path.join(SYS, c, "device"), "../../../" + bdf)  # up to the PCI function: a cycle
    for ns, ns_dev, parts, holders in namespaces:
        p = block(c + "/" + ns, ns_dev, holders)
        os.makedirs(os.path.join(SYS, p, "mq/0/cpu0"), exist_ok=True)
        for i, (part, part_dev, part_holders) in enumerate(parts, 1):
            block(p + "/" + part, part_dev, part_holders, partition=i)


def net(bdf, driver, group, ifname, flags, operstate):
    dev = pci(bdf, driver, group, 0x020000)
    n = dev + "/net/" + ifname
    device_dir(n, "class/net")
    write(os.path.join(SYS, n, "flags"), "0x%x\n" % flags)
    write(os.path.join(SYS, n, "operstate"), operstate + "\n")
    link(os.path.join(SYS, n, "device"), "../../../" + bdf)
    link(os.path.join(SYS, "class/net", ifname), "../../" + n)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(os.path.join(SYS, "class/block"))

    nvme("0000:01:00.0", "nvme0", 11, [("nvme0n1", "259:0", [
        ("nvme0n1p1", "259:1", ()), ("nvme0n1p2", "259:2", ()), ("nvme0n1p3", "259:3", ())], ())])
    nvme("0000:02:00.0", "nvme1", 12, [("nvme1n1", "259:4", [("nvme1n1p1", "259:5", ("dm-0",))], ())])
    virtual_block("dm-0", "253:0", ["nvme1n1p1"])
    write(os.path.join(SYS, "devices/virtual/block/dm-0/dm/name"), "vg-srv\n")
    nvme("0000:03:00.0", "nvme2", 13, [("nvme2n1", "259:6", [("nvme2n1p1", "259:7", ())], ())])
    # Native NVMe multipath: the PCI function holds the hidden path; the
    # head the system uses lives under the subsystem.
    nvme("0000:04:00.0", "nvme3", 14, [("nvme3c3n1", "259:8", [], ())])
    write(os.path.join(SYS, "devices/pci0000:00/0000:00:04.0/0000:04:00.0/nvme/nvme3/nvme3c3n1/hidden"), "1\n")
    head = "devices/virtual/nvme-subsystem/nvme-subsys3/nvme3n1"
    block(head, "259:9")
    block(head + "/nvme3n1p1", "259:10", partition=1)
    link(os.path.join(SYS, head, "multipath", "nvme3c3n1"),
         up(head + "/multipath") + "class/block/nvme3c3n1")
    # AHCI: the disk under the SCSI host, sda1 in a RAID, the RAID under LVM.
    ahci = pci("0000:05:00.0", "ahci", 15, 0x010601)
    scsi = ahci + "/ata1/host0/target0:0:0/0:0:0:0"
    device_dir(ahci + "/ata1", "bus/platform")
    device_dir(scsi, "bus/scsi")
    block(scsi + "/block/sda", "8:0")
    block(scsi + "/block/sda/sda1", "8:1", ("md127",), partition=1)
    virtual_block("md127", "9:127", ["sda1"], ("dm-1",))
    virtual_block("dm-1", "253:1", ["md127"])
    write(os.path.join(SYS, "devices/virtual/block/dm-1/dm/name"), "vg-root\n")
    nvme("0000:06:00.0", "nvme4", 16, [("nvme4n1", "259:11", [], ())])
    net("0000:07:00.0", "ixgbe", 17, "enp7s0", 0x1003, "up")
    net("0000:07:00.1", "ixgbe", 17, "enp7s0f1", 0x1002, "down")
    net("0000:08:00.0", "e1000e", 18, "enp8s0", 0x1002, "down")
    nvme("0000:09:00.0", "nvme5", 19, [("nvme5n1", "259:12", [], ())])
    pci("0000:0a:00.0", "amdgpu", 20, 0x030000)
    net_lo = "devices/virtual/net/lo"
    device_dir(net_lo, "class/net")
    write(os.path.join(SYS, net_lo, "flags"), "0x9\n")
    link(os.path.join(SYS, "class/net/lo"), "../../" + net_lo)

    mountinfo = [
        "21 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro",
        "22 21 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
        "23 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw",
        "24 21 259:1 / /boot/efi rw,relatime shared:29 - vfat /dev/nvme0n1p1 rw,fmask=0077",
        "25 21 253:0 / /srv rw,relatime shared:30 - xfs /dev/mapper/vg-srv rw",
        "26 21 259:10 / /data rw,relatime shared:31 - ext4 /dev/nvme3n1p1 rw",
        "27 21 0:45 / /var/lib/data rw,relatime shared:32 - btrfs /dev/nvme4n1 rw,space_cache=v2",
        "28 25 259:10 /export /srv/nfs\\040export rw,relatime shared:31 - ext4 /dev/nvme3n1p1 rw",
        "29 21 0:25 / /run rw,nosuid,nodev shared:13 - tmpfs tmpfs rw,mode=755",
    ]
    swaps = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
             "/dev/nvme0n1p3                          partition\t8388604\t\t0\t\t-2\n"
             "/dev/nvme5n1                            partition\t4194300\t\t0\t\t-3\n"
             "/srv/swapfile                           file\t\t1048572\t\t0\t\t-4\n")
    # /proc/net/route prints each __be32 with %08X of its in-memory value: on
    # a little-endian host 192.0.2.0 reads 000200C0.
    route = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
             "enp7s0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
             "enp7s0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n")
    ipv6_route = (
        "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000100 00000001 00000000 00000001   enp7s0\n"
        "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000100 00000001 00000000 00000001   enp7s0\n"
        "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo\n")
    for proc, mi in (("proc", mountinfo),
                     ("proc-root-on-lvm", ["21 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw"] +
                      mountinfo[1:])):
        p = os.path.join(ROOT, proc)
        write(os.path.join(p, "self/mountinfo"), "\n".join(mi) + "\n")
        write(os.path.join(p, "swaps"), swaps)
        write(os.path.join(p, "net/route"), route)
        write(os.path.join(p, "net/ipv6_route"), ipv6_route)
    # As git will keep it: no empty directory.
    for d, subdirs, files in os.walk(ROOT, topdown=False):
        if not os.listdir(d):
            os.rmdir(d)
    write(os.path.join(ROOT, "README.md"), "# in-use\n\n```\n" + __doc__.split("\n\n", 1)[1] +
          "```\n\nGenerated by ../make_in_use_fixture.py.\n")


main()
