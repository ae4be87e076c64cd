// numacma-vmcheck: the dmapool check (DmaPool blocks for a device on every
// node and for each edu; see vmcheck.cpp).
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

#include "vmcheck.hpp"

using nlohmann::json;
using numacma::DmaBuffer;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;

namespace vmcheck {

namespace {

/** Has the edu write `bytes` of a pattern at `dst_dma` (the block at `dst`),
 *  in pieces of at most 2 KiB through the first half of the device buffer (as
 *  dma_page: edu's off-by-one at the end of its 4 KiB buffer), via the first
 *  2 KiB of `src`. The block is zeroed first and the pattern has no zero byte,
 *  so every byte the device did not write shows. */
bool dma_block(Edu& edu, const DmaBuffer& src, void* dst, std::uint64_t dst_dma, std::size_t bytes,
               unsigned seed) {
  constexpr std::size_t kHalf = kPage / 2;
  auto* s = static_cast<std::uint8_t*>(src.cpu());
  auto* d = static_cast<std::uint8_t*>(dst);
  std::memset(d, 0, bytes);
  for (std::size_t off = 0; off < bytes; off += kHalf) {
    const std::size_t n = std::min(kHalf, bytes - off);
    for (std::size_t i = 0; i < n; ++i)
      s[i] = static_cast<std::uint8_t>((seed * 131 + (off + i) * 7 + (i >> 8)) % 251 + 1);
    __sync_synchronize();
    if (!edu.transfer(src.dma_addr(), static_cast<std::uint32_t>(n), false)) return false;
    if (!edu.transfer(dst_dma + off, static_cast<std::uint32_t>(n), true)) return false;
    __sync_synchronize();
    if (std::memcmp(s, d + off, n) != 0) {
      fail("DMA to " + hex(dst_dma + off) + " did not land at the block's CPU address + " +
           std::to_string(off));
      return false;
    }
  }
  return true;
}

/** `count` blocks of `dp`, kept in `out`, each touched, then checked: every
 *  4 KiB page they touch on `want_node` (move_pages); dma = page.dma + (cpu -
 *  page.cpu) for the page of stats().page_list that holds it, and = the
 *  physical address (pagemap); aligned; inside `boundary`; no two overlap;
 *  every page of the pool from `want_area` on `want_node`. */
bool dmapool_blocks(numacma::DmaPool& dp, std::size_t count, const std::string& want_area, int want_node,
                    std::size_t boundary, std::vector<numacma::DmaBlock>& out) {
  const std::string what = "dma_pool " + dp.name();
  for (std::size_t i = 0; i < count; ++i) {
    auto b = dp.alloc();
    if (!b) return fail(what + ": alloc " + std::to_string(i) + ": " + b.error().message), false;
    out.push_back(std::move(*b));
  }
  const numacma::DmaPoolStats st = dp.stats();
  for (std::size_t i = 0; i < out.size(); ++i) std::memset(out[i].cpu(), 0x40 + int(i % 64), st.block_size);
  bool ok = true;
  auto bad = [&](const std::string& m) { fail(what + ": " + m); ok = false; };
  if (st.node != want_node) bad("stats().node " + std::to_string(st.node));
  if (st.blocks_live != count)
    bad("blocks_live " + std::to_string(st.blocks_live) + ", want " + std::to_string(count));
  if (st.pages != st.page_list.size() || st.pages == 0)
    bad("pages " + std::to_string(st.pages) + ", page_list " + std::to_string(st.page_list.size()));
  for (const auto& pg : st.page_list)
    if (pg.area != want_area || pg.node != want_node)
      bad("page at dma " + hex(pg.dma) + " from " + pg.area + " on node " + std::to_string(pg.node) +
          ", want " + want_area + " on node " + std::to_string(want_node));
  std::vector<void*> pages;  // every 4 KiB page a block touches, once
  std::set<std::uintptr_t> seen;
  std::vector<std::uintptr_t> starts;
  std::size_t phys_bad = 0;
  for (const numacma::DmaBlock& b : out) {
    const auto cpu = reinterpret_cast<std::uintptr_t>(b.cpu());
    const std::uint64_t dma = b.dma_addr();
    starts.push_back(cpu);
    for (std::uintptr_t a = cpu & ~(kPage - 1); a < cpu + st.block_size; a += kPage)
      if (seen.insert(a).second) pages.push_back(reinterpret_cast<void*>(a));
    const numacma::DmaPoolPage* page = nullptr;
    for (const auto& pg : st.page_list) {
      const auto pc = reinterpret_cast<std::uintptr_t>(pg.cpu);
      if (cpu >= pc && cpu + st.block_size <= pc + st.page_bytes) page = &pg;
    }
    if (page == nullptr) {
      bad("block at " + hex(cpu) + " lies in none of the pool's pages");
      continue;
    }
    if (dma - page->dma != cpu - reinterpret_cast<std::uintptr_t>(page->cpu))
      bad("block at cpu " + hex(cpu) + " dma " + hex(dma) + ": dma - page.dma != cpu - page.cpu");
    if (dma % st.align != 0 || cpu % st.align != 0)
      bad("block at dma " + hex(dma) + " not aligned to " + std::to_string(st.align));
    if (boundary != 0 && dma / boundary != (dma + st.block_size - 1) / boundary)
      bad("block at dma " + hex(dma) + " (" + std::to_string(st.block_size) + " bytes) crosses a " +
          std::to_string(boundary) + " boundary");
    for (std::size_t off = 0; off < st.block_size; off += kPage)
      phys_bad += phys_of(reinterpret_cast<const char*>(cpu) + off) != dma + off;
  }
  if (phys_bad) bad(std::to_string(phys_bad) + " block pages not at their DMA address by pagemap");
  std::sort(starts.begin(), starts.end());
  for (std::size_t i = 1; i < starts.size(); ++i)
    if (starts[i] < starts[i - 1] + st.block_size)
      bad("blocks at " + hex(starts[i - 1]) + " and " + hex(starts[i]) + " overlap");
  std::vector<int> status(pages.size(), -1);
  if (move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0) != 0)
    return fail(std::string("move_pages: ") + std::strerror(errno)), false;
  std::size_t off_node = 0;
  for (int s : status) off_node += s != want_node;
  if (off_node)
    bad(std::to_string(off_node) + " of " + std::to_string(pages.size()) + " block pages not on node " +
        std::to_string(want_node) + " (first says " + std::to_string(status[0]) + ")");
  if (ok)
    info(dp.name() + ": " + std::to_string(count) + " x " + std::to_string(st.block_size) + " B blocks in " +
         std::to_string(st.pages) + " page(s) of " + std::to_string(st.page_bytes / 1024) + " KiB from " +
         want_area + ", all " + std::to_string(pages.size()) + " 4K pages on node " + std::to_string(want_node) +
         " (move_pages), dma = page.dma + offset = phys (pagemap), aligned" +
         (boundary ? ", none crosses " + std::to_string(boundary) : ""));
  return ok;
}

/** The edu writes through block DMA addresses: the first, the middle and the
 *  last block of the 512-byte pool's first page (the rest of that page holds
 *  a canary that must survive each write), and a whole 8 KiB block. */
bool dmapool_edu_writes(Edu& edu, const DmaBuffer& src, std::vector<numacma::DmaBlock>& small,
                        const numacma::DmaPoolStats& sst, std::vector<numacma::DmaBlock>& big,
                        const numacma::DmaPoolStats& bst) {
  const numacma::DmaPoolPage& pg = sst.page_list.front();
  const auto pc = reinterpret_cast<std::uintptr_t>(pg.cpu);
  std::map<std::size_t, numacma::DmaBlock*> by_off;  // offset in that page -> our block there
  for (auto& b : small) {
    const auto c = reinterpret_cast<std::uintptr_t>(b.cpu());
    if (c >= pc && c < pc + sst.page_bytes) by_off[c - pc] = &b;
  }
  if (by_off.size() != sst.blocks_per_page)
    return fail("the first page holds " + std::to_string(by_off.size()) + " of our blocks, want " +
                std::to_string(sst.blocks_per_page)), false;
  const std::size_t last = by_off.rbegin()->first, middle = sst.page_bytes / 2;
  if (by_off.count(middle) == 0) return fail("no block at the middle of the page"), false;
  auto* page = static_cast<std::uint8_t*>(pg.cpu);
  bool ok = true;
  unsigned seed = 11;
  for (std::size_t off : {std::size_t{0}, middle, last}) {
    numacma::DmaBlock& b = *by_off[off];
    std::memset(page, 0xa5, sst.page_bytes);
    if (!dma_block(edu, src, b.cpu(), b.dma_addr(), sst.block_size, seed++)) {
      ok = false;
      continue;
    }
    std::size_t clobbered = 0;
    for (std::size_t i = 0; i < sst.page_bytes; ++i)
      clobbered += (i < off || i >= off + sst.block_size) && page[i] != 0xa5;
    if (clobbered) {
      fail(std::to_string(clobbered) + " bytes outside the block at offset " + std::to_string(off) + " changed");
      ok = false;
      continue;
    }
    info("edu wrote the " + std::string(off == 0 ? "first" : off == last ? "last" : "middle") +
         " block of a page (offset " + std::to_string(off) + ", dma " + hex(b.dma_addr()) +
         ") through its DMA address; CPU read it back, the rest of the page untouched");
  }
  numacma::DmaBlock& b = big.front();
  if (!dma_block(edu, src, b.cpu(), b.dma_addr(), bst.block_size, seed++)) return false;
  info("edu wrote a whole " + std::to_string(bst.block_size / 1024) + " KiB block (dma " + hex(b.dma_addr()) +
       ", from " + bst.page_list.front().area + "); CPU read it back");
  return ok;
}

}  // namespace

