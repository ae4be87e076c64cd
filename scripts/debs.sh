#!/usr/bin/env bash
# scripts/debs.sh ARCH PKG... — Debian packages the QEMU guests boot or run
# (the guest kernel and its modules, busybox-static for arm64), fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into a cache. Nothing is
# installed: the host's /boot, /lib/modules and boot loader are not touched.
#
#   build/debs/<ARCH>/debs/<pkg>_<version>_<ARCH>.deb
#   build/debs/<ARCH>/root/<pkg>_<version>/     (the unpacked tree; a kernel's
#                                                modules get their modules.dep: depmod -b)
#
# ARCH is a Debian architecture (amd64, arm64); PKG a package name without
# ":ARCH", or PKG=VERSION for that version. The meta package linux-image-ARCH
# stands for the kernel image it depends on today (e.g.
# linux-image-6.1.0-57-amd64, linux-image-6.1.0-56-arm64). Versions not given
# come from apt (the candidate), so a fresh machine at a later date gets the
# current ones; a tree already unpacked for that version is reused (nothing is
# downloaded twice). Prints one line per PKG: the unpacked tree. Users: the
# guests of tests/vm (vm.py guest_trees()) and the arm64 kernel oracle
# (tests/kernel/build_kernel_arm64.py: the image and headers of the version
# of linux-source-6.1).
# A foreign ARCH needs `dpkg --add-architecture ARCH` and an apt-get update
# (scripts/deps.sh test does both for arm64).
#   NUMACMA_DEBS_CACHE=DIR    cache folder (default: <repo>/build/debs)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 ARCH PKG..." >&2; exit 2; }
arch="$1"; shift
cache="${NUMACMA_DEBS_CACHE:-$root/build/debs}/$arch"
mkdir -p "$cache/debs" "$cache/root"
exec 9>"$cache/.lock"   # one fetch at a time (the guests share the cache)
flock 9

fix="(dpkg --add-architecture $arch && apt-get update)"
[ "$arch" = "$(dpkg --print-architecture)" ] && fix="(apt-get update)"

candidate() {  # pkg -> version apt would install (empty if unknown)
  apt-cache policy "$1:$arch" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)' || true
}

for p in "$@"; do
  want=""
  case "$p" in *=*) want="${p#*=}"; p="${p%%=*}" ;; esac
  pkg="${p%:"$arch"}"
  if [ -z "$want" ] && [ "$pkg" = "linux-image-$arch" ]; then
    # The meta package's dependency is the versioned image (signed or not).
    dep="$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null |
           sed -n "s/^ *Depends: \(linux-image-[0-9][^:]*-$arch\)\(:$arch\)\?\$/\1/p" | head -1)"
    [ -n "$dep" ] || { echo "debs.sh: apt knows no linux-image-$arch:$arch $fix" >&2; exit 1; }
    pkg="$dep"
  fi
  ver="${want:-$(candidate "$pkg")}"
  [ -n "$ver" ] || { echo "debs.sh: apt knows no $pkg:$arch $fix" >&2; exit 1; }
  fver="${ver//:/%3a}"  # apt-get download's file name spells the epoch colon so
  dir="$cache/root/${pkg}_${ver//:/_}"
  if [ ! -f "$dir/.done" ]; then
    deb="$cache/debs/${pkg}_${fver}_$arch.deb"
    if [ ! -s "$deb" ]; then
      (cd "$cache/debs" && apt-get download -q "$pkg:$arch=$ver" >&2) ||
        { echo "debs.sh: apt-get download $pkg:$arch=$ver failed" >&2; exit 1; }
    fi
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp"
    rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.done"
  fi
  for m in "$dir"/lib/modules/*/; do  # the .deb has no modules.dep (depmod runs at install)
    [ -d "$m" ] && [ ! -s "$m/modules.dep" ] && depmod -b "$dir" "$(basename "$m")"
  done
  echo "$dir"
done
