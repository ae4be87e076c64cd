#!/usr/bin/env python3
"""tests/kernel/build_kernel.py — builds what the kernel differential tests boot.

  build_kernel.py [--out build/kernel] [--jobs 2] [--force] [--variant oracle|vfio]

From Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz):
  1. `make tinyconfig` (x86_64) + tests/kernel/kernel.config merged over it,
     olddefconfig, then a check that every option of the fragment ended up as
     the fragment says (printed; the build fails otherwise);
  2. bzImage (and `make modules`, for Module.symvers);
  3. the test module tests/kernel/module/ out of tree (make -C <kdir> M=<dir>);
  4. the guest runner tests/kernel/guest/kdiff_runner.c, statically linked.

Everything is cached under OUT, keyed by a hash:
  OUT/src-<version>/               the unpacked kernel source (per package version)
  OUT/k-<kernel key>/obj           the kernel build (O=), key: the fragment, this
                                   file's RECIPE and the kernel source version
  OUT/k-<kernel key>/mod-<module key>/   the module, key: the kernel key + the
                                   module's source (a module change does not
                                   rebuild the kernel)
  OUT/runner-<key>/kdiff_runner    key: its source and the compiler's version
  OUT/current.json                 what the tests use (paths, keys, versions)
A step whose output exists for its key is skipped ("cached"). Other k-<key>
and runner-* directories are removed after a rebuild (disk). A lock file
serialises concurrent calls. Exit 0 when everything is there, 1 otherwise.

--variant vfio builds the kernel the q35 + intel-iommu guests of tests/vm boot
when their topology says kernel="vfio" (iommufd2): tests/kernel/kernel-vfio.config
over tinyconfig (PCIe, ACPI NUMA, intel-iommu with interrupt remapping, VFIO
with type1, the device cdev, no-IOMMU mode, IOMMUFD, NVMe, ext4, swap; built
in, no modules), bzImage only (no module, no runner), the same config check:
  OUT/k-vfio-<key>/obj, OUT/k-vfio-<key>/bzImage   key: kernel-vfio.config,
                                   RECIPE_VFIO and the kernel source version
  OUT/current-vfio.json            what tests/vm boots (bzImage, config, key)
It shares OUT/src-<version> and the lock with the oracle's kernel; neither
variant removes the other's k-* directory or touches its json.
"""
import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARBALL = "/usr/src/linux-source-6.12.tar.xz"
PACKAGE = "linux-source-6.12"
FRAGMENT = os.path.join(HERE, "kernel.config")
FRAGMENT_VFIO = os.path.join(HERE, "kernel-vfio.config")
MODULE_DIR = os.path.join(HERE, "module")
RUNNER_SRC = os.path.join(HERE, "guest", "kdiff_runner.c")
# Bump when the build steps change in a way that changes the kernel.
RECIPE = "tinyconfig+fragment;olddefconfig;bzImage+modules;ARCH=x86_64;v1"
RECIPE_VFIO = "tinyconfig+fragment;olddefconfig;bzImage;ARCH=x86_64;vfio;v1"
# The variants of --variant: fragment, recipe, the k-<dir> prefix (a k-dir of a
# variant is <prefix><16 hex digits>), the make targets, the manifest's name.
VARIANTS = {
    "oracle": dict(fragment=FRAGMENT, recipe=RECIPE, prefix="k-", targets=["bzImage", "modules"],
                   manifest="current.json"),
    "vfio": dict(fragment=FRAGMENT_VFIO, recipe=RECIPE_VFIO, prefix="k-vfio-", targets=["bzImage"],
                 manifest="current-vfio.json"),
}
TOOLS = [("make", "make"), ("gcc", "gcc"), ("bc", "bc"), ("flex", "flex"), ("bison", "bison"),
         ("xz", "xz-utils"), ("perl", "perl")]
HEADERS = [("/usr/include/gelf.h", "libelf-dev"), ("/usr/include/openssl/opensslv.h", "libssl-dev")]


NAME = "build_kernel"  # the prefix of every message (build_kernel_arm64.py sets its own)


def say(msg):
    print(NAME + ": " + msg, flush=True)


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def missing_packages(tools, headers, tarball, package):
    """The Debian packages of the tools, headers and source tarball that are missing."""
    miss = [pkg for tool, pkg in tools if not shutil.which(tool)]
    miss += [pkg for path, pkg in headers if not os.path.exists(path)]
    if not os.path.exists(tarball):
        miss.append(package)
    return miss


def missing_deps():
    return sorted(set(missing_packages(TOOLS, HEADERS, TARBALL, PACKAGE)))


