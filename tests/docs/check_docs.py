#!/usr/bin/env python3
"""tests/docs/check_docs.py — the documentation stands alone.

  check_docs.py rules SRC
      (ctest docs_rules_defined) every rule id that a Markdown file of the
      repository cites (R1, A7, F2; a range such as A1-A9 or R1–R6 cites each
      id in it) is defined in docs/semantics.md, as a paragraph that opens
      with **<id>.**; and each id is defined once.
  check_docs.py deps SRC
      (ctest docs_readme_lists_deps) every package scripts/deps.sh may install
      is named in README.md (as `pkg`), so the README says what the test
      command installs.
  check_docs.py refs SRC
      (ctest docs_no_outside_refs) no file of the repository points at a
      document outside it: the project's origin documents (their names in
      capitals, the folder they lived in) are restated in docs/semantics.md
      and docs/design.md.
"""
import os
import re
import subprocess
import sys

RULE = re.compile(r"\b([RAF])([1-9][0-9]*)(?:\s*[-–]\s*([RAF])?([1-9][0-9]*))?\b")
# Built from pieces so that this file does not match itself.
OUTSIDE = [re.compile(p) for p in (r"\.\./" + "shared", "/work/" + "shared", r"\bSEMANTICS" + r"\b",
                                   r"\bDESIGN" + r"\.md\b", r"\bSTYLE" + r"\.md\b")]
SKIP_DIRS = {".git", ".vm-cache", ".gl", ".whl"}


def repo_files(src):
    p = subprocess.run(["git", "-C", src, "ls-files", "--cached", "--others", "--exclude-standard"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if p.returncode == 0 and p.stdout.strip():
        return sorted(set(f for f in p.stdout.decode().split("\n") if f and os.path.isfile(os.path.join(src, f))))
    out = []
    for d, dirs, files in os.walk(src):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not (d == src and x.startswith("build"))]
        out += [os.path.relpath(os.path.join(d, f), src) for f in files]
    return sorted(out)


def text_of(path):
    try:
        data = open(path, "rb").read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def cited(text):
    ids = set()
    for m in RULE.finditer(text):
        kind, lo, kind2, hi = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if hi is None or (kind2 and kind2 != kind):
            ids.add(kind + str(lo))
            if hi is not None:
                ids.add(kind2 + hi)
            continue
        for n in range(lo, int(hi) + 1) if int(hi) >= lo else (lo, int(hi)):
            ids.add(kind + str(n))
    return ids


def rules(src):
    sem = open(os.path.join(src, "docs", "semantics.md")).read()
    defs = re.findall(r"^\*\*([RAF][1-9][0-9]*)\.\*\*", sem, re.M)
    bad = 0
    dup = sorted(set(d for d in defs if defs.count(d) > 1))
    if dup:
        print("FAIL docs/semantics.md defines %s more than once" % dup)
        bad += 1
    defined = set(defs)
    md = [f for f in repo_files(src) if f.endswith(".md")]
    seen = {}
    for f in md:
        t = text_of(os.path.join(src, f))
        for rid in cited(t or ""):
            seen.setdefault(rid, []).append(f)
    for rid in sorted(seen, key=lambda r: (r[0], int(r[1:]))):
        if rid not in defined:
            print("FAIL %s is cited by %s but not defined in docs/semantics.md" % (rid, ", ".join(seen[rid])))
            bad += 1
    print("rules: %d Markdown files cite %d rule ids; docs/semantics.md defines %d (%s)" % (
        len(md), len(seen), len(defined), " ".join(sorted(defined, key=lambda r: (r[0], int(r[1:]))))))
    if not {"R1", "A1", "F1"} <= defined:
        print("FAIL docs/semantics.md defines no R1/A1/F1 as **<id>.**: the format changed?")
        bad += 1
    return bad


def refs(src):
    bad = 0
    here = os.path.relpath(os.path.abspath(__file__), os.path.abspath(src))
    hits = {}
    for f in repo_files(src):
        if f == here:
            continue
        t = text_of(os.path.join(src, f))
        if t is None:
            continue
        for n, line in enumerate(t.split("\n"), 1):
            if any(p.search(line) for p in OUTSIDE):
                hits.setdefault(f, []).append("%s:%d: %s" % (f, n, line.strip()[:160]))
    for f in sorted(hits):
        bad += 1
        for h in hits[f]:
            print("FAIL " + h)
    print("refs: %d file(s) name a document outside the repository" % len(hits))
    return bad


def deps(src):
    sh = open(os.path.join(src, "scripts", "deps.sh")).read()
    pkgs = []
    for m in re.finditer(r"^(\w+_pkgs)=\((.*?)\)", sh, re.M | re.S):
        body = re.sub(r"#[^\n]*", " ", m.group(2))
        pkgs += body.split()
    readme = open(os.path.join(src, "README.md")).read()
    bad = 0
    if len(pkgs) < 10:
        print("FAIL scripts/deps.sh: only %d packages parsed: the format changed?" % len(pkgs))
        bad += 1
    for p in sorted(set(pkgs)):
        if "`%s`" % p not in readme:
            print("FAIL README.md does not name `%s`, which scripts/deps.sh installs" % p)
            bad += 1
    print("deps: %d packages in scripts/deps.sh" % len(set(pkgs)))
    return bad


def main():
    modes = {"rules": rules, "refs": refs, "deps": deps}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        print(__doc__)
        return 2
    bad = modes[sys.argv[1]](os.path.abspath(sys.argv[2]))
    print("check_docs %s: %s" % (sys.argv[1], "%d failure(s)" % bad if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
