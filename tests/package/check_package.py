#!/usr/bin/env python3
"""tests/package/check_package.py — the Debian package and the man pages, checked.

  check_package.py deb --source SRC --version V (--cpack-config CFG --work DIR | --deb FILE)
                       [--multiarch]
      (ctest package_deb; scripts/package.sh on its own result) runs cpack on a
      build tree (or takes a .deb), then checks, with dpkg-deb -I / -c / -x:
      the name numacma_<V>_<arch>.deb; Package, Version, Architecture;
      Depends (libnuma1, and libc6 and libstdc++6, which only dpkg-shlibdeps
      adds); the CLI, the shared library with its soname and both symbolic
      links, the static archive, every public header, pkg-config and CMake
      files, numacma(1), numacma(3), the bash completion, the systemd unit in
      systemd's unit directory running /usr/bin/numacma, the copyright file;
      nothing outside /usr but the unit. Then, on the unpacked tree: the
      library's SONAME, the .pc resolving to the unpacked headers, numacma(1)
      having a section for every command that the packaged numacma's --help
      lists (and none other), the pages rendering without a groff warning,
      the completion offering every command and option, numacma(3) (below).
      --multiarch: the library directory must be Debian's multiarch one
      (scripts/package.sh configures CMAKE_INSTALL_PREFIX=/usr).
  check_package.py man3 --source SRC [--page FILE]
      (ctest man3_c_api) every function include/numacma/numacma.h declares is
      in packaging/man/numacma.3, in its SYNOPSIS and described, and the page
      names no ncma_ function the header lacks.
Exit 0 when every check passed; each failure is printed with what was found.
"""
import argparse
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def header_functions(src):
    text = open(os.path.join(src, "include", "numacma", "numacma.h")).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # the comments name functions too
    return sorted(set(re.findall(r"\b(ncma_[a-z0-9_]+)\s*\(", text)))


def check_man3(src, page_text, where):
    funcs = header_functions(src)
    check(len(funcs) >= 20, "%s: numacma.h declares %d ncma_ functions (parsed)" % (where, len(funcs)))
    syn = page_text.split(".SH SYNOPSIS", 1)[-1].split(".SH DESCRIPTION", 1)[0]
    desc = page_text.split(".SH DESCRIPTION", 1)[-1]
    missing_syn = [f for f in funcs if not re.search(r"\b%s\(" % f, syn)]
    missing_desc = [f for f in funcs if not re.search(r"^\.BR? %s\b" % f, desc, re.M)]
    named = set(re.findall(r"\b(ncma_[a-z0-9_]+)\s*\(", page_text)) | set(
        re.findall(r"^\.BR? (ncma_[a-z0-9_]+) \(\)", page_text, re.M))
    extra = sorted(named - set(funcs))
    check(not missing_syn, "%s: every ncma_ function of numacma.h in the SYNOPSIS%s" % (
        where, "; missing: " + " ".join(missing_syn) if missing_syn else ""))
    check(not missing_desc, "%s: every ncma_ function of numacma.h described (.B/.BR name)%s" % (
        where, "; missing: " + " ".join(missing_desc) if missing_desc else ""))
    check(not extra, "%s: no function the header lacks%s" % (where, "; stale: " + " ".join(extra) if extra else ""))


