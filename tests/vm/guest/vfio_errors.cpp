// numacma-vmcheck: the VFIO checks vfio-errors (unbound device, mask too
// narrow, permission, RLIMIT_MEMLOCK, IOVA space exhausted) and vfio-bench
// (figures); see vfio_checks.cpp.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <numaif.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"
#include "nvme/controller.hpp"
#include "nvme/selftest.hpp"
#include "vfio_checks.hpp"
#include "vmcheck.hpp"

using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;

namespace vmcheck::vfio {

// ---- vfio-errors -------------------------------------------------------------------

namespace {

/** Pool::create in a child that first runs `setup` (as root) and then drops to uid 1000. */
template <class Setup>
std::pair<numacma::Errc, std::string> create_as_user(const std::string& params, const std::string& bdf, Setup setup,
                                                     bool alloc_page) {
  int fds[2];
  if (::pipe(fds) != 0) return {numacma::Errc::io_error, "pipe"};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    setup();
    std::string msg;
    int code = 0;
    if (::setgid(1000) != 0 || ::setuid(1000) != 0) {
      msg = "setuid failed";
      code = -1;
    } else {
      PoolOptions o;
      o.params = params;
      o.backing = "anon";
      o.vfio = {{bdf, ~0ULL}};
      auto p = Pool::create(o);
      if (!p) {
        code = static_cast<int>(p.error().code);
        msg = p.error().message;
      } else if (alloc_page) {
        auto d = numacma::Device::from_vfio(bdf, *p);
        auto b = p->alloc_coherent(*d, kPage);
        if (!b) {
          code = static_cast<int>(b.error().code);
          msg = b.error().message;
        }
      }
    }
    const std::string out = std::to_string(code) + "\n" + msg;
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  const auto nl = out.find('\n');
  if (nl == std::string::npos) return {numacma::Errc::io_error, "child said nothing"};
  return {static_cast<numacma::Errc>(std::stoi(out.substr(0, nl))), out.substr(nl + 1)};
}

void expect_error(const std::string& what, numacma::Errc code, const std::string& msg, numacma::Errc want_code,
                  const std::string& want_text) {
  info(what + ": " + numacma::errc_name(code) + ": " + msg);
  if (code != want_code) fail(what + ": code " + numacma::errc_name(code) + ", want " + numacma::errc_name(want_code));
  if (msg.find(want_text) == std::string::npos) fail(what + ": the message does not say '" + want_text + "'");
}

}  // namespace

int check_errors(const std::string& nvme, const std::string& edu) {
  using numacma::Errc;
  // An unbound device: the message gives the exact command.
  {
    PoolOptions o;
    o.backing = "anon";
    o.vfio = {{edu, ~0ULL}};
    auto p = Pool::create(o);
    if (p) fail("a pool on an unbound device was created");
    else expect_error("not bound", p.error().code, p.error().message, Errc::unsupported, "numacma vfio bind " + edu);
  }
  // A mask below every usable IOVA (IOVAs start at 1 MiB).
  {
    PoolOptions o;
    o.backing = "anon";
    o.vfio = {{nvme, 0xfffff}};
    auto p = Pool::create(o);
    if (p) fail("a 20-bit mask was accepted");
    else expect_error("mask too narrow", p.error().code, p.error().message, Errc::unreachable, "below every usable IOVA range");
  }
  // IOVA space exhausted half-way through creation; then nothing may be left mapped.
  {
    PoolOptions o;
    o.params = "cma_pernuma=64M";
    o.backing = "anon";
    o.vfio = {{nvme, mask_of(27)}};  // 1 MiB .. 128 MiB: room for one 64 MiB area, not two
    auto p = Pool::create(o);
    if (p) fail("two 64 MiB areas fit below 128 MiB?");
    else expect_error("IOVA exhausted", p.error().code, p.error().message, Errc::no_memory, "IOVA space exhausted");
    auto again = make_pool("", "anon", {{nvme, ~0ULL}});  // the group was given back
    if (again) {
      const auto rep = again->vfio_report();
      info("after the failed create: a new container has " + std::to_string(rep.mappings.size()) +
           " mappings, DMA_AVAIL " + std::to_string(rep.dma_avail));
      if (!rep.mappings.empty()) fail("mappings in a fresh container");
    }
  }
  // Permission: the group's node is root's alone.
  const std::string group_link = run("readlink /sys/bus/pci/devices/" + nvme + "/iommu_group");
  const std::string group = group_link.substr(group_link.find_last_of('/') + 1, std::string::npos);
  const std::string gdev = "/dev/vfio/" + group.substr(0, group.find('\n'));
  {
    auto [code, msg] = create_as_user("", nvme, [&] { ::chmod(gdev.c_str(), 0600); }, false);
    expect_error("permission", code, msg, Errc::permission, "permission denied on " + gdev);
  }
  // RLIMIT_MEMLOCK: the group is open to the user, but nothing may be pinned.
  {
    auto [code, msg] = create_as_user("", nvme, [&] {
      ::chmod(gdev.c_str(), 0666);
      rlimit rl{0, 0};
      ::setrlimit(RLIMIT_MEMLOCK, &rl);
    }, true);
    expect_error("memlock", code, msg, Errc::no_memory, "RLIMIT_MEMLOCK");
    ::chmod(gdev.c_str(), 0600);
  }
  return g_failures ? 1 : 0;
}

// ---- vfio-bench ---------------------------------------------------------------------

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/** ns per alloc+free pair of `bytes` for dev, n rounds. */
double pair_ns(Pool& pool, const numacma::Device& dev, std::size_t bytes, int n) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto b = pool.alloc_coherent(dev, bytes);
    if (!b) {
      fail("bench alloc: " + b.error().message);
      return 0;
    }
  }
  return ms_since(t0) * 1e6 / n;
}

}  // namespace

