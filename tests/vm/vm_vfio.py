"""tests/vm/vm_vfio.py — the VFIO checks of the q35-iommu guest (vfio2) and
of the arm64 guests with an NVMe: (name, guest shell command) pairs, run by
/init in this order (vm_initramfs.init_script()). Their vmcheck side:
tests/vm/guest/vfio_*.cpp."""
from vm_topologies import TOPOLOGIES, bdfs, device_vars, fill, kernel_variant

# The VFIO checks of an arm64 guest with an NVMe (numacma nvme-selftest
# behind the SMMUv3): as vfio2's, on the one controller.
ARM64_VFIO_CHECKS = [
    ("vfio_bind", "numacma vfio bind {nvme0} && numacma vfio bind {nvme0} && numacma topo | grep -e {nvme0}"),
    ("vfio_nvme_node{nvme0_node}", "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node}"),
    ("vfio_selftest_json_node{nvme0_node}",
     "numacma nvme-selftest {nvme0} --json > /tmp/st0.json; rc=$?; cat /tmp/st0.json; "
     "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st0.json {nvme0_node}"),
    ("vfio_mask28", "numacma nvme-selftest {nvme0} --dma-bits 28 --json > /tmp/m28.json; rc=$?; cat /tmp/m28.json; "
                    "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/m28.json {nvme0_node} 28 && "
                    "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node} 28"),
    ("vfio_unbind", "numacma vfio unbind {nvme0} && [ ! -e /sys/bus/pci/devices/{nvme0}/driver ]"),
]


# vfio2's checks after vfio_smoke and topo (name, guest shell command), run in
# this order before vfio_dmesg. In a command, {nvme0} {nvme1} {edu} (also {edu0})
# stand for the devices' guest BDFs and {nvme0_node} {nvme1_node} {edu_node}
# for their nodes (see device_vars()). vfio_bind binds both NVMe controllers
# to vfio-pci with `numacma vfio bind` (the edu stays unbound: it is the
# "not bound" case of vfio_errors); vfio_unbind gives them back at the end.
# The vmcheck side of each check: tests/vm/guest/vfio_checks.cpp.
VFIO_CHECKS = [
    ("vfio_bind", "numacma vfio bind {nvme0} && numacma vfio bind {nvme1} && numacma vfio bind {nvme1} && "
                  "numacma topo | grep -e {nvme0} -e {nvme1} -e {edu}"),
    ("vfio_nvme_node0", "numacma-vmcheck vfio-nvme {nvme0} {nvme0_node}"),
    ("vfio_nvme_node1", "numacma-vmcheck vfio-nvme {nvme1} {nvme1_node}"),
    ("vfio_selftest_json_node0", "numacma nvme-selftest {nvme0} --json > /tmp/st0.json; rc=$?; cat /tmp/st0.json; "
                                 "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st0.json {nvme0_node}"),
    ("vfio_selftest_json_node1", "numacma nvme-selftest {nvme1} --json > /tmp/st1.json; rc=$?; cat /tmp/st1.json; "
                                 "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/st1.json {nvme1_node}"),
    ("vfio_mask28", "numacma nvme-selftest {nvme1} --dma-bits 28 --json > /tmp/m28.json; rc=$?; cat /tmp/m28.json; "
                    "[ $rc -eq 0 ] && numacma-vmcheck vfio-json /tmp/m28.json {nvme1_node} 28 && "
                    "numacma-vmcheck vfio-nvme {nvme1} {nvme1_node} 28"),
    ("vfio_fault", "numacma-vmcheck vfio-fault {nvme0}"),
    ("vfio_attach_later", "numacma-vmcheck vfio-attach {nvme0} {nvme1}"),
    ("vfio_dma_avail", "numacma-vmcheck vfio-avail {nvme1} 10000"),
    ("vfio_errors", "numacma-vmcheck vfio-errors {nvme0} {edu}"),
    ("vfio_bench", "numacma-vmcheck vfio-bench {nvme1} {nvme1_node}"),
    ("vfio_unbind", "numacma vfio unbind {nvme0} && numacma vfio unbind {nvme1} && "
                    "[ ! -e /sys/bus/pci/devices/{nvme0}/driver ] && [ ! -e /sys/bus/pci/devices/{nvme1}/driver ]"),
]