def groff_clean(page_text, where):
    if not shutil.which("groff"):
        print("skip  %s: groff not installed, rendering not checked" % where)
        return
    p = subprocess.run(["groff", "-man", "-ww", "-z", "-t"], input=page_text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    err = p.stderr.decode(errors="replace").strip()
    check(p.returncode == 0 and not err, "%s renders with groff -man -ww without a warning%s" % (
        where, ": " + err[:2000] if err else ""))


def dpkg_arch():
    return run(["dpkg", "--print-architecture"])[1].strip()


def multiarch():
    rc, out, _ = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"])
    if rc == 0 and out.strip():
        return out.strip()
    return run(["gcc", "-print-multiarch"])[1].strip()


def systemd_unit_dir():
    rc, out, _ = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"])
    return out.strip() if rc == 0 and out.strip() else None


def deb_listing(deb):
    """{path without ./: (type char, link target or None, mode string)}"""
    rc, out, err = run(["dpkg-deb", "-c", deb])
    if rc != 0:
        raise SystemExit("dpkg-deb -c %s: %s" % (deb, err))
    files = {}
    for line in out.splitlines():
        # -rw-r--r-- root/root  1234 2026-01-01 00:00 ./usr/bin/numacma
        m = re.match(r"^(\S)(\S{9})\s+\S+\s+\d+\s+\S+\s+\S+\s+\./(.*?)(?: -> (.*))?$", line)
        if m:
            files[m.group(3).rstrip("/")] = (m.group(1), m.group(4), m.group(2))
    return files, out


def completion_words(script, words):
    """COMPREPLY of the completion function for the command line `words` (last = being typed)."""
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
            '_numacma; printf "%s\\n" "${COMPREPLY[@]}"')
    rc, out, err = run(["bash", "-c", prog, "completion", script] + list(words))
    return rc, set(w for w in out.split("\n") if w), err


