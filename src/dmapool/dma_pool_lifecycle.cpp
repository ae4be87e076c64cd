// src/dmapool/dma_pool_lifecycle.cpp — numacma::DmaPool's handle: create
// (the layout, the caches' sizes), move, shrink, stats and destroy (a busy
// destroy leaves the core alive for its blocks). dma_pool.cpp's comment
// tells the whole design.
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dmapool/dma_pool_core.hpp"

namespace numacma {
namespace detail {
namespace {

constexpr std::size_t kDepotMax = 8;            // full magazines kept for the caches,
constexpr std::size_t kDepotBytes = 512u << 10;  // and no more blocks' bytes than this (at least 2)

std::uint32_t cache_capacity(std::size_t block) {
  if (block <= 1024) return 256;
  return static_cast<std::uint32_t>(std::clamp<std::size_t>((256u << 10) / block, 16, 256));
}

std::atomic<std::uint64_t> g_next_uid{1};

}  // namespace
}  // namespace detail

// ---- DmaPool -----------------------------------------------------------------

DmaPool::DmaPool(std::shared_ptr<detail::DmaPoolCore> core)
    : core_(std::move(core)), uid_(core_->uid), head_(core_.get()), block_size_(core_->layout.block) {}
DmaPool::DmaPool(DmaPool&& o) noexcept
    : core_(std::move(o.core_)),
      uid_(std::exchange(o.uid_, ~std::uint64_t{0})),
      head_(std::exchange(o.head_, nullptr)),
      block_size_(o.block_size_) {}
DmaPool& DmaPool::operator=(DmaPool&& o) noexcept {
  if (this != &o) {
    (void)destroy();
    core_ = std::move(o.core_);
    uid_ = std::exchange(o.uid_, ~std::uint64_t{0});
    head_ = std::exchange(o.head_, nullptr);
    block_size_ = o.block_size_;
  }
  return *this;
}
DmaPool::~DmaPool() { (void)destroy(); }

Result<DmaPool> DmaPool::create(Pool& pool, const Device& dev, std::string_view name,
                                std::size_t size, std::size_t align, std::size_t boundary) {
  detail::PoolImpl* impl = detail::impl_of(pool);
  if (impl == nullptr) return make_error(Errc::invalid_argument, "dma_pool: the Pool is empty");
  Result<dmapool::Layout> l =
      dmapool::make_layout(size, align, boundary, core::kPageBytes, "dma_pool " + std::string(name));
  if (!l) return std::move(l).error();
  auto core = std::make_shared<detail::DmaPoolCore>();
  core->pool = impl->shared_from_this();
  core->dev = dev;
  core->name = std::string(name);
  core->layout = std::move(*l);
  core->uid = detail::g_next_uid.fetch_add(1, std::memory_order_relaxed);
  core->cache_cap = detail::cache_capacity(core->layout.block);
  core->batch = core->cache_cap / 2;
  core->depot_max = std::clamp<std::size_t>(
      detail::kDepotBytes / (std::size_t{core->batch} * core->layout.block), 2, detail::kDepotMax);
  core->weak_self = core;
  return DmaPool(std::move(core));
}

void DmaPool::shrink() {
  if (!core_) return;
  std::vector<DmaBuffer> out;
  std::lock_guard lk(core_->mu);
  core_->drain_depot_locked(out);
  core_->shrink_locked(0, out);
}

DmaPoolStats DmaPool::stats() const {
  DmaPoolStats s;
  if (!core_) return s;
  const detail::DmaPoolCore& c = *core_;
  s.name = c.name;
  s.device = c.dev.name;
  s.node = c.dev.node;
  s.block_size = c.layout.block;
  s.align = c.layout.align;
  s.boundary = c.layout.boundary;
  s.page_bytes = c.layout.page_bytes;
  s.blocks_per_page = c.layout.blocks();
  s.bad_frees = c.bad_frees.load(std::memory_order_relaxed);
  s.alloc_failures = c.alloc_failures.load(std::memory_order_relaxed);
  std::lock_guard lk(c.mu);
  s.pages = c.pages;
  s.pages_grown = c.grown;
  s.pages_returned = c.returned;
  s.threads = c.caches.size();
  std::vector<const detail::DmaPage*> held;
  std::uint64_t in_use = 0;
  for (const auto& r : c.records) {
    if (!r->buf) continue;
    held.push_back(r.get());
    in_use += r->held;
    s.blocks_free += r->free.size();
  }
  for (const auto& tc : c.caches) s.blocks_cached += tc->n.load(std::memory_order_relaxed);
  for (const auto& m : c.depot) s.blocks_cached += m.size();
  s.blocks_live = in_use - std::min(in_use, s.blocks_cached);
  std::sort(held.begin(), held.end(),
            [](const detail::DmaPage* a, const detail::DmaPage* b) { return a->seq < b->seq; });
  for (const detail::DmaPage* p : held)
    s.page_list.push_back({p->buf.area_name(), p->buf.node(), p->buf.cpu(), p->buf.dma_addr(),
                           p->free.size()});
  return s;
}

const std::string& DmaPool::name() const noexcept {
  static const std::string none;
  return core_ ? core_->name : none;
}

Status DmaPool::destroy() {
  if (!core_) return {};
  std::shared_ptr<detail::DmaPoolCore> core = std::move(core_);
  uid_ = ~std::uint64_t{0};
  head_ = nullptr;
  std::vector<DmaBuffer> out;
  std::uint64_t live = 0, busy_pages = 0;
  {
    std::lock_guard lk(core->mu);
    // Every cache back to the shared lists (no thread uses the pool now, by
    // contract); the cache objects stay, their threads' registries name them.
    for (auto& tc : core->caches) core->flush_locked(*tc, tc->n.load(std::memory_order_relaxed), out);
    core->drain_depot_locked(out);
    core->shrink_locked(0, out);
    live = core->held_blocks();
    if (live == 0) return {};
    busy_pages = core->pages;
    core->orphaned.store(true, std::memory_order_relaxed);
    // Closed caches: a block freed from now on takes the slow path, which
    // hands it straight back (and its page when it is the page's last).
    for (auto& tc : core->caches) tc->cap.store(0, std::memory_order_relaxed);
    core->self = core;
  }
  return make_error(Errc::busy, "dma_pool " + core->name + " destroyed busy: " +
                                    std::to_string(live) + " block(s) still allocated; their " +
                                    std::to_string(busy_pages) +
                                    " page(s) go back to their areas when the last is freed");
}

}  // namespace numacma
