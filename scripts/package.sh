#!/usr/bin/env bash
# scripts/package.sh — the Debian package: build/package/numacma_<version>_<arch>.deb
#
#   sudo ./scripts/package.sh && sudo apt install ./build/package/numacma_*.deb
#
# Installs the packages it needs that are missing (scripts/deps.sh package; not as
# root it prints the apt-get line and stops), configures build/package/tree
# for /usr (Release; the library in Debian's multiarch directory; no tests;
# `numacma bench` without its DPDK peers, so the package needs no DPDK
# library), builds it, runs cpack (cmake/packaging.cmake) and checks the
# package it made (tests/package/check_package.py: files, soname, Depends,
# the unit, man pages and completion against the packaged tool). Prints the
# path of the .deb last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/deps.sh package
out=build/package
tree="$out/tree"
mkdir -p "$out"
bash scripts/build.sh "$tree" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DNUMACMA_BUILD_TESTS=OFF -DNUMACMA_VM_TESTS=OFF -DNUMACMA_BENCH_DPDK=OFF \
  >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; echo "package.sh: build failed ($out/build.log)" >&2; exit 1; }
version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$tree/CMakeCache.txt")"
deb="$out/numacma_${version}_$(dpkg --print-architecture).deb"
rm -f "$deb"
cpack -G DEB --config "$tree/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1 ||
  { cat "$out/cpack.log"; echo "package.sh: cpack failed" >&2; exit 1; }
python3 tests/package/check_package.py deb --source "$root" --version "$version" --deb "$deb" --multiarch \
  >"$out/check.log" 2>&1 || { cat "$out/check.log"; echo "package.sh: the package failed its checks" >&2; exit 1; }
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\):/  \1:/p'
echo "$root/$deb"
