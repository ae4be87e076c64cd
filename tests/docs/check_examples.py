#!/usr/bin/env python3
"""tests/docs/check_examples.py — every command example in the docs runs and prints what it shows.

  check_examples.py NUMACMA SRC [--update] [FILE.md...]
      (ctest docs_examples) NUMACMA is the built `numacma` binary, SRC the source root. Reads
      README.md and every .md under docs/ (or the FILEs given, relative to SRC), runs each example
      and compares what it prints with what the document shows. Exit 0 when every example matches,
      1 when one does not (each difference is printed), 2 for bad usage or when no example was
      found at all (so that the check cannot pass by finding nothing).
      --update writes the output each failing command printed into the document in place of what
      it showed (wildcards of a failing command are lost: put them back by hand).

What an example is
  A fenced code block (``` or ~~~, indented or not) whose info string is empty or `console` and
  which has lines starting with `$ `. Each `$ ` line is a command; the lines after it, up to the
  next `$ ` line or the end of the block, are what it prints (stdout and stderr together, as a
  terminal shows them). A block of examples has nothing before its first `$ ` line.

  The commands of a block run in order in one bash process (so `$ M="..."` is seen by the lines
  after it), with the source root as the working directory and stdout and stderr on one
  pseudo-terminal (so they interleave as on a terminal). `numacma` is the built binary (PATH
  starts with a folder where `numacma` links to NUMACMA). NUMACMA_RUN_DIR (the shared pools'
  run directory) is a fresh temporary folder per document; in the output its path reads
  `/run/numacma`, the default, and any pool a document's examples reserve and leave is released
  (`numacma release NAME --force`) after its last block. LC_ALL=C, TZ=UTC.

  Commands may run only what any CI machine has: the fixtures under tests/data (`--sysfs-root`,
  `--proc-root`, ...), `demo --example`, the sim backing, files of the repository (a trace shown
  in the docs is a file under docs/examples/, shown with `$ cat`). Run it as root or as the owner
  of the source tree: `numacma doctor` over a host fixture asks access(2) whether the fixture's
  /dev/vfio nodes are read-write, which they are (mode 0644) for those two only.

How output is compared
  Line by line, after removing trailing spaces (and trailing empty lines) on both sides, exactly,
  except:
  - a line that is only `...` matches any number of lines, none included;
  - `…` (U+2026, one character) within a line matches any text on that line.
  Use the wildcards only for what depends on the host (a timing, the folder the examples are
  installed in) or where the prose says the output is shortened; never to hide a difference.
  - A command that exits with a status other than 0 fails the check unless its output ends with
    a line `[exit N]` naming that status (`; echo $?` shows it too, as part of the output).

Blocks that are not run
  An example that cannot run on a CI machine (root on real hardware: `vfio bind` of a real
  device, `nvme-selftest`, `reserve` of hugepages, a capture from a QEMU guest, a benchmark's
  timings) is written in a block whose info string has the word `norun` (```` ```console norun ````,
  ```` ```sh norun ````); root-on-hardware commands there use the `# ` prompt. Such blocks are
  counted and reported, never run. A block that is neither (no `$ ` lines, no `norun`) but shows
  numacma commands or output (a line starting with `numacma` or `# numacma`) is an error: it
  must be made runnable or marked.

The report gives, per file, the examples run and the blocks marked norun.
"""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
LOOKS_LIKE_CLI = re.compile(r"^(\$ |# numacma |numacma:? )")
WILD_LINE = "..."
WILD_TEXT = "\u2026"
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")
MARK = "\x1eNUMACMA-EXAMPLE-EXIT"
MARK_RE = re.compile(re.escape(MARK) + r" (\d+)\x1e\n")
BLOCK_TIMEOUT_S = 60


class Block:
    def __init__(self, path, start, end, indent, info, lines):
        self.path, self.start, self.end, self.indent, self.info, self.lines = path, start, end, indent, info, lines

    @property
    def words(self):
        return self.info.split()

    @property
    def norun(self):
        return "norun" in self.words or any(w.endswith("-norun") for w in self.words)


