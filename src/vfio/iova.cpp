// src/vfio/iova.cpp — see iova.hpp.
#include "vfio/iova.hpp"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "core/limits.hpp"
#include "topology/topology.hpp"

namespace numacma::vfio {

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::vector<IovaRange> merged(std::vector<IovaRange> r) {
  std::sort(r.begin(), r.end(), [](const IovaRange& a, const IovaRange& b) {
    return a.first < b.first || (a.first == b.first && a.last < b.last);
  });
  std::vector<IovaRange> out;
  for (const IovaRange& x : r) {
    if (x.last < x.first) continue;
    if (!out.empty() && (out.back().last == ~std::uint64_t{0} || x.first <= out.back().last + 1))
      out.back().last = std::max(out.back().last, x.last);
    else
      out.push_back(x);
  }
  return out;
}

}  // namespace

Result<std::vector<IovaRange>> parse_reserved_regions(std::string_view text) {
  std::vector<IovaRange> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    std::vector<std::string_view> words;
    for (std::size_t i = 0; i < line.size();) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])) != 0) ++i;
      std::size_t j = i;
      while (j < line.size() && std::isspace(static_cast<unsigned char>(line[j])) == 0) ++j;
      if (j > i) words.push_back(line.substr(i, j - i));
      i = j;
    }
    if (words.empty()) continue;
    const auto bad = [&](const std::string& why) {
      return make_error(Errc::invalid_argument, "reserved_regions line " + std::to_string(line_no) +
                                                    " '" + std::string(line) + "': " + why);
    };
    if (words.size() != 3) return bad("expected 'START END TYPE'");
    Result<std::uint64_t> a = topo::parse_u64(words[0]);
    Result<std::uint64_t> b = topo::parse_u64(words[1]);
    if (!a || !b) return bad("START and END must be numbers");
    if (*b < *a) return bad("END is below START");
    out.push_back({*a, *b});
  }
  return out;
}

std::vector<IovaRange> subtract(std::vector<IovaRange> ranges, const std::vector<IovaRange>& holes) {
  std::vector<IovaRange> cur = merged(std::move(ranges));
  for (const IovaRange& h : merged(holes)) {
    std::vector<IovaRange> next;
    for (const IovaRange& r : cur) {
      if (h.last < r.first || h.first > r.last) {
        next.push_back(r);
        continue;
      }
      if (h.first > r.first) next.push_back({r.first, h.first - 1});
      if (h.last < r.last) next.push_back({h.last + 1, r.last});
    }
    cur = std::move(next);
  }
  return cur;
}

IovaAllocator::IovaAllocator(const std::vector<IovaRange>& usable)
    : usable_(subtract(usable, {{0, kIovaFloor - 1}})) {
  for (const IovaRange& r : usable_) free_.emplace(r.first, r.last);
}

Result<std::uint64_t> IovaAllocator::alloc(std::uint64_t bytes, std::uint64_t align,
                                           std::uint64_t limit) {
  if (bytes == 0 || bytes % core::kPageBytes != 0)
    return make_error(Errc::invalid_argument,
                      "IOVA allocation of " + std::to_string(bytes) + " bytes (not whole 4 KiB pages)");
  if (align < core::kPageBytes || (align & (align - 1)) != 0)
    return make_error(Errc::invalid_argument,
                      "IOVA alignment " + std::to_string(align) + " is not a power of two >= " +
                          std::to_string(core::kPageBytes));
  if (usable_.empty() || usable_.front().first > limit)
    return make_error(Errc::unreachable,
                      "no usable IOVA at or below the DMA mask " + hex(limit) +
                          (usable_.empty() ? std::string(" (the container has no usable IOVA range)")
                                           : " (the lowest usable IOVA is " + hex(usable_.front().first) + ")"));
  for (auto it = free_.begin(); it != free_.end() && it->first <= limit; ++it) {
    const std::uint64_t first = it->first, last = std::min(it->second, limit);
    const std::uint64_t start = (first + align - 1) & ~(align - 1);
    if (start < first || start > last) continue;            // wrapped, or no aligned start
    if (last - start < bytes - 1) continue;                 // does not fit
    const std::uint64_t end = start + bytes - 1;            // inclusive
    const std::uint64_t range_last = it->second;
    free_.erase(it);
    if (start > first) free_.emplace(first, start - 1);
    if (end < range_last) free_.emplace(end + 1, range_last);
    live_.emplace(start, bytes);
    allocated_ += bytes;
    return start;
  }
  std::uint64_t below = 0;
  for (const auto& [f, l] : free_)
    if (f <= limit) below += std::min(l, limit) - f + 1;
  return make_error(Errc::no_memory, "IOVA space exhausted: no free range of " + std::to_string(bytes) +
                                         " bytes aligned to " + std::to_string(align) +
                                         " below " + hex(limit) + " (" + std::to_string(below) +
                                         " bytes free there, " + std::to_string(live_.size()) +
                                         " mappings live)");
}

