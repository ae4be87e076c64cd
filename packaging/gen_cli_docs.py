#!/usr/bin/env python3
"""packaging/gen_cli_docs.py — numacma(1) and the bash completion, from the CLI itself.

  gen_cli_docs.py --cli BUILT_NUMACMA --version V --man-in numacma.1.in \\
                  --man OUT/numacma.1 --completion OUT/numacma
  gen_cli_docs.py --cli NUMACMA --list        the command paths, one a line

Runs `numacma --help`, finds its commands, runs `numacma CMD --help` for each
(and `numacma CMD SUB --help` for a command that has commands of its own), and
writes every command with its usage, positionals and options into the COMMANDS
section of the man page (@COMMANDS@ in the template; @VERSION@, @SUMMARY@ too)
and into a bash completion script. Nothing is written by hand about a command,
so neither can go stale: a command added to tools/numacma is in both at the
next build. tests/package/check_package.py checks the packaged page against
the packaged tool's --help.

The help is CLI11's: a description, "Usage: ...", then sections ("Options:",
"Positionals:", "Subcommands:" or any group name) of entries "  NAME  DESC"
(two spaces before NAME, two or more after it, continuation lines indented
deeper). A section's entry is a command when its name is one word and
`numacma PATH NAME --help` answers with a usage line for "numacma PATH NAME";
so commands are found whatever group they are listed under.
"""
import argparse
import os
import re
import subprocess
import sys

WORD = re.compile(r"^[a-z][a-z0-9_-]*$")