def ensure_deps(missing_deps=missing_deps):
    """True when nothing is missing, after scripts/deps.sh test (as root) if something was."""
    miss = missing_deps()
    if miss and os.geteuid() == 0:
        say("missing %s: running scripts/deps.sh test" % " ".join(miss))
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "test"], check=False)
        miss = missing_deps()
    if miss:
        say("cannot build: missing packages %s (run scripts/deps.sh test as root)" % " ".join(miss))
        return False
    return True


def source_version():
    try:
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True,
                           text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        v = ""
    st = os.stat(TARBALL)
    return "%s_%s_%d_%d" % (PACKAGE, v or "unknown", st.st_size, int(st.st_mtime))


def run(cmd, log, cwd=None, env=None, capture=False):
    """Runs cmd, output to log (appended); on failure prints the log's tail.
    capture: also returns the output as text."""
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE if capture else f,
                           stderr=subprocess.STDOUT, env=env, text=True)
        if capture:
            f.write(p.stdout)
    if p.returncode != 0:
        tail = open(log, errors="replace").read().splitlines()[-40:]
        say("FAILED (exit %d): %s\n  %s\n  (full log: %s)" % (
            p.returncode, " ".join(cmd), "\n  ".join(tail), log))
        raise SystemExit(1)
    return p.stdout if capture else None


def parse_fragment(path):
    """{CONFIG_X: value} where value is the text after '=', or 'n' for
    '# CONFIG_X is not set'."""
    want = {}
    for line in open(path):
        line = line.strip()
        m = re.match(r"^# (CONFIG_\w+) is not set$", line)
        if m:
            want[m.group(1)] = "n"
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if not m:
            raise SystemExit("build_kernel: %s: cannot read line %r" % (path, line))
        want[m.group(1)] = m.group(2)
    return want


def check_config(config_path, want, fragment=FRAGMENT):
    have = {}
    for line in open(config_path):
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
        if m:
            have[m.group(1)] = m.group(2)
    bad = 0
    say("config check (%d options of %s):" % (len(want), os.path.relpath(fragment, ROOT)))
    for k, v in want.items():
        got = have.get(k, "n")
        ok = got == v
        bad += not ok
        print("  %-6s %s=%s%s" % ("ok" if ok else "WRONG", k, v, "" if ok else "  (got %s)" % got))
    return bad == 0


