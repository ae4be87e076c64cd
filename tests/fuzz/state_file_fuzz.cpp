// Fuzz: mutated state files of a reserved pool (src/shared/layout.hpp).
// Two ways in: the input as a whole file, and a valid file (two areas, one of
// them hugetlb, with live records) damaged by the input read as
// (offset, xor byte) pairs, so that most of the format is reached. Either is
// validated; an accepted file has every area rebuilt from its records, as
// Pool::attach and each process's mirror do. Nothing may crash, read out of
// bounds or hang; damage in the fixed part must be refused.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shared/layout.hpp"

namespace {

using namespace numacma;

const std::vector<unsigned char>& valid_image() {
  static const std::vector<unsigned char> img = [] {
    shared::PoolSpec s;
    s.name = "fuzz";
    s.params = "cma=8M cma_pernuma=4M";
    s.backing = "auto";
    s.sysfs_root = "/sys";
    s.node_slots = 3;
    s.holder_capacity = 8;
    shared::AreaSpec a;
    a.name = "reserved";
    a.kind_name = "anon";
    a.path = "/run/numacma/pools/fuzz/reserved.mem";
    a.pages = 2048;
    a.mapped_bytes = 2048 * 4096;
    a.iova = true;
    a.segments = {{0, 2048, 1ULL << 40}};
    s.areas.push_back(a);
    shared::AreaSpec h;
    h.name = "pernuma1";
    h.kind_name = "hugetlb-2M";
    h.path = "/dev/hugepages/numacma.fuzz.pernuma1";
    h.node = 1;
    h.pages = 1024;
    h.mapped_bytes = 1024 * 4096;
    h.huge_page_bytes = 2 << 20;
    h.hpmap = {1, 0};
    h.segments = {{0, 512, 0x40000000}, {512, 512, 0x80000000}};
    s.areas.push_back(h);
    auto r = shared::make_image(s);
    if (!r) std::abort();
    std::vector<unsigned char> img = *r;
    // Live records: three buffers in each area.
    for (std::uint32_t i = 0; i < 2; ++i) {
      const shared::AreaDesc& d = shared::area_desc(img.data(), i);
      auto* recs = shared::at<std::uint64_t>(img.data(), d.recs_offset);
      recs[0] = shared::rec_word({4, 1});
      recs[16] = shared::rec_word({16, 2});
      recs[100] = shared::rec_word({2, 1});
    }
    return img;
  }();
  return img;
}

void check(const std::vector<unsigned char>& img, bool fixed_damaged) {
  const Status v = shared::validate(img.data(), img.size());
  if (!v) {
    if (v.error().code != Errc::corrupt || v.error().message.empty()) std::abort();
    return;
  }
  if (fixed_damaged) std::abort();  // the checksum must have caught it
  const shared::FileHeader& h = shared::header(img.data());
  for (std::uint32_t i = 0; i < h.area_count; ++i) {
    Result<core::Area> area = core::Area::create(shared::area_config(img.data(), i));
    if (!area) continue;  // validate accepts only what Area::create does; still, never crash
    const Status s = shared::restore_records(img.data(), i, *area);
    if (s) {
      std::string why;
      if (!area->invariant(&why)) std::abort();
    } else if (s.error().code != Errc::corrupt) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // 1. The bytes as a state file.
  std::vector<unsigned char> raw(data, data + size);
  check(raw, false);
  // 2. A valid file, damaged: (offset u32, xor u8) pairs; a last odd byte truncates.
  std::vector<unsigned char> img = valid_image();
  const std::uint64_t fixed = shared::header(img.data()).fixed_bytes;
  bool fixed_damaged = false;
  std::size_t i = 0;
  for (; i + 5 <= size; i += 5) {
    std::uint32_t off;
    std::memcpy(&off, data + i, 4);
    off %= static_cast<std::uint32_t>(img.size());
    const unsigned char x = data[i + 4];
    if (x == 0) continue;
    img[off] ^= x;
    if (off < fixed) fixed_damaged = true;
  }
  // Two flips of the same byte undo each other: judge by content.
  fixed_damaged = fixed_damaged && std::memcmp(img.data(), valid_image().data(), fixed) != 0;
  if (i < size && data[i] % 4 == 0) {
    img.resize(img.size() - 1 - data[i] % img.size() % 4096);
    fixed_damaged = true;  // a truncated file is never accepted
  }
  check(img, fixed_damaged);
  return 0;
}
