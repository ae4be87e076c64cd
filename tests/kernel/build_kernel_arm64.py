#!/usr/bin/env python3
"""tests/kernel/build_kernel_arm64.py — what the arm64 kernel oracle boots.

  build_kernel_arm64.py [--out build/kernel] [--jobs 2] [--force]

The guest kernel is Debian's own arm64 kernel (linux-image-6.1.0-N-arm64, the
one a Debian arm64 server runs); only the test module is built here, for it:
  1. the version: that of the installed linux-source-6.1 (V); the arm64 image
     of the same version is what `linux-image-arm64:arm64=V` depends on
     (linux-image-6.1.0-N-arm64, uname -r 6.1.0-N-arm64);
  2. linux-image-6.1.0-N-arm64:arm64=V, linux-headers-6.1.0-N-arm64:arm64=V
     (its .config and Module.symvers) and busybox-static:arm64, fetched and
     unpacked by scripts/debs.sh (apt-get download, dpkg-deb -x; nothing is
     installed) into its cache, build/debs/arm64/root/, which the arm64
     guests of tests/vm share;
  3. `make modules_prepare` (ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) of
     /usr/src/linux-source-6.1.tar.xz with that .config, KERNELVERSION=6.1.0-N
     LOCALVERSION=-arm64 (include/config/kernel.release = uname -r), then the
     kernel's Module.symvers copied in; the options Kconfig changed because the
     host's tools differ (compiler name, pahole, the 32-bit compat vDSO) are
     printed, any other change fails the build;
  4. the test module (module/) out of tree; its vermagic is checked against a
     module of Debian's image (insmod refuses a mismatch);
  5. kdiff_runner (guest/) statically linked with aarch64-linux-gnu-gcc.

Cached under OUT/arm64/ (OUT is shared with build_kernel.py, which keeps out
of this folder; the packages are in scripts/debs.sh's cache):
  src-<source version>/           the unpacked linux-source-6.1
  obj-<key>/                      modules_prepare's output (O=); key: V, the
                                  recipe below and the cross compiler's version
  obj-<key>/mod-<module key>/     the module; key: obj key + module source
  runner-<key>/kdiff_runner       key: its source + the cross compiler's version
  current.json                    what the tests boot
A step whose output exists for its key is skipped; other versions are removed
after a rebuild. Exit 0 when everything is there, 1 otherwise.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import build_kernel as bk  # noqa: E402  (say, sha, run, the dependency check)

bk.NAME = "build_kernel_arm64"
say, sha, run = bk.say, bk.sha, bk.run
TARBALL = "/usr/src/linux-source-6.1.tar.xz"
SOURCE_PKG = "linux-source-6.1"
MODULE_DIR = os.path.join(HERE, "module")
RUNNER_SRC = os.path.join(HERE, "guest", "kdiff_runner.c")
CROSS = "aarch64-linux-gnu-"
RECIPE = "debian-config;modules_prepare;KERNELVERSION+LOCALVERSION;Module.symvers;ARCH=arm64;v1"
TOOLS = [("make", "make"), (CROSS + "gcc", "gcc-aarch64-linux-gnu"), ("bc", "bc"), ("flex", "flex"),
         ("bison", "bison"), ("xz", "xz-utils"), ("perl", "perl"), ("dpkg-deb", "dpkg"),
         ("apt-get", "apt"), ("modinfo", "kmod")]
HEADERS = [("/usr/include/gelf.h", "libelf-dev"), ("/usr/include/openssl/opensslv.h", "libssl-dev")]
# .config options that modules_prepare may change on this host without changing
# the module's ABI: the compiler's name, pahole (BTF), the 32-bit compat vDSO
# (it needs an arm-linux-gnueabihf compiler).
CONFIG_MAY_DIFFER = re.compile(r"^CONFIG_(CC_VERSION_TEXT|PAHOLE_\w+|\w*BTF\w*|\w*COMPAT_VDSO)$")


def missing_deps():
    miss = bk.missing_packages(TOOLS, HEADERS, TARBALL, SOURCE_PKG)
    if "arm64" not in subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                                     text=True).stdout.split():
        miss.append("(dpkg architecture arm64)")
    return sorted(set(miss))


def ensure_deps():
    return bk.ensure_deps(missing_deps)


def dpkg_version(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ""


def image_package(ver, log):
    """linux-image-6.1.0-N-arm64, the image that linux-image-arm64:arm64=ver depends on."""
    out = run(["apt-cache", "show", "linux-image-arm64:arm64=" + ver], log, capture=True)
    m = re.search(r"^Depends:.*?\b(linux-image-(6\.1\.0-\d+)-arm64)\b", out, re.M)
    if not m:
        say("FAILED: linux-image-arm64:arm64=%s depends on no linux-image-6.1.0-N-arm64" % ver)
        raise SystemExit(1)
    return m.group(1), m.group(2) + "-arm64"


def ensure_debs(ver, log):
    """The image, headers and busybox of version ver, unpacked by scripts/debs.sh:
    {image_package, release, version, image, headers, busybox} (the last three: trees)."""
    img, release = image_package(ver, log)
    hdr = img.replace("linux-image-", "linux-headers-")
    cmd = ["bash", os.path.join(ROOT, "scripts", "debs.sh"), "arm64", "%s=%s" % (img, ver), "%s=%s" % (hdr, ver),
           "busybox-static"]
    say("debs: %s" % " ".join(cmd[1:]))
    t0 = time.monotonic()
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True)
    trees = p.stdout.split()
    if p.returncode != 0 or len(trees) != 3:
        say("FAILED: %s (exit %d; log: %s)" % (" ".join(cmd[1:]), p.returncode, log))
        raise SystemExit(1)
    say("debs: %s in %.1f s" % (" ".join(trees), time.monotonic() - t0))
    return {"image_package": img, "release": release, "version": ver, "image": trees[0], "headers": trees[1],
            "busybox": trees[2]}


def read_config(path):
    have = {}
    for line in open(path):
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
        if m:
            have[m.group(1)] = m.group(2)
    return have


def vermagic(ko):
    p = subprocess.run(["modinfo", "-F", "vermagic", ko], capture_output=True, text=True)
    return p.stdout.strip()


def build(args):
    out = os.path.abspath(args.out)
    base = os.path.join(out, "arm64")
    lock = bk.lock_dir(base)  # noqa: F841  (held until build returns)
    t_start = time.monotonic()
    if not ensure_deps():
        return 1
    log0 = os.path.join(base, "build.log")
    open(log0, "w").close()
    ver = dpkg_version(SOURCE_PKG)
    if not ver:
        say("FAILED: %s is not installed" % SOURCE_PKG)
        return 1
    st = os.stat(TARBALL)
    srcver = "%s_%s_%d_%d" % (SOURCE_PKG, ver, st.st_size, int(st.st_mtime))
    info = ensure_debs(ver, log0)
    release = info["release"]
    hdrs = os.path.join(info["headers"], "usr", "src", "linux-headers-" + release)
    vmlinuz = os.path.join(info["image"], "boot", "vmlinuz-" + release)
    busybox = os.path.join(info["busybox"], "bin", "busybox")
    for p in (os.path.join(hdrs, ".config"), os.path.join(hdrs, "Module.symvers"), vmlinuz, busybox):
        if not os.path.exists(p):
            say("FAILED: %s missing from the unpacked packages" % p)
            return 1
    cc_ver = subprocess.run([CROSS + "gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    okey = sha(RECIPE, ver, srcver, open(os.path.join(hdrs, ".config"), "rb").read(),
               open(os.path.join(hdrs, "Module.symvers"), "rb").read(), cc_ver)
    mod_files = sorted(f for f in os.listdir(MODULE_DIR) if not f.startswith("."))
    mkey = sha(okey, *[f.encode() + open(os.path.join(MODULE_DIR, f), "rb").read() for f in mod_files])
    rkey = sha(open(RUNNER_SRC, "rb").read(), cc_ver)
    odir = os.path.join(base, "obj-" + okey)
    obj = os.path.join(odir, "obj")
    mdir = os.path.join(odir, "mod-" + mkey)
    ko = os.path.join(mdir, "numacma_dma_test.ko")
    rdir = os.path.join(base, "runner-" + rkey)
    runner = os.path.join(rdir, "kdiff_runner")
    say("Debian arm64 kernel %s (%s), source %s; keys: prepare %s, module %s, runner %s"
        % (release, ver, srcver, okey, mkey, rkey))
    kver, lver = release[:-len("-arm64")], "-arm64"
    kmake = ["make", "ARCH=arm64", "CROSS_COMPILE=" + CROSS, "O=" + obj, "KERNELVERSION=" + kver,
             "LOCALVERSION=" + lver]
    timings = {}
    if args.force:
        shutil.rmtree(odir, ignore_errors=True)
        shutil.rmtree(rdir, ignore_errors=True)

    if os.path.exists(os.path.join(odir, "prepare-ok")):
        say("modules_prepare: cached %s" % obj)
    else:
        t0 = time.monotonic()
        src = bk.ensure_source(base, srcver, log0, TARBALL)
        shutil.rmtree(odir, ignore_errors=True)
        os.makedirs(obj)
        log = os.path.join(odir, "build.log")
        shutil.copy(os.path.join(hdrs, ".config"), os.path.join(obj, ".config"))
        say("modules_prepare with Debian's config (log: %s) ..." % log)
        run(kmake + ["-j%d" % args.jobs, "modules_prepare"], log, cwd=src)
        shutil.copy(os.path.join(hdrs, "Module.symvers"), os.path.join(obj, "Module.symvers"))
        got = open(os.path.join(obj, "include", "config", "kernel.release")).read().strip()
        if got != release:
            say("FAILED: include/config/kernel.release is %r, the kernel's is %r" % (got, release))
            return 1
        want, have = read_config(os.path.join(hdrs, ".config")), read_config(os.path.join(obj, ".config"))
        bad = 0
        for k in sorted(set(want) | set(have)):
            if want.get(k) != have.get(k):
                ok = bool(CONFIG_MAY_DIFFER.match(k))
                bad += not ok
                print("  %-10s %s: Debian %s, here %s" % ("(host)" if ok else "WRONG", k, want.get(k, "n"),
                                                        have.get(k, "n")))
        if bad:
            say("FAILED: modules_prepare changed %d option(s) of Debian's config" % bad)
            return 1
        open(os.path.join(odir, "prepare-ok"), "w").write("ok\n")
        timings["prepare_s"] = round(time.monotonic() - t0, 1)
        say("modules_prepare: done in %.0f s, kernel.release %s" % (time.monotonic() - t0, got))
        for old in glob.glob(os.path.join(base, "obj-*")):
            if old != odir:
                shutil.rmtree(old, ignore_errors=True)

    if os.path.exists(ko):
        say("module: cached %s" % ko)
    else:
        t0 = time.monotonic()
        src = bk.ensure_source(base, srcver, log0, TARBALL)
        for old in glob.glob(os.path.join(odir, "mod-*")):
            shutil.rmtree(old, ignore_errors=True)
        msrc = os.path.join(mdir, "src")
        shutil.copytree(MODULE_DIR, msrc)
        log = os.path.join(mdir, "build.log")
        say("module: make -C %s M=%s modules" % (obj, msrc))
        run(["make", "-C", obj, "ARCH=arm64", "CROSS_COMPILE=" + CROSS, "M=" + msrc, "modules"], log, cwd=src)
        theirs = sorted(glob.glob(os.path.join(info["image"], "lib", "modules", release, "kernel", "drivers", "char",
                                               "*.ko")))
        mine = vermagic(os.path.join(msrc, "numacma_dma_test.ko"))
        if theirs and vermagic(theirs[0]) != mine:
            say("FAILED: vermagic %r, Debian's modules have %r" % (mine, vermagic(theirs[0])))
            return 1
        shutil.copy(os.path.join(msrc, "numacma_dma_test.ko"), ko)
        timings["module_s"] = round(time.monotonic() - t0, 1)
        say("module: built %s in %.1f s, vermagic %r" % (ko, time.monotonic() - t0, mine))

    bk.ensure_runner(base, rdir, runner, CROSS + "gcc", timings)

    cfg = read_config(os.path.join(hdrs, ".config"))
    manifest = {"arch": "arm64", "kernel_source": srcver, "package_version": ver, "prepare_key": okey,
                "module_key": mkey, "runner_key": rkey, "kernel": vmlinuz, "module": ko, "runner": runner,
                "busybox": busybox, "config": os.path.join(hdrs, ".config"), "kernel_release": release,
                "cma_size_mbytes": int(cfg.get("CONFIG_CMA_SIZE_MBYTES", "0") or 0)}
    return bk.write_manifest(base, manifest, t_start, timings)


def main():
    return bk.cli(build, __doc__)


if __name__ == "__main__":
    sys.exit(main())