Status IovaAllocator::free(std::uint64_t iova, std::uint64_t bytes) {
  auto it = live_.find(iova);
  if (it == live_.end() || it->second != bytes)
    return make_error(Errc::invalid_argument, "IOVA free of " + hex(iova) + " + " + std::to_string(bytes) +
                                                  ": not a live IOVA allocation");
  live_.erase(it);
  allocated_ -= bytes;
  std::uint64_t first = iova, last = iova + bytes - 1;
  auto next = free_.lower_bound(first);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->second + 1 == first) {
      first = prev->first;
      free_.erase(prev);
    }
  }
  next = free_.lower_bound(first);
  if (next != free_.end() && last != ~std::uint64_t{0} && next->first == last + 1) {
    last = next->second;
    free_.erase(next);
  }
  free_.emplace(first, last);
  return {};
}

Status IovaAllocator::exclude(IovaRange r) {
  if (r.last < r.first) return make_error(Errc::invalid_argument, "IOVA exclude of an empty range");
  auto it = live_.upper_bound(r.last);
  if (it != live_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second - 1 >= r.first)
      return make_error(Errc::invalid_argument,
                        "the reserved IOVA range " + hex(r.first) + "-" + hex(r.last) +
                            " overlaps the live mapping at " + hex(prev->first));
  }
  usable_ = subtract(usable_, {r});
  std::vector<IovaRange> left = subtract(free_ranges(), {r});
  free_.clear();
  for (const IovaRange& x : left) free_.emplace(x.first, x.last);
  return {};
}

std::vector<IovaRange> IovaAllocator::free_ranges() const {
  std::vector<IovaRange> out;
  for (const auto& [f, l] : free_) out.push_back({f, l});
  return out;
}

bool IovaAllocator::invariant() const {
  std::uint64_t free_bytes = 0, usable_bytes = 0, live_bytes = 0;
  const IovaRange* prev = nullptr;
  std::vector<IovaRange> fr = free_ranges();
  for (const IovaRange& r : fr) {
    if (r.last < r.first) return false;
    if (prev != nullptr && prev->last + 1 >= r.first) return false;  // overlapping or adjacent
    const bool inside = std::any_of(usable_.begin(), usable_.end(), [&](const IovaRange& u) {
      return u.first <= r.first && r.last <= u.last;
    });
    if (!inside) return false;
    free_bytes += r.last - r.first + 1;
    prev = &r;
  }
  for (const IovaRange& u : usable_) usable_bytes += u.last - u.first + 1;
  for (const auto& [iova, bytes] : live_) {
    live_bytes += bytes;
    auto it = free_.upper_bound(iova + bytes - 1);
    if (it != free_.begin() && std::prev(it)->second >= iova) return false;  // overlaps a free range
  }
  // Bytes add up when the usable space is not the whole 2^64 (it never is:
  // the floor is cut out).
  return live_bytes == allocated_ && free_bytes + live_bytes == usable_bytes;
}

}  // namespace numacma::vfio
