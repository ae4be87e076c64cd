#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian 12 packages numacma needs, when missing.
#
#   scripts/deps.sh [build|package|test|bench|all]     (default: all)
#
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

what="${1:-all}"
# python3: numacma(1) and the bash completion are generated from the CLI at
# build time (packaging/gen_cli_docs.py).
build_pkgs=(cmake ninja-build g++ pkg-config libnuma-dev libcli11-dev nlohmann-json3-dev
            libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev ccache robin-map-dev python3)
# scripts/package.sh and the package test: cpack's DEB generator finds the ELF
# files with file(1) and the Depends with dpkg-shlibdeps (dpkg-dev); groff
# checks that the man pages render without a warning.
package_pkgs=(dpkg-dev file groff-base binutils)
# No kernel is installed on the host: the guests of tests/vm boot Debian's
# linux-image-amd64 (and linux-image-arm64) unpacked from its .deb into
# build/debs/ by scripts/debs.sh, whose depmod is kmod's.
test_pkgs=(clang libclang-rt-14-dev python3 qemu-system-x86 busybox-static cpio kmod
           # tests/kernel: builds a minimal Linux 6.12 and an out-of-tree module from source
           linux-source-6.12 xz-utils make gcc bc flex bison libelf-dev libssl-dev)
# numacma_dpdk, its tests and the dpdk2 guest (a static numacma-dpdkcheck needs
# the archives of libbsd and libmd, which libdpdk-dev's shared libraries use);
# bench: DPDK's rte_mempool as a peer.
dpdk_pkgs=(libdpdk-dev libbsd-dev libmd-dev)
# arm64 (issue 10): the cross toolchain and arm64 libraries (multiarch: needs
# `dpkg --add-architecture arm64`, done below when one of these is missing),
# QEMU for aarch64 guests. tests/vm (arm64 guests) and tests/kernel (the arm64
# kernel as an oracle) add what they need to these two lists.
arm64_pkgs=(g++-aarch64-linux-gnu libnuma-dev:arm64 qemu-system-arm kmod)
arm64_kernel_pkgs=(linux-source-6.1 kmod)  # tests/kernel: the arm64 kernel oracle (build_kernel_arm64.py)

case "$what" in
  build)   pkgs=("${build_pkgs[@]}") ;;
  package) pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}") ;;
  test)    pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}" "${test_pkgs[@]}" "${arm64_pkgs[@]}"
                 "${arm64_kernel_pkgs[@]}" "${dpdk_pkgs[@]}") ;;
  bench)   pkgs=("${build_pkgs[@]}" "${dpdk_pkgs[@]}") ;;
  all)     pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}" "${test_pkgs[@]}" "${arm64_pkgs[@]}"
                 "${arm64_kernel_pkgs[@]}" "${dpdk_pkgs[@]}") ;;
  *) echo "usage: $0 [build|package|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages; run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A package named pkg:arm64 needs the arm64 architecture (multiarch).
if [[ " ${missing[*]}" == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