int check_bench(const std::string& bdf, int node) {
  const std::string params = "numa_cma=" + std::to_string(node) + ":1G";
  // Without VFIO, then over each interface the kernel has: iommufd (where
  // /dev/iommu and the cdev exist) and the type1 container, side by side.
  struct Run {
    bool vfio;
    numacma::Iommu iommu;
  };
  for (const char* backing : {"hugetlb", "anon"}) {
    for (const Run run : {Run{false, numacma::Iommu::automatic}, Run{true, numacma::Iommu::iommufd},
                          Run{true, numacma::Iommu::type1}}) {
      const bool vfio = run.vfio;
      PoolOptions o;
      o.params = params;
      o.backing = backing;
      if (vfio) o.vfio = {{bdf, ~0ULL}};
      o.iommu = run.iommu;
      const auto t0 = std::chrono::steady_clock::now();
      auto p = Pool::create(o);
      const double create_ms = ms_since(t0);
      if (!p && run.iommu == numacma::Iommu::iommufd && p.error().code == numacma::Errc::unsupported) {
        info(std::string("no iommufd row (") + backing + "): " + p.error().message);
        continue;
      }
      if (!p) {
        fail(std::string("create ") + backing + (vfio ? " vfio" : "") + ": " + p.error().message);
        continue;
      }
      const auto st = p->stats();
      if (st.areas.size() != 1 || st.areas[0].pages != (1u << 18)) {
        fail("the 1 GiB area was not reserved: " +
             (p->reservation_notes().empty() ? std::string("?") : p->reservation_notes()[0].message));
        continue;
      }
      numacma::Device dev = vfio ? *numacma::Device::from_vfio(bdf, *p) : numacma::Device::on_node(node, "nvme");
      double map_ms = 0;
      for (const auto& m : p->vfio_report().mappings) map_ms += static_cast<double>(m.map_ns) / 1e6;
      const double area_ns = pair_ns(*p, dev, 64 * 1024, 2000);
      const double page_ns = pair_ns(*p, dev, kPage, 2000);
      std::printf("{\"figure\":\"vfio_bench\",\"backing\":\"%s\",\"vfio\":%s,\"iommu\":\"%s\",\"area_bytes\":1073741824,"
                  "\"create_ms\":%.1f,\"map_ms\":%.1f,\"area_64k_pair_ns\":%.0f,\"page_4k_pair_ns\":%.0f,"
                  "\"mode\":\"%s\"}\n",
                  st.areas[0].backing.c_str(), vfio ? "true" : "false", p->vfio_report().iommu.c_str(), create_ms,
                  map_ms, area_ns, page_ns, p->dma_mode().c_str());
    }
  }
  return g_failures ? 1 : 0;
}


}  // namespace vmcheck::vfio
