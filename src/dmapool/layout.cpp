// src/dmapool/layout.cpp — dma_pool_create's checks and the block carving.
#include "dmapool/layout.hpp"

#include <algorithm>
#include <bit>
#include <climits>
#include <string>
#include <string_view>

namespace numacma::dmapool {

namespace {
constexpr std::size_t kMinBlock = 16;  // the kernel's struct dma_block on 64-bit

Error invalid(std::string_view who, const std::string& msg) {
  return make_error(Errc::invalid_argument, std::string(who) + ": " + msg);
}
}  // namespace

Result<Layout> make_layout(std::size_t size, std::size_t align, std::size_t boundary,
                           std::size_t page, std::string_view who) {
  const auto bad = [who](const std::string& msg) { return invalid(who, msg); };
  Layout l;
  if (align == 0) align = 1;
  if (!std::has_single_bit(align))
    return bad("align " + std::to_string(align) + " is not a power of two");
  if (size == 0) return bad("size 0");
  if (size > static_cast<std::size_t>(INT_MAX))
    return bad("size " + std::to_string(size) + " is above INT_MAX");
  if (align > static_cast<std::size_t>(INT_MAX) / 2)
    return bad("align " + std::to_string(align) + " is above INT_MAX / 2");
  size = std::max(size, kMinBlock);
  size = (size + align - 1) & ~(align - 1);
  if (size > static_cast<std::size_t>(INT_MAX))
    return bad("size rounded up to align " + std::to_string(align) + " is above INT_MAX");
  l.block = size;
  l.align = align;
  l.page_bytes = std::max(size, page);
  if (boundary != 0) {
    if (!std::has_single_bit(boundary))
      return bad("boundary " + std::to_string(boundary) + " is not a power of two");
    if (boundary < size)
      return bad("boundary " + std::to_string(boundary) + " is smaller than the block (" +
                 std::to_string(size) + " bytes)");
    l.boundary_asked = boundary;
  } else {
    boundary = l.page_bytes;
  }
  l.boundary = std::min(boundary, l.page_bytes);
  l.slot_shift = static_cast<unsigned>(std::bit_width(size) - 1);  // 2^shift <= size

  // pool_initialise_page: the same walk, offsets in the order the kernel
  // links them.
  std::size_t next_boundary = l.boundary, off = 0;
  while (off + size <= l.page_bytes) {
    if (off + size > next_boundary) {
      off = next_boundary;
      next_boundary += l.boundary;
      continue;
    }
    l.offsets.push_back(static_cast<std::uint32_t>(off));
    off += size;
  }
  l.slot_block.assign((l.page_bytes >> l.slot_shift) + 1, -1);
  for (std::size_t i = 0; i < l.offsets.size(); ++i)
    l.slot_block[l.offsets[i] >> l.slot_shift] = static_cast<std::int32_t>(i);
  return l;
}

}  // namespace numacma::dmapool