def run_help(cli, path):
    p = subprocess.run([cli] + list(path) + ["--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, COLUMNS="200"))
    return p.returncode, p.stdout.decode(errors="replace")


def parse_help(text):
    """{"description": [lines], "usage": str, "blocks": [(title, [(name, [desc lines])]) or
    (None, [text lines])]}"""
    lines = text.rstrip("\n").split("\n")
    desc, usage, blocks = [], "", []
    i = 0
    while i < len(lines) and not lines[i].startswith("Usage:"):
        if lines[i].strip():
            desc.append(lines[i].strip())
        i += 1
    if i < len(lines):
        # CLI11 names the program as it was started: a path when run from the build tree.
        usage = re.sub(r"^\S*/numacma\b", "numacma", lines[i][len("Usage:"):].strip())
        i += 1
    cur = None
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            cur = None
            continue
        m = re.match(r"^(\S.*):$", line)
        if m and not line.startswith(" "):
            cur = (m.group(1), [])
            blocks.append(cur)
            continue
        if cur is not None and cur[0] is not None:
            m = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
            if m and not line.startswith("   "):
                cur[1].append((m.group(1).strip(), [m.group(2).strip()] if m.group(2) else []))
                continue
            if line.startswith("   ") and cur[1]:
                cur[1][-1][1].append(line.strip())
                continue
        if cur is None or cur[0] is not None:  # text outside a section (a footer)
            cur = (None, [])
            blocks.append(cur)
        cur[1].append(line.rstrip())
    return {"description": desc, "usage": usage, "blocks": blocks}


def is_option_block(entries):
    return bool(entries) and all(n.startswith("-") for n, _ in entries)


def walk(cli, path=(), out=None):
    """[(path tuple, parsed help, [subcommand names])], depth first, in the tool's order."""
    out = [] if out is None else out
    rc, text = run_help(cli, path)
    if rc != 0:
        raise SystemExit("gen_cli_docs: `%s --help` exited %d:\n%s" % (" ".join([cli] + list(path)), rc, text))
    h = parse_help(text)
    subs = []
    for title, entries in h["blocks"]:
        if title is None or title.lower().startswith("positional") or is_option_block(entries):
            continue
        for name, _ in entries:
            if not WORD.match(name) or name in subs:
                continue
            src, sub_text = run_help(cli, path + (name,))
            sub_usage = parse_help(sub_text)["usage"]
            if src == 0 and re.match(r"^numacma %s(\s|$)" % re.escape(" ".join(path + (name,))), sub_usage):
                subs.append(name)
    out.append((path, h, subs))
    for s in subs:
        walk(cli, path + (s,), out)
    return out


# ---- roff ---------------------------------------------------------------------

def roff(text):
    text = text.replace("\\", "\\e")
    if text[:1] in (".", "'"):
        text = "\\&" + text
    return text


def roff_opt(name):
    """An option or positional column, e.g. "-o,--out TEXT [x]": names bold, the rest italic."""
    parts = name.split(" ", 1)
    names = roff(parts[0]).replace("-", "\\-")
    rest = roff(parts[1]) if len(parts) > 1 else ""
    return "\\fB%s\\fR" % names + (" \\fI%s\\fR" % rest if rest else "")


def man_commands(tree):
    out = []
    for path, h, subs in tree:
        if not path:
            continue
        out.append('.SS "numacma %s"' % " ".join(path))
        for d in h["description"]:
            out.append(roff(d))
        if h["usage"]:
            out += [".PP", ".B Usage:", roff(h["usage"]).replace("-", "\\-"), ".br"]
        for title, entries in h["blocks"]:
            if title is None:
                out += [".PP", ".nf"] + [roff(l) for l in entries] + [".fi"]
                continue
            if title.lower().startswith("option") and [n for n, _ in entries] == ["-h,--help"]:
                continue  # every command has --help; nothing else to say
            out += [".PP", ".I %s:" % roff(title)]
            for name, desc in entries:
                if name == "-h,--help":
                    continue
                out += [".TP", roff_opt(name) if not WORD.match(name) or title.lower().startswith("positional")
                        else "\\fB%s\\fR" % roff(name)]
                out += [roff(d) for d in desc] or [""]
        out.append("")
    return "\n".join(out).rstrip("\n")


# ---- bash completion ------------------------------------------------------------

def option_names(name):
    first = name.split(" ", 1)[0]
    return [n for n in first.split(",") if n.startswith("-")]


def takes_value(name):
    rest = name.split(" ", 1)[1] if " " in name else ""
    return bool(re.match(r"^[A-Z]", rest))


def choices(name):
    """The values an option takes when CLI11 lists them: "--policy TEXT:{kernel,nearest}"."""
    m = re.search(r"\{([^}]*)\}", name.split(" ", 1)[1] if " " in name else "")
    return [c for c in m.group(1).split(",") if c] if m else []


def completion(tree):
    subs, opts, valued, values = [], [], [], []
    for path, h, sub in tree:
        key = " ".join(("numacma",) + path)
        o, v = [], []
        for title, entries in h["blocks"]:
            if title is None or not is_option_block(entries):
                continue
            for name, _ in entries:
                o += option_names(name)
                if takes_value(name):
                    v += option_names(name)
                    if choices(name):
                        for n in option_names(name):
                            values.append('    "%s %s") echo "%s" ;;' % (key, n, " ".join(choices(name))))
        if sub:
            subs.append('    "%s") echo "%s" ;;' % (key, " ".join(sub)))
        opts.append('    "%s") echo "%s" ;;' % (key, " ".join(o)))
        if v:
            valued.append('    "%s") echo "%s" ;;' % (key, " ".join(v)))
    return """# bash completion for numacma(1). Generated from `numacma --help` at build time
# by packaging/gen_cli_docs.py: do not edit (edit the commands in tools/numacma).

_numacma_subcommands() {
  case "$1" in
%s
  esac
}

_numacma_options() {
  case "$1" in
%s
  esac
}

_numacma_valued_options() {
  case "$1" in
%s
  esac
}

_numacma_option_values() {
  case "$1" in
%s
  esac
}

_numacma() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local path="numacma" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case " $(_numacma_subcommands "$path") " in
      *" ${COMP_WORDS[i]} "*) path="$path ${COMP_WORDS[i]}" ;;
    esac
  done
  COMPREPLY=()
  if [[ $COMP_CWORD -gt 1 && " $(_numacma_valued_options "$path") " == *" $prev "* ]]; then
    local values
    values="$(_numacma_option_values "$path $prev")"
    if [[ -n $values ]]; then
      COMPREPLY=($(compgen -W "$values" -- "$cur"))
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_numacma_options "$path")" -- "$cur"))
  else
    local subs
    subs="$(_numacma_subcommands "$path")"
    if [[ -n $subs ]]; then
      COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
  fi
}
complete -o filenames -F _numacma numacma
""" % ("\n".join(subs), "\n".join(opts), "\n".join(valued), "\n".join(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--list", action="store_true", help="print the command paths, one a line")
    ap.add_argument("--version", default="")
    ap.add_argument("--man-in")
    ap.add_argument("--man")
    ap.add_argument("--completion")
    a = ap.parse_args()
    tree = walk(os.path.abspath(a.cli))
    if a.list:
        for path, _, _ in tree:
            if path:
                print(" ".join(path))
        return 0
    root = tree[0][1]
    if len(tree) < 2:
        raise SystemExit("gen_cli_docs: `numacma --help` lists no command")
    summary = root["description"][0] if root["description"] else "per-NUMA contiguous DMA memory"
    summary = re.sub(r"^numacma:\s*", "", summary)
    if a.man:
        page = open(a.man_in).read()
        for k, v in (("@VERSION@", a.version), ("@SUMMARY@", roff(summary)), ("@COMMANDS@", man_commands(tree))):
            if k not in page:
                raise SystemExit("gen_cli_docs: %s has no %s" % (a.man_in, k))
            page = page.replace(k, v)
        with open(a.man + ".tmp", "w") as f:
            f.write(page)
        os.replace(a.man + ".tmp", a.man)
    if a.completion:
        with open(a.completion + ".tmp", "w") as f:
            f.write(completion(tree))
        os.replace(a.completion + ".tmp", a.completion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