# vfio_unbind where the nvme driver is built in (iommufd2): the controllers
# had no driver before vfio_bind (/init took them from nvme) and nothing is
# remembered, so the kernel picks on unbind, and nvme takes them back.
VFIO_UNBIND_BUILTIN = (
    "vfio_unbind", "numacma vfio unbind {nvme0} && numacma vfio unbind {nvme1} && "
                   "[ \"$(basename $(readlink /sys/bus/pci/devices/{nvme0}/driver))\" = nvme ] && "
                   "[ \"$(basename $(readlink /sys/bus/pci/devices/{nvme1}/driver))\" = nvme ]")


# Shell the data checks start with. nvme_up BDF: loads the kernel's nvme
# driver (once; where it is built in, /nvme-modules is empty, and BDF, which
# /init took from it, is probed again), waits for BDF's namespace and its
# /dev node, prints its name. lnk: the name a link points to. mbr DEV: writes a known first MiB
# to DEV: random bytes under an MBR with one Linux partition (LBA 2048, 8 MiB),
# kept in /tmp/head; the kernel reads the table again.
DATA_SHELL = r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
lnk() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo -; fi; }
nvme_up() {
  if [ -s /nvme-modules ]; then
    [ -d /sys/module/nvme ] || for m in $(cat /nvme-modules); do insmod /$m || echo "insmod /$m FAILED" >&2; done
  else
    [ -e /sys/bus/pci/devices/$1/driver ] || echo $1 > /sys/bus/pci/drivers_probe
  fi
  i=0
  while [ $i -lt 600 ]; do
    for n in /sys/bus/pci/devices/$1/nvme/nvme*/nvme*n1; do
      [ -e "$n" ] && [ -b /dev/${n##*/} ] && { echo ${n##*/}; return 0; }
    done
    usleep 100000; i=$((i + 1))
  done
  echo "no namespace of $1 after 60 s (driver $(lnk /sys/bus/pci/devices/$1/driver))" >&2; return 1
}
mbr() {
  dd if=/dev/urandom of=/tmp/head bs=512 count=2048 2>/dev/null
  dd if=/dev/zero of=/tmp/head bs=1 seek=446 count=64 conv=notrunc 2>/dev/null
  printf '\000\040\041\000\203\376\377\377\000\010\000\000\000\100\000\000' |
    dd of=/tmp/head bs=1 seek=446 conv=notrunc 2>/dev/null
  printf '\125\252' | dd of=/tmp/head bs=1 seek=510 conv=notrunc 2>/dev/null
  dd if=/tmp/head of=/dev/$1 bs=4096 conv=fsync 2>/dev/null && blockdev --rereadpt /dev/$1
}
"""

# The checks that the user's data survives (run after vfio_unbind, before
# vfio_dmesg; each binds the controllers to the kernel's nvme driver first):
# a default nvme-selftest gives every byte back, and `vfio bind` refuses a
# disk with a mounted file system or active swap, the disk staying on nvme.
VFIO_DATA_CHECKS = [
    ("vfio_selftest_restores", DATA_SHELL + r"""ns=$(nvme_up {nvme0}) || exit 1
mbr $ns || exit 1
want=$(md5sum < /tmp/head)
[ -e /sys/class/block/${ns}p1 ] && echo "{nvme0}: $ns, partition ${ns}p1, first MiB md5 $want" ||
  bad "the kernel found no partition on $ns"
numacma vfio bind {nvme0} || exit 1
numacma nvme-selftest {nvme0} --json > /tmp/rs.json 2> /tmp/rs.err; rc=$?
cat /tmp/rs.json /tmp/rs.err
[ $rc -eq 0 ] || bad "nvme-selftest exit $rc"
grep -q '"mode":"restore"' /tmp/rs.json && grep -q '"restored":true' /tmp/rs.json || bad "not restored"
grep -q "{nvme0} namespace 1: LBAs 0-63 .*(read-modify-restore)" /tmp/rs.err || bad "not announced"
numacma vfio unbind {nvme0} || exit 1
ns=$(nvme_up {nvme0}) || exit 1
got=$(dd if=/dev/$ns bs=4096 count=256 2>/dev/null | md5sum)
echo "after the self-test: $ns, first MiB md5 $got"
[ "$got" = "$want" ] || bad "the first MiB of $ns changed (md5 $got, was $want)"
[ -e /sys/class/block/${ns}p1 ] || bad "the partition table of $ns is gone"
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("vfio_bind_refuses_mounted", DATA_SHELL + r"""ns=$(nvme_up {nvme0}) || exit 1
[ -e /sys/class/block/${ns}p1 ] || mbr $ns || exit 1
mke2fs /dev/${ns}p1 > /dev/null || exit 1
mkdir -p /mnt/data && mount -t ext2 /dev/${ns}p1 /mnt/data || exit 1
echo kept > /mnt/data/file && sync
numacma vfio bind {nvme0} 2> /tmp/b.err; rc=$?; cat /tmp/b.err
[ $rc -eq 1 ] || bad "vfio bind exit $rc, want 1"
grep -q "{nvme0} is in use: ${ns}p1 is mounted on /mnt/data" /tmp/b.err || bad "the message does not name the mount"
d=$(lnk /sys/bus/pci/devices/{nvme0}/driver); echo "driver: $d"
[ "$d" = nvme ] || bad "{nvme0} is on $d, not nvme"
[ "$(cat /mnt/data/file)" = kept ] || bad "the file system lost its file"
umount /mnt/data
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("vfio_bind_refuses_swap", DATA_SHELL + r"""ns=$(nvme_up {nvme1}) || exit 1
mkswap /dev/$ns > /dev/null && swapon /dev/$ns || exit 1
cat /proc/swaps
numacma vfio bind {nvme1} 2> /tmp/s.err; rc=$?; cat /tmp/s.err
[ $rc -eq 1 ] || bad "vfio bind exit $rc, want 1"
grep -q "{nvme1} is in use: $ns is used as swap" /tmp/s.err || bad "the message does not name the swap"
d=$(lnk /sys/bus/pci/devices/{nvme1}/driver); echo "driver: $d"
[ "$d" = nvme ] || bad "{nvme1} is on $d, not nvme"
grep -q "^/dev/$ns " /proc/swaps || bad "the swap is gone"
swapoff /dev/$ns
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
]


# Guest shell (busybox) for vfio_smoke, a %-format: %(devs)s are "BDF NODE KIND"
# lines, %(nvmes)s the NVMe BDFs (write a literal % as %%).
VFIO_SMOKE = r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
lnk() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo -; fi; }
echo "-- PCI devices (sysfs): bdf class vendor:device numa_node iommu_group driver"
for d in /sys/bus/pci/devices/*; do
  echo "${d##*/} $(cat $d/class) $(cat $d/vendor):$(cat $d/device) node=$(cat $d/numa_node) group=$(lnk $d/iommu_group) driver=$(lnk $d/driver)"
