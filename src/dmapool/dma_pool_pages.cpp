// src/dmapool/dma_pool_pages.cpp — DmaPool's pages: a new page from the Pool
// (alloc_coherent, checked against the pool's layout, published in the page
// index last) and pages given back to their areas (dma_pool.cpp's comment
// tells the whole design).
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dmapool/dma_pool_core.hpp"

namespace numacma {
namespace detail {

Status DmaPoolCore::add_page(std::unique_lock<std::mutex>& lk) {
  lk.unlock();
  const int cpu = dev.node == kNoNode ? pool->backing->calling_cpu() : -1;
  Result<DmaBuffer> r = pool->alloc_buffer(dev, layout.page_bytes, cpu);
  if (!r) {
    lk.lock();
    Error e = std::move(r).error();
    e.message = "dma_pool " + name + ": no page for a block: " + e.message;
    return e;
  }
  DmaBuffer buf = std::move(*r);
  const auto c = reinterpret_cast<std::uintptr_t>(buf.cpu());
  const std::uint64_t d = buf.dma_addr();
  std::string why;
  if (layout.page_bytes > core::kPageBytes && !buf.contiguous()) {
    why = "is not contiguous for the device";
  } else if (c % layout.align != 0 || d % layout.align != 0) {
    why = "is not aligned to " + fmt_bytes(layout.align) + " (the pool's align)";
  } else if (!layout.page_fits(d)) {
    why = "crosses the pool's " + fmt_bytes(layout.boundary_asked) + " boundary";
  } else if (!dmapool::PageIndex<DmaPage>::covers(c, layout.page_bytes)) {
    why = "lies above the 48-bit CPU addresses the pool indexes";
  }
  lk.lock();
  if (!why.empty()) {
    lk.unlock();
    buf = DmaBuffer();  // back to its area, outside the lock
    lk.lock();
    return make_error(Errc::unsupported, "dma_pool " + name + ": the page alloc_coherent gave (" +
                                             fmt_bytes(layout.page_bytes) + " at dma " + fmt_hex(d) +
                                             ") " + why);
  }
  DmaPage* p;
  if (!spare.empty()) {
    p = spare.back();
    spare.pop_back();
  } else {
    records.push_back(std::make_unique<DmaPage>(this, layout.blocks()));
    p = records.back().get();
  }
  p->buf = std::move(buf);
  p->cpu.store(c, std::memory_order_relaxed);
  p->dma.store(d, std::memory_order_relaxed);
  p->free.clear();
  for (std::size_t i = layout.blocks(); i-- > 0;) {
    p->state[i].store(kDmaBlockFree, std::memory_order_relaxed);
    p->free.push_back(static_cast<std::uint32_t>(i));
  }
  p->held = 0;
  p->seq = seq++;
  ++pages;
  ++grown;
  list_put(p);
  index.set(c, layout.page_bytes, p);  // published last (release)
  return {};
}

void DmaPoolCore::release_page(DmaPage* p, std::vector<DmaBuffer>& out) {
  list_remove(p);
  index.set(p->cpu.load(std::memory_order_relaxed), layout.page_bytes, nullptr);
  out.push_back(std::move(p->buf));
  p->buf = DmaBuffer();
  p->free.clear();
  p->held = 0;
  spare.push_back(p);
  --pages;
  ++returned;
}

void DmaPoolCore::shrink_locked(std::size_t keep, std::vector<DmaBuffer>& out) {
  while (empty.size() > keep) release_page(empty.back(), out);
}

}  // namespace detail
}  // namespace numacma
