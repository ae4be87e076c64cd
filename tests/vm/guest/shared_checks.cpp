// numacma-vmcheck: the shared check (a reserved pool, two processes attached;
// see vmcheck.cpp).
#include <fcntl.h>
#include <numaif.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"

#include "vmcheck.hpp"

using nlohmann::json;
using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;

namespace vmcheck {

namespace {

/** The fill both processes agree on for the other process's buffer. */
std::uint8_t shared_byte(std::size_t i) { return static_cast<std::uint8_t>(i * 7 + 3 + (i >> 12)); }

/** Process A: the edu on its node; its buffer from its node's area, written by
 *  its edu; then the edu writes B's buffer (B's DMA address, read from
 *  `from_b`), and says so on `to_b`. */
int shared_edu_process(const std::string& bdf, std::uint64_t mask, int from_b, int to_b, int ready_fd,
                       int go_fd) {
  Result<Pool> pool = Pool::attach("vmshared");
  if (!pool) return fail("A: attach: " + pool.error().message), 1;
  Edu edu;
  std::optional<numacma::Device> dev = edu_device(edu, bdf, mask, *pool);
  if (!dev) return 1;
  auto src = pool->alloc_coherent(*dev, kPage);
  auto buf = pool->alloc_coherent(*dev, 64 << 10);
  if (!src || !buf) return fail("A: alloc: " + (src ? buf.error().message : src.error().message)), 1;
  const std::string own = "pernuma" + std::to_string(dev->node);
  if (buf->area_name() != own) fail("A: buffer from " + buf->area_name() + ", not " + own);
  all_on_node(*buf, dev->node, "A's buffer");
  bool ok = true;
  for (std::size_t page : {std::size_t{0}, buf->pages() - 1}) ok &= dma_page(edu, *src, *buf, page, 7);
  if (ok)
    info("A (pid " + std::to_string(::getpid()) + "): " + bdf + " on node " + std::to_string(dev->node) +
         " wrote A's 64 KiB buffer in " + own + " through dma " + hex(buf->dma_addr()));
  // B's buffer: 64 KiB at the DMA address B sends, written page by page.
  std::uint64_t b_dma = 0;
  if (::read(from_b, &b_dma, sizeof b_dma) != sizeof b_dma) return fail("A: no DMA address from B"), 1;
  auto* s = static_cast<std::uint8_t*>(src->cpu());
  for (std::size_t page = 0; page < 16 && ok; ++page) {
    for (std::size_t i = 0; i < kPage; ++i) s[i] = shared_byte(page * kPage + i);
    __sync_synchronize();
    ok = edu.transfer(src->dma_addr(), kPage / 2, false) &&
         edu.transfer(b_dma + page * kPage, kPage / 2, true) &&
         edu.transfer(src->dma_addr() + kPage / 2, kPage / 2, false) &&
         edu.transfer(b_dma + page * kPage + kPage / 2, kPage / 2, true);
  }
  (void)!::write(to_b, ok ? "d" : "x", 1);
  const char c = g_failures ? 'n' : 'y';
  (void)!::write(ready_fd, &c, 1);
  char go;
  (void)!::read(go_fd, &go, 1);
  return g_failures ? 1 : 0;
}

/** Process B: a device on another node; its buffer from that node's area,
 *  written by A's edu (B has no DMA engine of its own here). */
int shared_other_process(const std::string& bdf, int to_a, int from_a, int ready_fd, int go_fd) {
  Result<Pool> pool = Pool::attach("vmshared");
  if (!pool) return fail("B: attach: " + pool.error().message), 1;
  Result<numacma::Device> dev = numacma::Device::from_pci(bdf, *pool);
  if (!dev) return fail("B: " + dev.error().message), 1;
  auto buf = pool->alloc_coherent(*dev, 64 << 10);
  if (!buf) return fail("B: alloc: " + buf.error().message), 1;
  const std::string own = "pernuma" + std::to_string(dev->node);
  if (buf->area_name() != own) fail("B: buffer from " + buf->area_name() + ", not " + own);
  all_on_node(*buf, dev->node, "B's buffer");
  std::memset(buf->cpu(), 0, buf->size());
  __sync_synchronize();
  const std::uint64_t dma = buf->dma_addr();
  (void)!::write(to_a, &dma, sizeof dma);
  char c = 0;
  if (::read(from_a, &c, 1) != 1 || c != 'd') fail("B: A's edu did not write B's buffer");
  __sync_synchronize();
  const auto* p = static_cast<const std::uint8_t*>(buf->cpu());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < buf->size(); ++i) bad += p[i] != shared_byte(i);
  if (bad != 0) fail("B: " + std::to_string(bad) + " bytes of B's buffer differ from what A's edu wrote");
  else
    info("B (pid " + std::to_string(::getpid()) + "): " + bdf + " on node " + std::to_string(dev->node) +
         ": its 64 KiB buffer in " + own + " (dma " + hex(dma) + ") holds what A's edu wrote there");
  const char r = g_failures ? 'n' : 'y';
  (void)!::write(ready_fd, &r, 1);
  char go;
  (void)!::read(go_fd, &go, 1);
  return g_failures ? 1 : 0;
}

}  // namespace

