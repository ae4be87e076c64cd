// A trivially correct reference for core::Area: one bool per page, first fit
// by checking every start index. Shared by the property test and the fuzz
// target; slow on purpose, obviously right.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/area.hpp"

namespace numacma::testing {

struct NaiveArea {
  core::AreaConfig cfg;
  std::vector<bool> used;                        // per bit
  std::map<std::uint64_t, std::uint64_t> live;  // first_page -> count
  std::uint64_t alloc_pages_success = 0;         // the kernel's counters (mm/cma.c)
  std::uint64_t alloc_pages_fail = 0;
  std::uint64_t release_pages_success = 0;       // here: only the runs taken above the limit

  explicit NaiveArea(core::AreaConfig c) : cfg(std::move(c)) {
    if (cfg.segments.empty()) cfg.segments.push_back({0, cfg.pages, 0});
    used.assign(cfg.pages >> cfg.order_per_bit, false);
  }

  /** cma_alloc's first aligned free run within one segment, then dma-direct's
   *  look at it: at or below the limit it is the buffer; above it, it is
   *  taken and released at once (counted as both), and nothing is returned.
   *  Counted as the kernel counts: nothing for 0 pages or for more bits than
   *  the area has (__cma_alloc returns before its accounting), the pages in
   *  alloc_pages_fail when there is no free run. */
  std::optional<std::uint64_t> alloc(std::uint64_t count, unsigned align_order, std::uint64_t limit) {
    align_order = std::min(align_order, cfg.max_align_order);
    const unsigned opb = cfg.order_per_bit;
    if (count == 0 || count > cfg.pages) return std::nullopt;  // cfg.pages: whole bits
    const std::uint64_t bits = (count + (1ULL << opb) - 1) >> opb;
    const std::uint64_t align = cfg.page_size << align_order;
    for (const auto& s : cfg.segments) {
      for (std::uint64_t b = s.first_page >> opb; b + bits <= (s.first_page + s.pages) >> opb; ++b) {
        const std::uint64_t page = b << opb;
        const std::uint64_t dma = s.dma_base + (page - s.first_page) * cfg.page_size;
        if (align > (cfg.page_size << opb) && dma % align != 0) continue;
        bool free = true;
        for (std::uint64_t k = 0; k < bits && free; ++k) free = !used[b + k];
        if (!free) continue;
        alloc_pages_success += count;
        if (dma > limit || count * cfg.page_size - 1 > limit - dma) {
          release_pages_success += count;
          return std::nullopt;
        }
        for (std::uint64_t k = 0; k < bits; ++k) used[b + k] = true;
        live[page] = count;
        return page;
      }
    }
    alloc_pages_fail += count;
    return std::nullopt;
  }

  bool release(std::uint64_t page, std::uint64_t count) {
    auto it = live.find(page);
    if (it == live.end() || it->second != count) return false;
    const unsigned opb = cfg.order_per_bit;
    const std::uint64_t bits = (count + (1ULL << opb) - 1) >> opb;
    for (std::uint64_t k = 0; k < bits; ++k) used[(page >> opb) + k] = false;
    live.erase(it);
    return true;
  }
};

}  // namespace numacma::testing