done
if [ -e /proc/modules ]; then
  echo "-- modules: $(cut -d" " -f1 /proc/modules | tr "\n" " ")"
  for m in vfio vfio_iommu_type1 vfio_pci_core vfio_pci; do
    grep -q "^$m " /proc/modules || bad "module $m not loaded"
  done
else
  # a kernel without modules (iommufd2): built in, they show in /sys/module
  # by their parameters (vfio_pci_core has none) and vfio-pci as a driver
  echo "-- modules: none, the kernel has no module support (all built in)"
  for m in vfio vfio_iommu_type1 vfio_pci; do
    [ -d /sys/module/$m ] && echo "$m: built in" || bad "$m not built in (no /sys/module/$m)"
  done
  [ -d /sys/bus/pci/drivers/vfio-pci ] || bad "no vfio-pci driver in /sys/bus/pci/drivers"
fi
for u in /sys/class/iommu/*; do
  echo "${u##*/}: $(for f in version cap ecap address; do echo -n "$f=$(cat $u/intel-iommu/$f 2>/dev/null) "; done)"
done
if [ -c /dev/vfio/vfio ]; then echo "/dev/vfio/vfio: ok"; else bad "/dev/vfio/vfio missing"; fi
echo "%(devs)s" | while read bdf node kind; do
  d=/sys/bus/pci/devices/$bdf
  [ -e $d ] || { bad "$kind $bdf not in /sys/bus/pci/devices"; continue; }
  n=$(cat $d/numa_node)
  if [ "$n" = "$node" ]; then echo "$kind $bdf numa_node=$n: ok"; else bad "$kind $bdf numa_node=$n, want $node"; fi
  [ -L $d/iommu_group ] || { bad "$kind $bdf has no iommu_group"; continue; }
  g=$(lnk $d/iommu_group)
  echo "$kind $bdf iommu_group=$g (members: $(ls /sys/kernel/iommu_groups/$g/devices | tr "\n" " "))"
  echo "$kind $bdf reserved_regions: $(tr "\n" ";" < /sys/kernel/iommu_groups/$g/reserved_regions)"
  echo "$kind $bdf iommu_group type: $(cat /sys/kernel/iommu_groups/$g/type 2>/dev/null)"
  drv=$(lnk $d/driver)
  [ "$drv" = - ] || bad "$kind $bdf starts bound to $drv, want unbound"
  [ $kind = nvme ] || continue
  echo vfio-pci > $d/driver_override && echo $bdf > /sys/bus/pci/drivers_probe
  drv=$(lnk $d/driver)
  if [ "$drv" = vfio-pci ]; then echo "$kind $bdf bound to vfio-pci: ok"; else bad "$kind $bdf driver=$drv after drivers_probe"; fi
  if [ -c /dev/vfio/$g ]; then echo "/dev/vfio/$g: ok"; else bad "/dev/vfio/$g missing"; fi