def blocks_of(path, text):
    """Fenced blocks of a Markdown text: (start line index of the opening fence, end index of the
    closing fence, indentation, info string, content lines with the fence's indentation removed)."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines):
            c = FENCE.match(lines[j])
            if c and c.group(2)[0] == fence[0] and len(c.group(2)) >= len(fence) and not c.group(3).strip():
                break
            j += 1
        body = [l[len(indent):] if l.startswith(indent) else l.lstrip() for l in lines[i + 1:j]]
        out.append(Block(path, i, j, indent, info, body))
        i = j + 1
    return out


def examples_of(block):
    """[(line index in the block, command, expected lines, expected exit)], or an error text."""
    cmds = [k for k, l in enumerate(block.lines) if l.startswith("$ ")]
    if not cmds:
        return []
    if any(l.strip() for l in block.lines[:cmds[0]]):
        return "text before the first `$ ` line of a block of examples"
    out = []
    for n, k in enumerate(cmds):
        end = cmds[n + 1] if n + 1 < len(cmds) else len(block.lines)
        expected = [l.rstrip() for l in block.lines[k + 1:end]]
        while expected and not expected[-1]:
            expected.pop()
        code = 0
        if expected and EXIT_LINE.match(expected[-1]):
            code = int(EXIT_LINE.match(expected.pop()).group(1))
        out.append((k, block.lines[k][2:], expected, code))
    return out


def line_matches(pattern, line):
    if WILD_TEXT not in pattern:
        return pattern == line
    rx = ".*".join(re.escape(p) for p in pattern.split(WILD_TEXT))
    return re.fullmatch(rx, line, re.S) is not None


def lines_match(expected, actual):
    """Whether the expected lines (with `...` lines and `…`) match the actual lines."""
    memo = {}

    def m(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i].strip() == WILD_LINE:
            r = any(m(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            r = j < len(actual) and line_matches(expected[i], actual[j]) and m(i + 1, j + 1)
        memo[(i, j)] = r
        return r

    return m(0, 0)


def run_block(commands, src, env):
    """Runs the commands in one bash on a pseudo-terminal; [(output lines, exit status)] or an
    error text."""
    script = ["set +e"]
    for c in commands:
        script.append(c)
        script.append("printf '\\036NUMACMA-EXAMPLE-EXIT %d\\036\\n' \"$?\"")
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", "\n".join(script) + "\n"],
                             cwd=src, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             start_new_session=True)
    finally:
        os.close(slave)
    data, deadline = b"", time.monotonic() + BLOCK_TIMEOUT_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.killpg(p.pid, 9)
            p.wait()
            os.close(master)
            return "timed out after %d s" % BLOCK_TIMEOUT_S
        r, _, _ = select.select([master], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal closed it
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    p.wait()
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    text = text.replace(env["NUMACMA_RUN_DIR"], "/run/numacma")
    parts = MARK_RE.split(text)
    results = []
    for n in range(len(commands)):
        if 2 * n + 1 >= len(parts):
            return "the commands stopped after %d of %d" % (n, len(commands))
        out = [l.rstrip() for l in parts[2 * n].split("\n")]
        while out and not out[-1]:
            out.pop()
        results.append((out, int(parts[2 * n + 1])))
    return results


def release_pools(numacma, env):
    pools = os.path.join(env["NUMACMA_RUN_DIR"], "pools")
    if not os.path.isdir(pools):
        return
    for name in sorted(os.listdir(pools)):
        subprocess.run([numacma, "release", name, "--force"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def check_file(path, rel, numacma, src, update, tmp):
    text = open(path, encoding="utf-8").read()
    blocks = blocks_of(rel, text)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=tmp)
    os.chmod(run_dir, 0o755)
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("NUMACMA_"):
            del env[k]
    env.update(NUMACMA_RUN_DIR=run_dir, PATH=os.path.join(tmp, "bin") + os.pathsep + env.get("PATH", ""),
               LC_ALL="C", TZ="UTC", TERM="dumb", COLUMNS="100")
    failures, ran, marked, replace = [], 0, 0, {}
    try:
        for b in blocks:
            where = "%s:%d" % (rel, b.start + 1)
            if b.norun:
                marked += 1
                continue
            has_cmd = any(l.startswith("$ ") for l in b.lines)
            if not has_cmd:
                if any(LOOKS_LIKE_CLI.match(l) for l in b.lines):
                    failures.append("%s: a block showing numacma commands or output is neither runnable "
                                    "(`$ ` lines) nor marked `norun`" % where)
                continue
            if b.words and b.words[0] not in ("console",):
                failures.append("%s: `$ ` lines in a block of info string %r: use ``` or ```console to run "
                                "them, or add `norun`" % (where, b.info))
                continue
            examples = examples_of(b)
            if isinstance(examples, str):
                failures.append("%s: %s" % (where, examples))
                continue
            results = run_block([e[1] for e in examples], src, env)
            if isinstance(results, str):
                failures.append("%s: %s" % (where, results))
                continue
            for (k, cmd, expected, code), (actual, got) in zip(examples, results):
                ran += 1
                cwhere = "%s:%d" % (rel, b.start + 2 + k)
                bad = []
                if got != code:
                    bad.append("exit status %d, the document %s" %
                               (got, "shows [exit %d]" % code if code else "shows none ([exit N] when not 0)"))
                if not lines_match(expected, actual):
                    bad.append("output differs")
                if bad:
                    msg = ["%s: $ %s: %s" % (cwhere, cmd, "; ".join(bad))]
                    if "output differs" in bad:
                        msg.append("  --- the document shows")
                        msg += ["  | " + l for l in expected]
                        msg.append("  --- the command printed")
                        msg += ["  | " + l for l in actual]
                    failures.append("\n".join(msg))
                    lines = list(actual) + (["[exit %d]" % got] if got else [])
                    replace[(b, k)] = lines
    finally:
        release_pools(numacma, env)
    if update and replace:
        doc = text.split("\n")
        # From the end, so that earlier indices stay valid.
        for (b, k) in sorted(replace, key=lambda bk: (bk[0].start, bk[1]), reverse=True):
            cmds = [i for i, l in enumerate(b.lines) if l.startswith("$ ")]
            nxt = [i for i in cmds if i > k]
            end = nxt[0] if nxt else len(b.lines)
            first, last = b.start + 1 + k + 1, b.start + 1 + end
            doc[first:last] = [(b.indent + l) if l else l for l in replace[(b, k)]]
        open(path, "w", encoding="utf-8").write("\n".join(doc))
    return ran, marked, failures


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    update = "--update" in argv[1:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    numacma, src = os.path.abspath(args[0]), os.path.abspath(args[1])
    if not os.access(numacma, os.X_OK):
        print("check_examples: %s is not an executable" % numacma, file=sys.stderr)
        return 2
    if args[2:]:
        files = args[2:]
    else:
        files = ["README.md"] + sorted(
            os.path.relpath(os.path.join(d, f), src)
            for d, _, fs in os.walk(os.path.join(src, "docs")) for f in fs if f.endswith(".md"))
    tmp = tempfile.mkdtemp(prefix="numacma-docs-")
    os.chmod(tmp, 0o755)
    os.mkdir(os.path.join(tmp, "bin"))
    os.symlink(numacma, os.path.join(tmp, "bin", "numacma"))
    total_ran, total_marked, failures = 0, 0, []
    try:
        for rel in files:
            ran, marked, fails = check_file(os.path.join(src, rel), rel, numacma, src, update, tmp)
            total_ran += ran
            total_marked += marked
            failures += fails
            print("%-22s %3d example(s) run, %2d block(s) marked norun%s" %
                  (rel, ran, marked, ", %d FAILED" % len(fails) if fails else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("\n" + f)
    print("\ncheck_examples: %d example(s) run, %d block(s) marked norun, %d failure(s)" %
          (total_ran, total_marked, len(failures)))
    if total_ran == 0:
        print("check_examples: no example found: nothing was checked", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
