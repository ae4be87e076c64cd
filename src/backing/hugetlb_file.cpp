// src/backing/hugetlb_file.cpp — see hugetlb_file.hpp.
//
//   populate_sorted:  ftruncate -> mmap shared (first mapping) -> mbind strict
//                     -> MADV_POPULATE_WRITE -> move_pages check -> pagemap
//                     -> sort the pages by physical address
//                     -> PROT_NONE range, mmap(MAP_FIXED) each run of pages at its slots
//                     -> munmap the first mapping -> pagemap again (must match) -> mlock
#include "backing/hugetlb_file.hpp"
#include "core/limits.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

#include "os/os.hpp"

namespace numacma::backing {

namespace {

using core::kPageBytes;

void* ptr(std::uintptr_t a) { return reinterpret_cast<void*>(a); }

bool valid_hp(std::uint64_t hp) { return hp >= kPageBytes && (hp & (hp - 1)) == 0; }

/** File page order[k] at base + k * hp, over a fresh PROT_NONE range: one mmap per run
 *  consecutive both in the file and in `order`. Not faulted in. Unmaps on failure. */
Result<std::uintptr_t> map_slots(int fd, const std::vector<std::uint32_t>& order, std::uint64_t hp) {
  const std::uint64_t bytes = order.size() * hp;
  Result<void*> range = os::reserve_range(bytes, hp);
  if (!range) return std::move(range).error();
  const auto base = reinterpret_cast<std::uintptr_t>(*range);
  for (std::size_t k = 0; k < order.size();) {
    std::size_t j = k + 1;
    while (j < order.size() && order[j] == order[j - 1] + 1) ++j;
    Result<void*> m = os::map_file(fd, (j - k) * hp, std::uint64_t{order[k]} * hp, ptr(base + k * hp));
    if (!m) {
      (void)os::unmap(*range, bytes);  // the reservation and the pages mapped so far
      return std::move(m).error();
    }
    k = j;
  }
  return base;
}

}  // namespace

std::string compact_node(const std::string& sysfs_root, int node) {
  const std::string path = sysfs_root + "/devices/system/node/node" + std::to_string(node) + "/compact";
  Status s = os::write_file(path, "1");
  return s ? "" : "compaction of node " + std::to_string(node) + " skipped: " + s.error().message;
}

Status verify_node(void* p, std::uint64_t bytes, std::uint64_t step, int node) {
  Result<std::vector<int>> nodes = os::page_nodes(p, bytes, step);
  if (!nodes) return std::move(nodes).error();
  for (std::size_t i = 0; i < nodes->size(); ++i) {
    if ((*nodes)[i] != node)
      return make_error(Errc::no_memory, "page " + std::to_string(i) + " landed on node " +
                                             std::to_string((*nodes)[i]) + ", not node " +
                                             std::to_string(node) + " (binding is strict)");
  }
  return {};
}

Result<HugeMapping> populate_sorted(int fd, std::uint64_t mapped_bytes, std::uint64_t hp, int node, bool lock) {
  if (!valid_hp(hp) || mapped_bytes == 0 || mapped_bytes % hp != 0)
    return make_error(Errc::invalid_argument, "populate_sorted: " + std::to_string(mapped_bytes) +
                                                  " bytes is not a non-zero multiple of the hugepage size " +
                                                  std::to_string(hp));
  const std::uint64_t n = mapped_bytes / hp;
  if (n > std::numeric_limits<std::uint32_t>::max())
    return make_error(Errc::invalid_argument, "populate_sorted: too many hugepages");
  if (Status s = os::truncate_file(fd, mapped_bytes); !s) return std::move(s).error();
  auto fail = [&](Error e) -> Result<HugeMapping> {
    (void)os::truncate_file(fd, 0);  // the pages go back to the hugepage pool
    return e;
  };
  Result<void*> first = os::map_file(fd, mapped_bytes, 0);
  if (!first) return fail(std::move(first).error());
  auto fail_first = [&](Error e) -> Result<HugeMapping> {
    (void)os::unmap(*first, mapped_bytes);
    return fail(std::move(e));
  };
  if (node >= 0) {
    if (Status s = os::bind_to_node(*first, mapped_bytes, node); !s) return fail_first(std::move(s).error());
  }
  if (Status s = os::populate(*first, mapped_bytes, hp); !s) return fail_first(std::move(s).error());
  if (node >= 0) {
    if (Status s = verify_node(*first, mapped_bytes, hp, node); !s) return fail_first(std::move(s).error());
  }

  HugeMapping m;
  m.mapped_bytes = mapped_bytes;
  m.huge_page_bytes = hp;
  m.order.resize(n);
  std::iota(m.order.begin(), m.order.end(), 0u);
  Result<std::vector<std::uint64_t>> pa = os::physical_addresses(*first, mapped_bytes, hp);
  if (pa) {
    std::sort(m.order.begin(), m.order.end(), [&](std::uint32_t a, std::uint32_t b) { return (*pa)[a] < (*pa)[b]; });
    m.phys.resize(n);
    for (std::size_t k = 0; k < n; ++k) m.phys[k] = (*pa)[m.order[k]];
  }
  const bool file_order = std::is_sorted(m.order.begin(), m.order.end());
  if (file_order) {
    m.cpu_base = reinterpret_cast<std::uintptr_t>(*first);  // already where it belongs
  } else {
    Result<std::uintptr_t> base = map_slots(fd, m.order, hp);
    if (!base) return fail_first(std::move(base).error());
    m.cpu_base = *base;
    (void)os::unmap(*first, mapped_bytes);  // the file and the new mapping keep the pages
    auto fail_base = [&](Error e) -> Result<HugeMapping> {
      (void)os::unmap(ptr(m.cpu_base), mapped_bytes);
      return fail(std::move(e));
    };
    if (Status s = os::populate(ptr(m.cpu_base), mapped_bytes, hp); !s) return fail_base(std::move(s).error());
    // The pages were there already: populating maps them, never allocates.
    // Check that each slot holds the page it was meant to.
    Result<std::vector<std::uint64_t>> again = os::physical_addresses(ptr(m.cpu_base), mapped_bytes, hp);
    if (!again) return fail_base(std::move(again).error());
    if (*again != m.phys)
      return fail_base(make_error(Errc::io_error, "populate_sorted: the remapped hugepages are not at the "
                                                  "physical addresses read before remapping"));
  }
  if (lock) {
    if (Status s = os::lock(ptr(m.cpu_base), mapped_bytes); !s) {
      (void)os::unmap(ptr(m.cpu_base), mapped_bytes);
      return fail(std::move(s).error());
    }
  }
  return m;
}

Result<std::uintptr_t> map_in_order(int fd, const std::vector<std::uint32_t>& order, std::uint64_t hp, bool lock) {
  if (!valid_hp(hp) || order.empty())
    return make_error(Errc::invalid_argument, "map_in_order: no pages, or a hugepage size that is not a power of two");
  Result<std::uintptr_t> base = map_slots(fd, order, hp);
  if (!base) return base;
  const std::uint64_t bytes = order.size() * hp;
  Status s = os::populate(ptr(*base), bytes, hp);
  if (s && lock) s = os::lock(ptr(*base), bytes);
  if (!s) {
    (void)os::unmap(ptr(*base), bytes);
    return std::move(s).error();
  }
  return base;
}

std::vector<core::Segment> segments_from_phys(const std::vector<std::uint64_t>& phys, std::uint64_t hp,
                                              std::uint64_t bytes) {
  std::vector<core::Segment> out;
  const std::uint64_t per = hp / kPageBytes, pages = bytes / kPageBytes;
  for (std::size_t k = 0; k < phys.size() && k * per < pages; ++k) {
    const std::uint64_t first = k * per, len = std::min(per, pages - first);
    if (!out.empty() && phys[k - 1] + hp == phys[k])
      out.back().pages += len;
    else
      out.push_back({first, len, phys[k]});
  }
  return out;
}

void unmap_huge(std::uintptr_t cpu_base, std::uint64_t mapped_bytes) noexcept {
  (void)os::unlock(ptr(cpu_base), mapped_bytes);
  (void)os::unmap(ptr(cpu_base), mapped_bytes);
}

}  // namespace numacma::backing