done > /tmp/smoke.out
cat /tmp/smoke.out; grep -q "^FAIL" /tmp/smoke.out && fail=1
echo "-- /dev/vfio: $(ls /dev/vfio | tr "\n" " ")"
for bdf in %(nvmes)s; do
  d=/sys/bus/pci/devices/$bdf
  [ -e $d/driver ] && echo $bdf > $d/driver/unbind
  echo > $d/driver_override
  if [ -e $d/driver ]; then bad "$bdf still bound to $(lnk $d/driver)"; else echo "$bdf unbound again"; fi
done
echo "-- dmesg (DMAR / IOMMU / vfio)"
dmesg | grep -i -e dmar -e iommu -e vfio | tail -40
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""


# iommufd2 (our kernel, built with IOMMUFD and VFIO_DEVICE_CDEV), right after
# vfio_bind: the iommufd pieces exist next to the group/container interface.
# /dev/iommu; for each NVMe bound to vfio-pci its group node /dev/vfio/<group>
# and its device cdev: /sys/bus/pci/devices/<bdf>/vfio-dev/vfioN, whose dev
# (major:minor) is that of /dev/vfio/devices/vfioN; the container /dev/vfio/vfio
# (type1) still there; no-IOMMU mode built (vfio's enable_unsafe_noiommu_mode
# parameter) and off.
IOMMUFD_CHECK = ("iommufd_cdev", r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
lnk() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo -; fi; }
ls -l /dev/iommu /dev/vfio/vfio; ls -l /dev/vfio/ /dev/vfio/devices/
[ -c /dev/iommu ] && echo "/dev/iommu: ok" || bad "/dev/iommu missing"
[ -c /dev/vfio/vfio ] && echo "/dev/vfio/vfio: ok" || bad "/dev/vfio/vfio (the container) missing"
for bdf in {nvme0} {nvme1}; do
  d=/sys/bus/pci/devices/$bdf
  drv=$(lnk $d/driver); g=$(lnk $d/iommu_group)
  [ "$drv" = vfio-pci ] || bad "$bdf is on $drv, not vfio-pci"
  [ -c /dev/vfio/$g ] && echo "$bdf group $g: /dev/vfio/$g ok" || bad "$bdf: /dev/vfio/$g missing"
  n=0
  for c in $d/vfio-dev/vfio*; do
    [ -e "$c" ] || continue
    n=$((n + 1)); v=${c##*/}; want=$(cat $c/dev)
    got=$(stat -c "%t %T" /dev/vfio/devices/$v 2>/dev/null | { read ma mi; [ -n "$ma" ] && echo $((0x$ma)):$((0x$mi)); })
    echo "$bdf: $c dev=$want, /dev/vfio/devices/$v dev=${got:-missing}"
    [ -c /dev/vfio/devices/$v ] && [ "$got" = "$want" ] || bad "$bdf: /dev/vfio/devices/$v is not the cdev $want"
  done
  [ $n = 1 ] || bad "$bdf: $n entries in $d/vfio-dev, want 1"
done
p=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
[ -e $p ] && echo "vfio no-IOMMU mode built, enable_unsafe_noiommu_mode=$(cat $p)" || bad "$p missing (VFIO_NOIOMMU)"
grep -q N $p 2>/dev/null || bad "no-IOMMU mode is on"
echo "-- dmesg (iommufd / vfio)"
dmesg | grep -i -e iommufd -e vfio | tail -20
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }""")


# iommufd2 only, after the vfio2 checks (which run with the automatic choice,
# iommufd on this kernel): the selftest with iommufd forced on each node and
# with a 28-bit mask, the result saying "iommu":"iommufd" and every queue on
# the controller's node; and the same with the type1 container forced, on the
# same kernel.
IOMMUFD_RUNS = [
    ("iommufd_selftest_node0", "numacma nvme-selftest {nvme0} --iommu iommufd --json > /tmp/i0.json; rc=$?; "
                               "cat /tmp/i0.json; [ $rc -eq 0 ] && grep -q '\"iommu\":\"iommufd\"' /tmp/i0.json && "
                               "numacma-vmcheck vfio-json /tmp/i0.json {nvme0_node}"),
    ("iommufd_selftest_node1", "numacma nvme-selftest {nvme1} --iommu iommufd --json > /tmp/i1.json; rc=$?; "
                               "cat /tmp/i1.json; [ $rc -eq 0 ] && grep -q '\"iommu\":\"iommufd\"' /tmp/i1.json && "
                               "numacma-vmcheck vfio-json /tmp/i1.json {nvme1_node}"),
    ("iommufd_mask28", "numacma nvme-selftest {nvme1} --iommu iommufd --dma-bits 28 --json > /tmp/i28.json; rc=$?; "
                       "cat /tmp/i28.json; [ $rc -eq 0 ] && grep -q '\"iommu\":\"iommufd\"' /tmp/i28.json && "
                       "numacma-vmcheck vfio-json /tmp/i28.json {nvme1_node} 28"),
    ("iommufd_type1_forced", "numacma nvme-selftest {nvme1} --iommu type1 --json > /tmp/t1.json; rc=$?; "
                             "cat /tmp/t1.json; [ $rc -eq 0 ] && grep -q '\"iommu\":\"type1\"' /tmp/t1.json && "
                             "numacma-vmcheck vfio-json /tmp/t1.json {nvme1_node}"),
]


# noiommu2 (no IOMMU, our kernel with vfio.enable_unsafe_noiommu_mode=1):
# VFIO's no-IOMMU mode, run in this order. {nvme0}, {nvme0_node} as above.
#   noiommu_smoke     the mode is on, no IOMMU is registered, the controller has
#                     no IOMMU group yet, /dev/vfio/vfio is there
#   topo              the topology as expected; `topo` says the mode is on
#   noiommu_bind      `numacma vfio bind` takes the controller from nvme to
#                     vfio-pci, which gives it a no-IOMMU group: the output
#                     names /dev/vfio/noiommu-N and says UNSAFE, the node
#                     exists, topo marks the group, the kernel is tainted,
#                     doctor does not take the group for an IOMMU
#   noiommu_refused   without --iommu noiommu (auto, type1, iommufd) the
#                     selftest refuses, saying how to ask for the mode, and
#                     leaves the disk alone
#   noiommu_selftest  the selftest with --iommu noiommu (hugetlb areas by
#                     default): verified I/O with physical addresses, the
#                     result "iommu":"noiommu" and "unsafe":true, every queue
#                     on the controller's node, and each address inside that
#                     node's physical memory (vmcheck vfio-noiommu-phys)
#   noiommu_text      the text report says UNSAFE and "dma mode noiommu", its
#                     table heads the addresses "phys addr"
#   noiommu_replay    a pool command (replay) on the device: its tables start
#                     with the UNSAFE line, its --json stats say "unsafe":true
#   noiommu_anon      --backing anon is refused: no physical addresses
#   vfio_unbind       the controller back to nvme
NOIOMMU_CHECKS = [
    ("noiommu_smoke", r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
p=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
echo "enable_unsafe_noiommu_mode=$(cat $p 2>/dev/null)"; cat /proc/cmdline
grep -q Y $p 2>/dev/null || bad "no-IOMMU mode is not on ($p)"
n=$(ls /sys/class/iommu 2>/dev/null | wc -l); [ "$n" = 0 ] || bad "$n IOMMU(s) registered: $(ls /sys/class/iommu)"
d=/sys/bus/pci/devices/{nvme0}
[ -e $d ] || bad "{nvme0} missing"
echo "{nvme0}: node $(cat $d/numa_node), driver $(basename $(readlink $d/driver) 2>/dev/null)"
[ "$(cat $d/numa_node)" = {nvme0_node} ] || bad "{nvme0} numa_node $(cat $d/numa_node), want {nvme0_node}"
[ -e $d/iommu_group ] && bad "{nvme0} has an IOMMU group before vfio-pci"
[ -c /dev/vfio/vfio ] && echo "/dev/vfio/vfio: ok" || bad "/dev/vfio/vfio missing"
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("topo", "numacma topo --json > /tmp/topo.json && cat /tmp/topo.json && "
             "numacma-vmcheck topo-match /tmp/topo.json /expect.json && "
             "grep -q '\"vfio_noiommu_mode\":\"on\"' /tmp/topo.json && "
             "numacma topo | tee /tmp/topo.txt | tail -3 && grep -q 'VFIO no-IOMMU mode is ON' /tmp/topo.txt"),
    ("noiommu_bind", r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
numacma vfio bind {nvme0} > /tmp/bind.txt 2>&1; rc=$?; cat /tmp/bind.txt
[ $rc = 0 ] || bad "vfio bind exit $rc"
d=/sys/bus/pci/devices/{nvme0}
[ "$(basename $(readlink $d/driver))" = vfio-pci ] || bad "{nvme0} not on vfio-pci"
g=$(basename $(readlink $d/iommu_group) 2>/dev/null)
echo "group $g: name $(cat /sys/kernel/iommu_groups/$g/name 2>/dev/null)"
[ "$(cat /sys/kernel/iommu_groups/$g/name 2>/dev/null)" = vfio-noiommu ] || bad "group $g is not a no-IOMMU group"
[ -c /dev/vfio/noiommu-$g ] && echo "/dev/vfio/noiommu-$g: ok" || bad "/dev/vfio/noiommu-$g missing"
grep -q "/dev/vfio/noiommu-$g" /tmp/bind.txt || bad "vfio bind does not name /dev/vfio/noiommu-$g"
grep -q "UNSAFE" /tmp/bind.txt || bad "vfio bind does not say UNSAFE"
numacma topo | grep {nvme0} | tee /tmp/t.txt
grep -q "no-IOMMU, UNSAFE" /tmp/t.txt || bad "topo does not mark the group"
dmesg | grep -i noiommu
dmesg | grep -q "taint for vfio-noiommu" || bad "the kernel did not say it is tainted"
numacma doctor > /tmp/doctor.txt; grep iommu /tmp/doctor.txt
grep -q "VFIO's no-IOMMU groups" /tmp/doctor.txt || bad "doctor takes the no-IOMMU group for an IOMMU"
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("noiommu_refused", r"""fail=0
bad() { echo "FAIL: $*"; fail=1; }
for i in auto type1 iommufd; do
  numacma nvme-selftest {nvme0} --iommu $i --json > /tmp/r.json 2> /tmp/r.err; rc=$?
  cat /tmp/r.json /tmp/r.err
  [ $rc = 1 ] || bad "--iommu $i: exit $rc, want 1"
  grep -q -- "--iommu noiommu" /tmp/r.json || bad "--iommu $i: the refusal does not say --iommu noiommu"
  grep -q '"lbas_written":0' /tmp/r.json || bad "--iommu $i wrote to the disk"
