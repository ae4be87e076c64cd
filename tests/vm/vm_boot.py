"""tests/vm/vm_boot.py — `vm.py boot` and `vm.py report`: boots a topology's
guest (tests/guest/qemu.py) with its initramfs (vm_initramfs), splits the
console into one file per check and reports one check's result."""
import os
import re
import shutil
import subprocess

import devtree
import qemu
import vm_initramfs
from vm_checks import checks
from vm_topologies import TOPOLOGIES, has_nvme_images, is_arm64, kernel_variant, nvme_images, qemu_args

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def need_tools(arm64=False, debian_kernel=True):
    """What is missing to boot a guest (after scripts/deps.sh test, as root).
    debian_kernel=False: the guest boots a kernel of build_kernel.py."""
    arch = "arm64" if arm64 else "amd64"

    def missing_now():
        tr = vm_initramfs.guest_trees(arch, fetch=debian_kernel and shutil.which("apt-get") is not None)
        q = "arm64" if arm64 else "x86_64"
        return [w for w, ok in ((qemu.PACKAGE[q], shutil.which(qemu.BINARY[q])),
                                ("linux-image-%s:%s (scripts/debs.sh %s)" % (arch, arch, arch),
                                 tr["kernel"] or not debian_kernel),
                                ("busybox-static" + (":arm64 (scripts/debs.sh arm64)" if arm64 else ""),
                                 tr["busybox"])) if not ok]
    missing = missing_now()
    if missing and os.geteuid() == 0:
        print("vm.py: installing " + " ".join(missing), flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "test"], check=False)
        missing = missing_now()
    return missing


def arm64_dtb(cmd, pci_node, path):
    """`cmd` booting from QEMU's own device tree with numa-node-id = pci_node
    on the PCIe host bridge and the SMMUv3, written to `path`
    (devtree.with_pci_node(); raises its RuntimeError)."""
    cmd, hit = devtree.with_pci_node(cmd, pci_node, path)
    print("vm.py: %s: numa-node-id = <%d> added to %s" % (path, pci_node, " ".join(hit)), flush=True)
    return cmd


def boot(args):
    arm64 = is_arm64(TOPOLOGIES[args.topology])
    variant = kernel_variant(TOPOLOGIES[args.topology])
    missing = need_tools(arm64, debian_kernel=variant is None)
    if missing:
        print("vm.py: cannot boot: missing " + " ".join(missing) +
              " (run scripts/deps.sh test as root)")
        return 1
    extra = []  # (path in the initramfs, host file)
    trees = vm_initramfs.guest_trees("arm64" if arm64 else "amd64", fetch=False)
    kernel, busybox = trees["kernel"], trees["busybox"]
    if variant:
        kernel, err = vm_initramfs.custom_kernel(variant, getattr(args, "kernel_dir", None))
        if err:
            print("vm.py: cannot boot %s: %s" % (args.topology, err))
            return 1
        print("vm.py: %s boots the %s kernel %s (drivers built in, no modules)" % (
            args.topology, variant, kernel), flush=True)
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
    if TOPOLOGIES[args.topology].get("dpdk"):
        if not args.dpdkcheck or not os.path.exists(args.dpdkcheck):
            print("vm.py: cannot boot %s: --dpdkcheck %s missing" % (args.topology, args.dpdkcheck))
            return 1
        extra.append(("bin/numacma-dpdkcheck", args.dpdkcheck))
    if not os.access(kernel, os.R_OK):
        print("vm.py: cannot read %s" % kernel)
        return 1
    topo = TOPOLOGIES[args.topology]
    try:
        modules, packed, pre = vm_initramfs.modules_of(topo, kernel, trees["root"])
    except RuntimeError as e:
        print("vm.py: cannot boot %s: %s" % (args.topology, e))
        return 1
    d = os.path.join(args.out, args.topology)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for path, size in nvme_images(args.topology, d) if has_nvme_images(topo) else []:
        open(path, "wb").close()
        os.truncate(path, size)  # sparse
    initrd = os.path.join(d, "initramfs.cpio")
    vm_initramfs.write(initrd, args.topology, busybox, args.cli, args.vmcheck, modules, packed, pre, extra)
    cmd = qemu_args(args.topology, kernel, initrd, d)
    if arm64:
        try:
            cmd = arm64_dtb(cmd, topo["pci_node"], os.path.join(d, "virt.dtb"))
        except RuntimeError as e:
            print("vm.py: cannot boot %s: %s" % (args.topology, e))
            return 1
    print("$ " + " ".join(cmd), flush=True)
    res = qemu.run(cmd, args.timeout)
    console, timed_out, wall = res.console, res.timed_out, res.wall
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
