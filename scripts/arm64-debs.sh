#!/usr/bin/env bash
# scripts/arm64-debs.sh PKG... — arm64 .debs that cannot be installed next to
# their amd64 twins (busybox-static:arm64, the arm64 kernel image), fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` into a cache:
#
#   build/arm64/debs/<pkg>_<version>_arm64.deb
#   build/arm64/root/<pkg>_<version>/          (the unpacked tree; a kernel's
#                                               modules get their modules.dep: depmod -b)
#
# PKG is an arm64 package name without ":arm64"; the meta package
# linux-image-arm64 stands for the kernel image it depends on today (e.g.
# linux-image-6.1.0-56-arm64). Versions come from apt (the candidate), so a
# fresh machine at a later date gets the current ones; a tree already
# unpacked for that version is reused (nothing is downloaded twice).
# Prints one line per PKG: the unpacked tree. Needs `dpkg --add-architecture
# arm64` and an apt-get update (scripts/deps.sh test does both).
#   NUMACMA_ARM64_CACHE=DIR    cache folder (default: <repo>/build/arm64)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${NUMACMA_ARM64_CACHE:-$root/build/arm64}"
mkdir -p "$cache/debs" "$cache/root"
exec 9>"$cache/.lock"   # one fetch at a time (the guests and tests/kernel share the cache)
flock 9

candidate() {  # pkg -> version apt would install (empty if unknown)
  apt-cache policy "$1:arm64" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)' || true
}

for p in "$@"; do
  pkg="${p%:arm64}"
  if [ "$pkg" = linux-image-arm64 ]; then
    # The meta package's dependency is the versioned image (signed or not).
    dep="$(apt-cache depends "linux-image-arm64:arm64" 2>/dev/null |
           sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\)\(:arm64\)\?$/\1/p' | head -1)"
    [ -n "$dep" ] || { echo "arm64-debs.sh: apt knows no linux-image-arm64:arm64 (dpkg --add-architecture arm64 && apt-get update)" >&2; exit 1; }
    pkg="$dep"
  fi
  ver="$(candidate "$pkg")"
  [ -n "$ver" ] || { echo "arm64-debs.sh: apt knows no $pkg:arm64 (dpkg --add-architecture arm64 && apt-get update)" >&2; exit 1; }
  fver="${ver//:/%3a}"  # apt-get download's file name spells the epoch colon so
  dir="$cache/root/${pkg}_${ver//:/_}"
  if [ ! -f "$dir/.done" ]; then
    deb="$cache/debs/${pkg}_${fver}_arm64.deb"
    if [ ! -s "$deb" ]; then
      (cd "$cache/debs" && apt-get download -q "$pkg:arm64=$ver" >&2) ||
        { echo "arm64-debs.sh: apt-get download $pkg:arm64=$ver failed" >&2; exit 1; }
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
