#!/usr/bin/env python3
"""tests/kernel/oracle.py — the real kernel as the oracle: differential tests of
`numacma replay` / `numacma plan` against Linux 6.12's own per-NUMA CMA and
dma_alloc_coherent, run in multi-node QEMU (TCG) guests.

  oracle.py list                          the ctest names (diff_<topo>, reserve)
  oracle.py diff TOPO --cli BIN [--kernel-dir DIR] [--work DIR] [--seed S]
      for each parameter string of the topology: generates a seeded trace,
      boots the guest with those parameters (built by build_kernel.py: a
      minimal kernel, the test module numacma_dma_test.ko, the static runner
      kdiff_runner and busybox in an initramfs written here), runs the trace
      through dma_alloc_coherent in the guest, rebuilds the guest's sysfs tree
      from its dump, runs the same trace through `numacma replay` on that tree
      and compares every decision and the final per-area counters; also
      compares the areas the kernel reserved with `numacma plan`
      --trace FILE [--params P]: the same for a given trace (e.g. a prefix to
      check against the kernel again)
  oracle.py reserve --cli BIN [...]       boots each topology with each string of
      RESERVE_SWEEP (no trace) and compares the areas the kernel reserved
      (name, node, size) with `numacma plan`
      --arch arm64: RESERVE_SWEEP_ARM64 against Debian's arm64 kernel
  The a* topologies boot Debian's own arm64 kernel (6.1, built by
  build_kernel_arm64.py) in qemu-system-aarch64 `virt` guests and compare with
  `numacma replay/plan --arch arm64`; the k* ones the x86-64 6.12 build.
  oracle.py gen TOPO PARAMS [--seed S]    prints a trace (what `diff` would run)
  oracle.py qemu-args TOPO PARAMS         the QEMU command line (to run by hand)

Exit status: 0 no divergence, 1 divergences (each printed with the trace prefix
that reproduces it), 2 the harness could not run (no kernel build, a guest that
did not finish, numacma could not be run at all).

What is compared, per decision (allocs and frees, in trace order):
  success; the area (the kernel's: the CMA area whose [base_pfn, base_pfn+count)
  holds the DMA address, else "pages"); the offset of the buffer inside its
  area; the node of the buffer (page_to_nid in the kernel, the decision's node
  in numacma); at the end, per area, the counters alloc_pages_success,
  alloc_pages_fail, release_pages_success (deltas over the trace), used and
  maxchunk. The traces are made of epochs that end with every buffer freed, so
  the prefix that reproduces a divergence starts at its epoch's first line
  (CMA bitmaps are empty there on both sides).
"""
import argparse
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # leave no __pycache__ in tests/kernel or tests/guest
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(ROOT, "tests", "guest")]
from oracle_commands import run_diff, run_reserve  # noqa: E402
from oracle_guest import qemu_args  # noqa: E402
from oracle_topologies import TOPOLOGIES, arch_of  # noqa: E402
from oracle_trace import gen_trace  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cli", required=True, help="the numacma binary")
    common.add_argument("--kernel-dir", default=os.path.join(ROOT, "build", "kernel"))
    common.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "numacma-kernel-tests"))
    common.add_argument("--timeout", type=int, default=200, help="seconds per guest")
    d = sub.add_parser("diff", parents=[common])
    d.add_argument("topology", choices=sorted(TOPOLOGIES))
    d.add_argument("--seed", type=int, default=int(os.environ.get("NUMACMA_KERNEL_SEED", "1")),
                   help="trace seed (default $NUMACMA_KERNEL_SEED or 1)")
    d.add_argument("--ops", type=int, default=None, help="trace lines per run (default: the topology's)")
    d.add_argument("--mask28", type=float, default=None,
                   help="share of allocations with a 28-bit mask (default: the topology's)")
    d.add_argument("--mask30", type=float, default=None,
                   help="share of allocations with a 30-bit mask (default: the topology's)")
    d.add_argument("--mask32", type=float, default=None,
                   help="allocations with a mask of 32 bits or less: the share below which a draw gets a "
                        "32-bit mask (default: the topology's, 0.27; includes the 28- and 30-bit shares)")
    d.add_argument("--params", help="run only these parameters (default: the topology's strings)")
    d.add_argument("--trace", help="run this trace instead of generated ones (one epoch; e.g. a divergence's "
                                    "prefix, to check it against the kernel again)")
    d.add_argument("--no-minimise", action="store_true",
                   help="skip the second boot that confirms shorter prefixes of each divergence")
    r = sub.add_parser("reserve", parents=[common])
    r.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64",
                   help="which kernel: the 6.12 x86-64 build (k* topologies) or Debian's arm64 6.1 (a*)")
    r.add_argument("--case", action="append", default=[], metavar="TOPO:PARAMS",
                   help="boot only these (repeatable; default: RESERVE_SWEEP)")
    g = sub.add_parser("gen")
    g.add_argument("topology", choices=sorted(TOPOLOGIES))
    g.add_argument("params")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--ops", type=int, default=None)
    q = sub.add_parser("qemu-args")
    q.add_argument("topology", choices=sorted(TOPOLOGIES))
    q.add_argument("params")
    a = ap.parse_args()
    if a.cmd == "list":
        for t in sorted(TOPOLOGIES):
            if TOPOLOGIES[t]["params"]:
                print(("arm64_diff_" if arch_of(t) == "arm64" else "diff_") + t)
        print("reserve")
        print("arm64_reserve")
        return 0
    if a.cmd == "diff":
        return run_diff(a)
    if a.cmd == "reserve":
        return run_reserve(a)
    if a.cmd == "gen":
        for text, _ in gen_trace(a.topology, a.params, a.seed, a.ops):
            print(text)
        return 0
    print(" ".join(qemu_args(a.topology, a.params, "BZIMAGE", "INITRD", "CONSOLE", "DATA")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
