"""tests/vm/vm_initramfs.py — what goes into a guest's initramfs: Debian's
kernel and busybox (guest_trees()), the kernel modules a guest loads
(guest_modules()), its /init (init_script(): the checks of vm_checks, each
between VMCHECK-BEGIN/END markers) and the image itself (write())."""
import glob
import json
import os
import re
import subprocess

import cpio
from vm_checks import checks
from vm_topologies import bdfs, expect_json, is_arm64, is_q35, kernel_variant

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Modules the arm64 guests load (from the arm64 kernel package's tree):
# pci-stub for the edus, VFIO where there is an NVMe (irqbypass is built in).
ARM64_MODULES = ["pci-stub"]
ARM64_VFIO_MODULES = ["vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci"]

# Modules the q35-iommu guests load (with their dependencies, from the unpacked
# kernel package's lib/modules/<version>/modules.dep: guest_trees()), in
# dependency order.
VFIO_MODULES = ["irqbypass", "vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci"]

# Modules packed into the q35-iommu guests' initramfs but not loaded at boot
# (every check before the data checks wants its NVMe without a driver):
# the kernel's own NVMe driver and ext4 (which mounts ext2; its mount asks
# the crypto API for crc32c, which no request_module can load here), loaded
# by the first data check, in the order of /nvme-modules.
NVME_GUEST_MODULES = ["nvme", "crc32c_generic", "ext4"]


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


def kernel_cache_dir(kernel_dir=None):
    """Where tests/kernel/build_kernel.py caches its kernels: kernel_dir, else
    $NUMACMA_KERNEL_CACHE_DIR, else build/kernel (as the build script)."""
    return kernel_dir or os.environ.get("NUMACMA_KERNEL_CACHE_DIR") or os.path.join(ROOT, "build", "kernel")


def custom_kernel(variant, kernel_dir=None):
    """(bzImage, None) of tests/kernel/build_kernel.py --variant `variant`
    (its manifest kernel_dir/current-<variant>.json), or (None, what is wrong)."""
    d = kernel_cache_dir(kernel_dir)
    path = os.path.join(d, "current-%s.json" % variant)
    build = "tests/kernel/build_kernel.py --variant %s --out %s (the kernel_%s_build test)" % (variant, d, variant)
    if not os.path.exists(path):
        return None, "%s missing: run %s first" % (path, build)
    m = json.load(open(path))
    if not os.access(m.get("bzImage", ""), os.R_OK):
        return None, "%s (from %s) missing: run %s" % (m.get("bzImage"), path, build)
    return m["bzImage"], None


def unbind_nvme_lines(topo):
    """/init lines that take every NVMe controller from a built-in nvme driver
    (it probed them at boot), so that the checks start with no driver on any
    device as with Debian's kernel, whose nvme module is loaded by the data
    checks only (their nvme_up() probes the controller again)."""
    out = []
    for (kind, _, _), bdf in zip(topo["devices"], bdfs(topo)):
        if kind != "nvme":
            continue
        d = "/sys/bus/pci/devices/" + bdf
        out.append("if [ -e %s/driver ]; then drv=$(basename $(readlink %s/driver)); echo %s > %s/driver/unbind && "
                   "echo \"VMTEST-UNBIND %s from $drv ok\" || echo \"VMTEST-UNBIND %s from $drv FAILED\"; fi"
                   % (d, d, bdf, d, bdf, bdf))
    return out


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


def modules_of(topo, kernel, root):
    """(modules /init loads at boot, modules only packed, /init lines run
    after them) of a topology's guest: [(host path, path in the initramfs)]
    for the modules (guest_modules(); raises its RuntimeError). A topology
    with its own kernel (kernel_variant()) has every driver built in: no
    modules; /init unbinds the NVMe controllers (unbind_nvme_lines())."""
    modules, packed, pre = [], [], []
    if kernel_variant(topo):
        # our own kernel: every driver built in, nothing to load
        pre = unbind_nvme_lines(topo)
    elif is_q35(topo):
        modules = guest_modules(kernel, root)
        # Loaded by the data checks, not at boot (NVME_GUEST_MODULES).
        packed = [m for m in guest_modules(kernel, root, NVME_GUEST_MODULES) if m not in modules]
    elif is_arm64(topo):
        # pci-stub for the edus: see arm64_bind_lines().
        names = ARM64_MODULES + (ARM64_VFIO_MODULES if any(k == "nvme" for k, _, _ in topo["devices"]) else [])
        modules = guest_modules(kernel, root, names)
        pre = arm64_bind_lines(topo)
    return modules, packed, pre


def write(path, name, busybox, cli, vmcheck, modules=(), packed=(), pre=(), extra=()):
    """The initramfs of topology `name` at `path`: busybox, the two programs
    (host files cli and vmcheck), /init, /expect.json, the modules
    (modules_of()), /nvme-modules (the packed ones' paths, in load order) and
    extra [(path in the initramfs, host file)] programs."""
    rd = lambda p: open(p, "rb").read()
    mod_entries, mod_dirs = [], []
    for host, guest in list(modules) + list(packed):
        parts = guest.split("/")
        for k in range(1, len(parts)):
            if "/".join(parts[:k]) not in mod_dirs:
                mod_dirs.append("/".join(parts[:k]))
        mod_entries.append((guest, 0o100644, rd(host)))
    entries = [("bin", 0o40755, None), ("proc", 0o40755, None), ("sys", 0o40755, None),
               ("dev", 0o40755, None), ("tmp", 0o41777, None),
               ("init", 0o100755, init_script(name, [g for _, g in modules], pre).encode()),
               ("bin/busybox", 0o100755, rd(busybox)),
               ("bin/numacma", 0o100755, rd(cli)),
               ("bin/numacma-vmcheck", 0o100755, rd(vmcheck)),
               ("expect.json", 0o100644, json.dumps(expect_json(name)).encode()),
               ("nvme-modules", 0o100644, "".join(g + "\n" for _, g in packed).encode())]
    entries += [(p, 0o40755, None) for p in mod_dirs] + mod_entries
    entries += [(g, 0o100755, rd(h)) for g, h in extra]
    cpio.cpio_newc(entries, path)