/** DmaPool in the guest: for a device on every node with memory and for each
 *  edu (BDF MASK pairs, the devices' real nodes and masks), a pool of 512-byte
 *  blocks (align 64, boundary 4096: pages from `pages`, A3) and one of 8 KiB
 *  blocks (pages from pernuma<N>); the 64-bit edu writes into blocks; all
 *  freed (half by handle, half by address), destroy() ok, every area unused. */
int check_dmapool(const std::vector<std::string>& edus) {
  const auto t0 = std::chrono::steady_clock::now();
  Pool pool = make_pool("cma=4M cma_pernuma=4M", "hugetlb");
  const numacma::Stats pst = pool.stats();
  const numacma::AreaReport* reserved = area(pst, "reserved");
  constexpr std::size_t kSmall = 512, kAlign = 64, kBoundary = 4096, kBig = 8192;
  struct Case {
    std::string what;
    numacma::Device dev;
    Edu* edu = nullptr;
  };
  std::vector<std::unique_ptr<Edu>> edu_keep;
  std::vector<Case> cases;
  for (int n : memory_nodes())
    cases.push_back({"node " + std::to_string(n), numacma::Device::on_node(n, "dev" + std::to_string(n))});
  for (std::size_t i = 0; i + 1 < edus.size(); i += 2) {
    edu_keep.push_back(std::make_unique<Edu>());
    std::optional<numacma::Device> dev =
        edu_device(*edu_keep.back(), edus[i], std::stoull(edus[i + 1], nullptr, 16), pool);
    if (!dev) return 1;
    cases.push_back({"edu " + edus[i] + " (node " + std::to_string(dev->node) + ", mask " +
                         hex(dev->coherent_dma_mask) + ")",
                     *dev, edu_keep.back().get()});
  }
  for (Case& c : cases) {
    const int n = c.dev.node;
    info("-- " + c.what);
    auto small = numacma::DmaPool::create(pool, c.dev, "prp" + std::to_string(n), kSmall, kAlign, kBoundary);
    auto big = numacma::DmaPool::create(pool, c.dev, "big" + std::to_string(n), kBig, kAlign);
    if (!small || !big) {
      fail("DmaPool::create: " + (small ? big.error().message : small.error().message));
      continue;
    }
    if (c.dev.coherent_dma_mask < (std::uint64_t{1} << 32)) {
      // A low-zone device (A4): only `reserved` may serve multi-page requests
      // and it lies above the mask here, as do the device node's pages (no
      // zone retry): a clear error, never a block above the mask.
      for (numacma::DmaPool* dp : {&*small, &*big}) {
        auto b = dp->alloc();
        if (b) {
          fail(dp->name() + ": got a block at dma " + hex(b->dma_addr()) + " for mask " +
               hex(c.dev.coherent_dma_mask));
          continue;
        }
        const auto code = b.error().code;
        if (code != numacma::Errc::unreachable && code != numacma::Errc::no_memory)
          fail(std::string("unexpected error code ") + numacma::errc_name(code));
        const numacma::DmaPoolStats st = dp->stats();
        if (st.alloc_failures != 1 || st.pages != 0)
          fail(dp->name() + ": alloc_failures " + std::to_string(st.alloc_failures) + ", pages " +
               std::to_string(st.pages));
        info(dp->name() + ": no memory below the mask: " + numacma::errc_name(code) + ": " + b.error().message);
      }
    } else {
      // 8 KiB blocks: pages of 8 KiB from pernuma<N>; without it (no
      // hugepages on the node) from reserved; without that either, an 8 KiB
      // page could only be two ordinary pages (A7), which a device without an
      // IOMMU cannot use unless they are contiguous: refused.
      const std::string own = "pernuma" + std::to_string(n);
      std::string big_area = own;
      int big_node = n;
      bool try_big = true;
      if (area(pst, own) == nullptr && reserved != nullptr) {
        big_area = "reserved";
        big_node = reserved->node;
        info("no " + own + ": 8 KiB pages from reserved on node " + std::to_string(big_node));
      } else if (area(pst, own) == nullptr) {
        big_area = "pages";
        auto b = big->alloc();
        if (!b) {
          try_big = false;
          const auto code = b.error().code;
          if (code != numacma::Errc::unsupported && code != numacma::Errc::not_contiguous)
            fail("8 KiB block on node " + std::to_string(n) + ": unexpected error code " + numacma::errc_name(code));
          info("no " + own + ", no reserved: " + big->name() + " refuses: " + numacma::errc_name(code) + ": " +
               b.error().message);
        }
      }
      std::vector<numacma::DmaBlock> sb, bb;
      const bool s_ok = dmapool_blocks(*small, 2 * (kPage / kSmall) + 1, "pages", n, kBoundary, sb);
      const bool b_ok = !try_big || dmapool_blocks(*big, 3, big_area, big_node, 0, bb);
      if (c.edu != nullptr && s_ok && b_ok && !bb.empty()) {
        auto src = pool.alloc_coherent(c.dev, kPage);
        if (!src) fail("source page: " + src.error().message);
        else dmapool_edu_writes(*c.edu, *src, sb, small->stats(), bb, big->stats());
      }
      // Free everything: half by address (as a C driver does), the rest by handle.
      for (std::size_t i = 0; i < sb.size(); i += 2) {
        void* cpu = sb[i].cpu();
        const std::uint64_t dma = sb[i].dma_addr();
        sb[i].detach();
        if (auto s = small->free(cpu, dma); !s) fail("free by address: " + s.error().message);
      }
      sb.clear();
      bb.clear();
      for (numacma::DmaPool* dp : {&*small, &*big}) {
        const numacma::DmaPoolStats st = dp->stats();
        if (st.blocks_live != 0 || st.bad_frees != 0)
          fail(dp->name() + ": after freeing, blocks_live " + std::to_string(st.blocks_live) + ", bad_frees " +
               std::to_string(st.bad_frees));
      }
    }
    for (numacma::DmaPool* dp : {&*small, &*big}) {
      const std::string name = dp->name();
      if (auto s = dp->destroy(); !s) fail(name + ": destroy: " + s.error().message);
    }
  }
  // Every area whole again: no page of any pool left behind.
  f3_holds(pool);
  info("guest time " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - t0).count()) + " ms");
  return g_failures ? 1 : 0;
}

}  // namespace vmcheck