done
[ $fail = 0 ] && echo PASS || { echo FAIL; exit 1; }"""),
    ("noiommu_selftest", "numacma nvme-selftest {nvme0} --iommu noiommu --json > /tmp/n.json; rc=$?; cat /tmp/n.json; "
                         "[ $rc -eq 0 ] && grep -q '\"iommu\":\"noiommu\"' /tmp/n.json && "
                         "grep -q '\"unsafe\":true' /tmp/n.json && "
                         "numacma-vmcheck vfio-json /tmp/n.json {nvme0_node} && "
                         "numacma-vmcheck vfio-noiommu-phys /tmp/n.json {nvme0_node}"),
    ("noiommu_text", "numacma nvme-selftest {nvme0} --iommu noiommu > /tmp/n.txt 2>&1; rc=$?; cat /tmp/n.txt; "
                     "[ $rc -eq 0 ] && grep -q '^UNSAFE: VFIO no-IOMMU mode' /tmp/n.txt && "
                     "grep -q 'dma mode noiommu' /tmp/n.txt && grep -q '^name .* phys addr ' /tmp/n.txt"),
    ("noiommu_replay", "printf 'alloc a 1 64K\\nalloc b 1 4K\\n' > /tmp/t.trace && "
                       "numacma replay --vfio {nvme0} --iommu noiommu --backing hugetlb --params 'cma=16M cma_pernuma=8M' "
                       "/tmp/t.trace > /tmp/rp.txt; rc=$?; cat /tmp/rp.txt; [ $rc -eq 0 ] && "
                       "grep -q '^UNSAFE: VFIO no-IOMMU mode' /tmp/rp.txt && grep -q 'dma mode noiommu, addresses physical' /tmp/rp.txt && "
                       "numacma replay --vfio {nvme0} --iommu noiommu --backing hugetlb --params 'cma=16M cma_pernuma=8M' "
                       "--json /tmp/t.trace | tail -1 > /tmp/rp.json; cat /tmp/rp.json; "
                       "grep -q '\"iommu\":\"noiommu\"' /tmp/rp.json && grep -q '\"unsafe\":true' /tmp/rp.json"),
    ("noiommu_anon", "numacma nvme-selftest {nvme0} --iommu noiommu --backing anon --json > /tmp/a.json; rc=$?; "
                     "cat /tmp/a.json; [ $rc -eq 1 ] && grep -q 'backing hugetlb as root' /tmp/a.json"),
    ("vfio_unbind", "numacma vfio unbind {nvme0} && "
                    "[ \"$(basename $(readlink /sys/bus/pci/devices/{nvme0}/driver))\" = nvme ] && "
                    "[ ! -e /sys/bus/pci/devices/{nvme0}/iommu_group ]"),
]


def noiommu_checks(name):
    v = device_vars(TOPOLOGIES[name])
    return [(c, fill(cmd, v)) for c, cmd in NOIOMMU_CHECKS] + [("vfio_dmesg", "dmesg | tail -100")]


def vfio_checks(name):
    t = TOPOLOGIES[name]
    v = device_vars(t)
    devs = "\n".join("%s %d %s" % (bdf, node, kind) for (kind, node, _), bdf in zip(t["devices"], bdfs(t)))
    nvmes = " ".join(bdf for (kind, _, _), bdf in zip(t["devices"], bdfs(t)) if kind == "nvme")
    out = [("vfio_smoke", VFIO_SMOKE % {"devs": devs, "nvmes": nvmes})]
    out.append(("topo", "numacma topo --json > /tmp/topo.json && cat /tmp/topo.json && "
                        "numacma-vmcheck topo-match /tmp/topo.json /expect.json"))
    more = VFIO_CHECKS[:1] + ([IOMMUFD_CHECK] if kernel_variant(t) == "vfio" else []) + VFIO_CHECKS[1:]
    if kernel_variant(t) == "vfio":  # before vfio_unbind, the last of VFIO_CHECKS
        more = more[:-1] + IOMMUFD_RUNS + more[-1:]
    if kernel_variant(t):
        # nvme built in: `numacma vfio unbind` (no driver remembered: the
        # kernel picks) gives the controllers to it, not to no driver
        more = [VFIO_UNBIND_BUILTIN if c == "vfio_unbind" else (c, cmd) for c, cmd in more]
    out += [(c, fill(cmd, v)) for c, cmd in more + VFIO_DATA_CHECKS]
    # Last: the guest's kernel log (DMAR faults and the like), never fails.
    out.append(("vfio_dmesg", "dmesg | tail -200"))
    return out