def safe(s):
    """A version string as a directory-name part."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)


def lock_dir(d):
    """Creates d and holds its .lock (flock) until the returned file is closed:
    one build of a cache at a time."""
    os.makedirs(d, exist_ok=True)
    lock = open(os.path.join(d, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def ensure_source(out, ver, log, tarball=TARBALL):
    """The kernel source tarball unpacked under out/src-<ver> (cached; other
    versions' trees removed)."""
    src = os.path.join(out, "src-" + safe(ver))
    stamp = os.path.join(src, ".numacma-unpacked")
    if os.path.exists(stamp):
        say("kernel source: cached %s" % src)
        return src
    t0 = time.monotonic()
    shutil.rmtree(src, ignore_errors=True)
    tmp = src + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    say("kernel source: unpacking %s into %s" % (tarball, src))
    run(["tar", "-xJf", tarball, "-C", tmp, "--strip-components=1"], log)
    os.rename(tmp, src)
    open(stamp, "w").write(ver + "\n")
    say("kernel source: unpacked in %.1f s" % (time.monotonic() - t0))
    for old in glob.glob(os.path.join(out, "src-*")):
        if old != src and not old.endswith(".tmp"):
            say("removing the source of another version: %s" % old)
            shutil.rmtree(old, ignore_errors=True)
    return src


def own_kdirs(out, prefix):
    """The k-dirs of the variant whose prefix is `prefix` (k-<16 hex digits>
    for the oracle, k-vfio-<16 hex digits> for vfio): what its rebuild may remove."""
    pat = re.compile("^" + re.escape(prefix) + "[0-9a-f]{16}$")
    return [d for d in glob.glob(os.path.join(out, prefix + "*")) if pat.match(os.path.basename(d))]


def build(args):
    out = os.path.abspath(args.out)
    lock = lock_dir(out)  # noqa: F841  (held until build returns)
    t_start = time.monotonic()
    if not ensure_deps():
        return 1
    if getattr(args, "variant", "oracle") != "oracle":
        return build_variant(args, out, VARIANTS[args.variant], t_start)
    ver = source_version()
    frag = open(FRAGMENT, "rb").read()
    kkey = sha(RECIPE, ver, frag)
    mod_files = sorted(f for f in os.listdir(MODULE_DIR) if not f.startswith("."))
    mkey = sha(kkey, *[f.encode() + open(os.path.join(MODULE_DIR, f), "rb").read() for f in mod_files])
    cc_ver = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    rkey = sha(open(RUNNER_SRC, "rb").read(), cc_ver)
    kdir = os.path.join(out, "k-" + kkey)
    obj = os.path.join(kdir, "obj")
    bzimage = os.path.join(kdir, "bzImage")
    mdir = os.path.join(kdir, "mod-" + mkey)
    ko = os.path.join(mdir, "numacma_dma_test.ko")
    rdir = os.path.join(out, "runner-" + rkey)
    runner = os.path.join(rdir, "kdiff_runner")
    say("kernel source %s; kernel key %s (fragment + recipe + source), module key %s, runner key %s"
        % (ver, kkey, mkey, rkey))
    jobs = ["-j%d" % args.jobs]
    kmake = ["make", "ARCH=x86_64", "O=" + obj]
    timings = {}

    if args.force:
        shutil.rmtree(kdir, ignore_errors=True)
        shutil.rmtree(rdir, ignore_errors=True)
    if os.path.exists(bzimage) and os.path.exists(os.path.join(kdir, "config-ok")):
        say("kernel: cached %s" % bzimage)
    else:
        t0 = time.monotonic()
        src = ensure_source(out, ver, os.path.join(out, "unpack.log"))
        shutil.rmtree(kdir, ignore_errors=True)
        os.makedirs(obj)
        log = os.path.join(kdir, "build.log")
        t1 = time.monotonic()
        if not configure_and_make(src, kmake, FRAGMENT, VARIANTS["oracle"]["targets"], jobs, log):
            return 1
        shutil.copy(os.path.join(obj, "arch", "x86", "boot", "bzImage"), bzimage)
        open(os.path.join(kdir, "config-ok"), "w").write("ok\n")
        timings["kernel_s"] = round(time.monotonic() - t0, 1)
        say("kernel: built %s in %.0f s (configure + compile %.0f s)" % (
            bzimage, time.monotonic() - t0, time.monotonic() - t1))
        for old in own_kdirs(out, "k-"):
            if old != kdir:
                say("removing an older kernel build: %s" % old)
                shutil.rmtree(old, ignore_errors=True)

    if os.path.exists(ko):
        say("module: cached %s" % ko)
    else:
        t0 = time.monotonic()
        for old in glob.glob(os.path.join(kdir, "mod-*")):
            shutil.rmtree(old, ignore_errors=True)
        msrc = os.path.join(mdir, "src")
        shutil.copytree(MODULE_DIR, msrc)
        log = os.path.join(mdir, "build.log")
        say("module: make -C %s M=%s modules" % (obj, msrc))
        run(["make", "-C", obj, "ARCH=x86_64", "M=" + msrc, "modules"], log)
        shutil.copy(os.path.join(msrc, "numacma_dma_test.ko"), ko)
        timings["module_s"] = round(time.monotonic() - t0, 1)
        say("module: built %s in %.1f s" % (ko, time.monotonic() - t0))

    ensure_runner(out, rdir, runner, "gcc", timings)

    manifest = {"kernel_source": ver, "kernel_key": kkey, "module_key": mkey, "runner_key": rkey,
                "bzImage": bzimage, "module": ko, "runner": runner, "config": os.path.join(obj, ".config"),
                "kernel_release": open(os.path.join(obj, "include", "config", "kernel.release")).read().strip()}
    return write_manifest(out, manifest, t_start, timings)


def configure_and_make(src, kmake, fragment, targets, jobs, log):
    """tinyconfig + fragment, olddefconfig, the config check, make targets in
    kmake's O= (False when the check failed)."""
    obj = [a[2:] for a in kmake if a.startswith("O=")][0]
    say("kernel: configuring (tinyconfig + %s) in %s" % (os.path.relpath(fragment, ROOT), obj))
    run(kmake + ["tinyconfig"], log, cwd=src)
    run([os.path.join(src, "scripts", "kconfig", "merge_config.sh"), "-m", "-O", obj,
         os.path.join(obj, ".config"), fragment], log, cwd=src)
    run(kmake + ["olddefconfig"], log, cwd=src)
    if not check_config(os.path.join(obj, ".config"), parse_fragment(fragment), fragment):
        say("FAILED: options of the fragment did not end up as asked (missing dependencies?); "
            "see %s/.config" % obj)
        return False
    say("kernel: make %s %s (log: %s) ..." % (jobs[0], " ".join(targets), log))
    run(kmake + jobs + targets, log, cwd=src)
    return True


def build_variant(args, out, v, t_start):
    """A kernel variant other than the oracle's (VARIANTS): only the kernel,
    in OUT/<prefix><key>/, described by OUT/<manifest>."""
    ver = source_version()
    kkey = sha(v["recipe"], ver, open(v["fragment"], "rb").read())
    kdir = os.path.join(out, v["prefix"] + kkey)
    obj = os.path.join(kdir, "obj")
    bzimage = os.path.join(kdir, "bzImage")
    say("variant %s: kernel source %s; kernel key %s (%s + recipe + source)"
        % (args.variant, ver, kkey, os.path.relpath(v["fragment"], ROOT)))
    timings = {}
    if args.force:
        shutil.rmtree(kdir, ignore_errors=True)
    if os.path.exists(bzimage) and os.path.exists(os.path.join(kdir, "config-ok")):
        say("kernel: cached %s" % bzimage)
    else:
        t0 = time.monotonic()
        src = ensure_source(out, ver, os.path.join(out, "unpack.log"))
        shutil.rmtree(kdir, ignore_errors=True)
        os.makedirs(obj)
        log = os.path.join(kdir, "build.log")
        t1 = time.monotonic()
        if not configure_and_make(src, ["make", "ARCH=x86_64", "O=" + obj], v["fragment"], v["targets"],
                                  ["-j%d" % args.jobs], log):
            return 1
        shutil.copy(os.path.join(obj, "arch", "x86", "boot", "bzImage"), bzimage)
        open(os.path.join(kdir, "config-ok"), "w").write("ok\n")
        timings["kernel_s"] = round(time.monotonic() - t0, 1)
        say("kernel: built %s in %.0f s (configure + compile %.0f s)" % (
            bzimage, time.monotonic() - t0, time.monotonic() - t1))
        for old in own_kdirs(out, v["prefix"]):
            if old != kdir:
                say("removing an older %s kernel build: %s" % (args.variant, old))
                shutil.rmtree(old, ignore_errors=True)
    manifest = {"variant": args.variant, "kernel_source": ver, "kernel_key": kkey, "bzImage": bzimage,
                "config": os.path.join(obj, ".config"), "fragment": v["fragment"],
                "kernel_release": open(os.path.join(obj, "include", "config", "kernel.release")).read().strip()}
    return write_manifest(out, manifest, t_start, timings, v["manifest"])


def ensure_runner(out, rdir, runner, cc, timings):
    """The static runner out/runner-<key>/kdiff_runner built with cc (cached;
    other keys' runners removed)."""
    if os.path.exists(runner):
        say("runner: cached %s" % runner)
        return
    t0 = time.monotonic()
    shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir)
    log = os.path.join(rdir, "build.log")
    say("runner: %s -static %s" % (cc, os.path.relpath(RUNNER_SRC, ROOT)))
    run([cc, "-O2", "-Wall", "-Wextra", "-static", "-o", runner + ".tmp", RUNNER_SRC], log)
    os.rename(runner + ".tmp", runner)
    timings["runner_s"] = round(time.monotonic() - t0, 1)
    for old in glob.glob(os.path.join(out, "runner-*")):
        if old != rdir:
            shutil.rmtree(old, ignore_errors=True)


def write_manifest(d, manifest, t_start, timings, name="current.json"):
    """d/<name> (written whole, then renamed), and the closing line."""
    path = os.path.join(d, name)
    tmp = path + ".tmp"
    json.dump(manifest, open(tmp, "w"), indent=1)
    os.rename(tmp, path)
    say("ready in %.1f s%s: kernel %s, %s" % (
        time.monotonic() - t_start, " (%s)" % ", ".join("%s %s" % kv for kv in timings.items()) if timings
        else " (everything cached)", manifest["kernel_release"], path))
    return 0


def cli(build, doc, variants=None):
    """The command line both build scripts take: --out, --jobs, --force
    (and --variant where variants are given)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "kernel"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    if variants:
        ap.add_argument("--variant", choices=variants, default=variants[0],
                        help="oracle: the differential tests' kernel (kernel.config); vfio: the "
                             "tests/vm kernel with IOMMUFD and the VFIO cdev (kernel-vfio.config)")
    return build(ap.parse_args())


def main():
    return cli(build, __doc__, list(VARIANTS))


if __name__ == "__main__":
    sys.exit(main())