def cmd_deb(a):
    sys.path.insert(0, os.path.join(a.source, "packaging"))
    import gen_cli_docs  # noqa: E402  (the same walk over --help that wrote the page)

    arch = dpkg_arch()
    name = "numacma_%s_%s.deb" % (a.version, arch)
    if a.cpack_config:
        work = os.path.abspath(a.work)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        rc, out, err = run(["cpack", "-G", "DEB", "--config", a.cpack_config, "-B", work])
        if not check(rc == 0, "cpack -G DEB --config %s -B %s" % (a.cpack_config, work)):
            print(out + err)
            return
        deb = os.path.join(work, name)
    else:
        deb = os.path.abspath(a.deb)
        work = os.path.join(os.path.dirname(deb), "check")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    if not check(os.path.basename(deb) == name and os.path.isfile(deb), "the package is %s (%s)" % (
            name, deb if os.path.isfile(deb) else "missing; there: %s" % os.listdir(os.path.dirname(deb)))):
        return

    # ---- control fields ----
    rc, info, _ = run(["dpkg-deb", "-I", deb])
    print(info)
    fields = {}
    for line in info.splitlines():
        m = re.match(r"^ ([A-Z][A-Za-z-]+): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    check(fields.get("Package") == "numacma", "Package: numacma (%s)" % fields.get("Package"))
    check(fields.get("Version") == a.version, "Version: %s (%s)" % (a.version, fields.get("Version")))
    check(fields.get("Architecture") == arch, "Architecture: %s (%s)" % (arch, fields.get("Architecture")))
    deps = [d.strip().split(" ")[0] for d in re.split(r"[,|]", fields.get("Depends", ""))]
    for d in ("libnuma1", "libc6", "libstdc++6"):
        check(d in deps, "Depends names %s (%s)" % (d, fields.get("Depends")))
    check(bool(fields.get("Maintainer")), "Maintainer is set")

    # ---- the file list ----
    files, listing = deb_listing(deb)
    print(listing)
    ver = a.version
    major = ver.split(".")[0]
    libs = [p for p in files if p.endswith("/libnumacma.so." + ver)]
    if not check(len(libs) == 1, "one libnumacma.so.%s (%s)" % (ver, libs)):
        return
    libdir = os.path.dirname(libs[0])
    ma = multiarch()
    if a.multiarch:
        check(libdir == "usr/lib/" + ma, "the library directory is /usr/lib/%s (%s)" % (ma, libdir))
    else:
        check(libdir in ("usr/lib", "usr/lib/" + ma), "the library directory is /usr/lib[/%s] (%s)" % (ma, libdir))

    def has(path, kind="-", target=None):
        e = files.get(path)
        ok = e is not None and e[0] == kind and (target is None or e[1] == target)
        check(ok, "/%s%s%s" % (path, " -> " + target if target else "", "" if ok else " (found: %s)" % (e,)))
        return ok

    has("usr/bin/numacma")
    check("x" in files.get("usr/bin/numacma", ("", "", ""))[2], "/usr/bin/numacma is executable")
    has(libdir + "/libnumacma.so." + ver)
    has(libdir + "/libnumacma.so." + major, "l", "libnumacma.so." + ver)
    has(libdir + "/libnumacma.so", "l", "libnumacma.so." + major)
    has(libdir + "/libnumacma.a")
    for h in sorted(os.listdir(os.path.join(a.source, "include", "numacma"))):
        has("usr/include/numacma/" + h)
    has(libdir + "/pkgconfig/numacma.pc")
    for f in ("numacmaConfig.cmake", "numacmaConfigVersion.cmake", "numacmaTargets.cmake"):
        has(libdir + "/cmake/numacma/" + f)
    has("usr/share/man/man1/numacma.1.gz")
    has("usr/share/man/man3/numacma.3.gz")
    has("usr/share/bash-completion/completions/numacma")
    has("usr/share/doc/numacma/copyright")
    has("usr/share/doc/numacma/shared.md")
    units = [p for p in files if p.endswith("/numacma-reserve@.service")]
    sd = systemd_unit_dir()
    want = [sd.lstrip("/") + "/numacma-reserve@.service"] if sd else [
        "lib/systemd/system/numacma-reserve@.service", "usr/lib/systemd/system/numacma-reserve@.service"]
    check(len(units) == 1 and units[0] in want, "the systemd unit in systemd's unit directory %s (%s)" % (
        sd or "/lib or /usr/lib/systemd/system", units))
    outside = [p for p in files if files[p][0] != "d" and not p.startswith("usr/") and p not in units]
    check(not outside, "nothing outside /usr but the unit (%s)" % outside)
    local = [p for p in files if p.startswith("usr/local")]
    check(not local, "nothing under /usr/local (%s)" % local)
    bins = sorted(p for p in files if p.startswith("usr/bin/") and files[p][0] != "d")
    check(bins == ["usr/bin/numacma"], "/usr/bin holds numacma alone (%s)" % bins)

    # ---- the unpacked tree ----
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    rc, _, err = run(["dpkg-deb", "-x", deb, root])
    if not check(rc == 0, "dpkg-deb -x %s" % err):
        return
    rc, dyn, _ = run(["readelf", "-d", os.path.join(root, libdir, "libnumacma.so." + ver)])
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[(.*?)\]", dyn)
    check(soname == ["libnumacma.so." + major], "SONAME libnumacma.so.%s (%s)" % (major, soname))
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", dyn)
    check("libnuma.so.1" in needed, "libnumacma needs libnuma.so.1 (%s)" % needed)
    if units:
        unit = open(os.path.join(root, units[0])).read()
        check(re.search(r"^ExecStart=/usr/bin/numacma reserve ", unit, re.M) is not None and
              re.search(r"^ExecStop=/usr/bin/numacma release ", unit, re.M) is not None,
              "the unit runs /usr/bin/numacma: %s" % [l for l in unit.splitlines() if l.startswith("Exec")])
        doc = re.findall(r"^Documentation=file://(\S+)", unit, re.M)
        check(len(doc) == 1 and os.path.isfile(os.path.join(root, doc[0].lstrip("/"))),
              "the unit's Documentation= is in the package (%s)" % doc)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, libdir, "pkgconfig"), PKG_CONFIG_LIBDIR="")
    rc, cflags, err = run(["pkg-config", "--cflags", "--libs", "numacma"], env=env)
    inc = [f[2:] for f in cflags.split() if f.startswith("-I")]
    check(rc == 0 and len(inc) == 1 and os.path.isfile(os.path.join(inc[0], "numacma", "numacma.h")) and
          os.path.realpath(inc[0]) == os.path.realpath(os.path.join(root, "usr", "include")),
          "pkg-config --cflags numacma resolves to the unpacked /usr/include (%s%s)" % (cflags.strip(), err))

    # numacma(1): a section for each command the packaged tool's --help lists.
    cli = os.path.join(root, "usr", "bin", "numacma")
    tree = gen_cli_docs.walk(cli)
    cmds = [" ".join(p) for p, _, _ in tree if p]
    top = [p[0] for p, _, _ in tree if len(p) == 1]
    check(all(c in top for c in ("topo", "plan", "replay", "demo")),
          "`numacma --help` lists topo, plan, replay, demo (parsed: %s)" % top)
    man1 = gzip.open(os.path.join(root, "usr/share/man/man1/numacma.1.gz")).read().decode()
    sections = re.findall(r'^\.SS "numacma (.*)"$', man1, re.M)
    missing = [c for c in cmds if c not in sections]
    extra = [s for s in sections if s not in cmds]
    check(not missing, "numacma(1) has a section for each of the %d commands of `numacma --help`%s" % (
        len(cmds), "; missing: %s" % missing if missing else ""))
    check(not extra, "numacma(1) has no section for a command the tool lacks%s" % (
        "; stale: %s" % extra if extra else ""))
    for p, h, _ in tree:
        if not p:
            continue
        opts = [gen_cli_docs.option_names(n) for t, e in h["blocks"] if t and gen_cli_docs.is_option_block(e)
                for n, _ in e]
        body = man1.split('.SS "numacma %s"' % " ".join(p), 1)[-1].split(".SS ", 1)[0]
        lost = [o[-1] for o in opts if o and o[-1] != "--help" and o[-1].replace("-", "\\-") not in body]
        check(not lost, "numacma(1): `numacma %s` documents its options%s" % (
            " ".join(p), "; missing: %s" % lost if lost else ""))
    groff_clean(man1, "numacma(1)")
    man3 = gzip.open(os.path.join(root, "usr/share/man/man3/numacma.3.gz")).read().decode()
    check_man3(a.source, man3, "numacma(3) in the package")
    groff_clean(man3, "numacma(3)")

    # bash completion: every command, at every level, and each command's options.
    comp = os.path.join(root, "usr/share/bash-completion/completions/numacma")
    for p, h, subs in tree:
        if subs:
            rc, got, err = completion_words(comp, ("numacma",) + p + ("",))
            check(rc == 0 and got == set(subs), "completion of `numacma %s<TAB>`: %s (got %s%s)" % (
                " ".join(p) + " " if p else "", sorted(subs), sorted(got), err.strip()))
        opts = set(o for t, e in h["blocks"] if t and gen_cli_docs.is_option_block(e)
                   for n, _ in e for o in gen_cli_docs.option_names(n) if o.startswith("--"))
        rc, got, err = completion_words(comp, ("numacma",) + p + ("--",))
        check(rc == 0 and opts and opts <= got, "completion of `numacma %s--<TAB>` offers %s (got %s%s)" % (
            " ".join(p) + " " if p else "", sorted(opts), sorted(got), err.strip()))


def cmd_man3(a):
    page = a.page or os.path.join(a.source, "packaging", "man", "numacma.3")
    text = open(page).read()
    check_man3(a.source, text, os.path.relpath(page, a.source))
    groff_clean(text, "numacma(3)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deb")
    d.add_argument("--source", required=True)
    d.add_argument("--version", required=True)
    d.add_argument("--cpack-config")
    d.add_argument("--work")
    d.add_argument("--deb")
    d.add_argument("--multiarch", action="store_true")
    m = sub.add_parser("man3")
    m.add_argument("--source", required=True)
    m.add_argument("--page")
    a = ap.parse_args()
    a.source = os.path.abspath(a.source)
    if a.cmd == "deb":
        if bool(a.cpack_config) == bool(a.deb) or (a.cpack_config and not a.work):
            ap.error("deb: --cpack-config CFG --work DIR, or --deb FILE")
        cmd_deb(a)
    else:
        cmd_man3(a)
    print("check_package: %d failure(s)" % len(failures))
    for f in failures:
        print("  FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