int check_shared(const std::vector<std::string>& a) {
  if (a.size() != 3) return fail("shared needs EDU_BDF EDU_MASK OTHER_BDF"), 2;
  (void)numacma::release("vmshared", true);
  numacma::ReserveOptions o;
  o.params = "cma=4M cma_pernuma=8M";
  o.backing = "hugetlb";
  Result<std::vector<numacma::ReservationNote>> r = numacma::reserve("vmshared", o);
  if (!r) return fail("reserve: " + r.error().message), 1;
  int ready[2], go[2], b2a[2], a2b[2];
  if (::pipe(ready) != 0 || ::pipe(go) != 0 || ::pipe(b2a) != 0 || ::pipe(a2b) != 0) return fail("pipe"), 1;
  std::fflush(stdout);
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0)
      ::_exit(i == 0 ? shared_edu_process(a[0], std::stoull(a[1], nullptr, 16), b2a[0], a2b[1], ready[1], go[0])
                     : shared_other_process(a[2], b2a[1], a2b[0], ready[1], go[0]));
    kids.push_back(pid);
  }
  for (std::size_t i = 0; i < kids.size(); ++i) {
    char c = 'n';
    if (::read(ready[0], &c, 1) != 1 || c != 'y') fail("a process failed before holding its buffer");
  }
  // Both hold their buffers now: two live holders, each in its own node's area.
  Result<numacma::PoolStatus> st = numacma::status("vmshared");
  if (!st) return fail("status: " + st.error().message), 1;
  std::set<std::string> held;
  for (const numacma::HolderStatus& h : st->holders) {
    if (!h.alive) fail("holder " + std::to_string(h.pid) + " not alive");
    for (const auto& [area_name, pages] : h.pages)
      if (area_name.rfind("pernuma", 0) == 0) held.insert(area_name);
  }
  if (st->holders.size() != 2) fail(std::to_string(st->holders.size()) + " holders while both processes hold buffers");
  if (held.size() != 2) fail("the two processes' buffers are not in two per-node areas");
  else info("status: 2 live holders, their buffers in " + *held.begin() + " and " + *held.rbegin());
  (void)!::write(go[1], "gg", 2);
  for (pid_t k : kids) {
    int s = 0;
    ::waitpid(k, &s, 0);
    if (!WIFEXITED(s) || WEXITSTATUS(s) != 0) fail("process " + std::to_string(k) + " failed");
  }
  st = numacma::status("vmshared");
  if (!st || !st->holders.empty()) fail("holders left after both detached");
  for (const numacma::SharedAreaStatus& s : st->areas) {
    if (s.area.used != 0) fail(s.area.name + " not whole after both detached");
    if (s.area.maxchunk != s.longest_segment) fail(s.area.name + ": largest free run is not its longest segment");
  }
  if (numacma::Status rel = numacma::release("vmshared"); !rel) fail("release: " + rel.error().message);
  return g_failures ? 1 : 0;
}

}  // namespace vmcheck
