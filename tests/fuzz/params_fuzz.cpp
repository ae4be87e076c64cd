// tests/fuzz/params_fuzz.cpp — parse_size, parse_params and make_plan on any
// bytes. Beyond "no crash, no sanitizer report", it checks what must hold of
// every answer:
//
//   parse_size ok      -> its decimal and 0x-hex spellings parse to the same value
//   parse_params error -> Errc::invalid_argument with a non-empty message
//   parse_params ok    -> make_plan on a fixed 4-node topology (node 2 has no
//                         memory) gives whole-unit sizes never below the request,
//                         unique names, no area on node 2, and every request
//                         either placed or reported
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>

#include "config/params.hpp"
#include "topology/topology.hpp"

namespace {

using namespace numacma;

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) __builtin_trap(); \
  } while (0)

const topo::Topology& four_nodes() {
  static const topo::Topology t = [] {
    std::vector<topo::NodeInfo> nodes;
    for (int id = 0; id < 4; ++id) {
      topo::NodeInfo n;
      n.id = id;
      n.has_memory = id != 2;
      n.cpus = {id};
      n.mem.total_bytes = n.has_memory ? std::uint64_t{1} << 34 : 0;
      nodes.push_back(n);
    }
    return topo::Topology::from_parts(std::move(nodes), {});
  }();
  return t;
}

void check_size(std::string_view text) {
  auto r = config::parse_size(text);
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == Errc::invalid_argument && !r.error().message.empty());
    return;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(*r));
  auto dec = config::parse_size(buf);
  FUZZ_CHECK(dec.ok() && *dec == *r);
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(*r));
  auto hex = config::parse_size(buf);
  FUZZ_CHECK(hex.ok() && *hex == *r);
}

void check_plan(const config::Params& p, unsigned order, config::Arch arch, config::Profile profile = {}) {
  // Every CMA area is whole 2 MiB pageblocks, and whole bitmap bits.
  const std::uint64_t unit = std::max<std::uint64_t>(std::uint64_t{4096} << order, 2ULL << 20);
  const auto plan = config::make_plan(p, four_nodes(), 4096, order, arch, profile);
  const bool v7_2 = profile.kernel == config::KernelProfile::v7_2;
  // 7.2: a node's size is numa_cma='s, else cma_pernuma='s, else (cma_size_pernuma,
  // neither key, more than one node online: 3 on x86-64, 4 on arm64) the default's.
  std::uint64_t per_node = p.pernuma_bytes.value_or(0);
  if (v7_2 && profile.cma_size_pernuma && !p.pernuma_bytes && p.numa_cma.empty() && p.cma_bytes && *p.cma_bytes)
    per_node = *p.cma_bytes;
  const auto named = [&](int node) {
    std::uint64_t b = 0;
    for (const auto& [n, size] : p.numa_cma)
      if (n == node) b = size;
    return b;
  };
  const auto layout = config::physical_layout(four_nodes());
  std::set<std::string> names;
  for (const auto& a : plan.areas) {
    FUZZ_CHECK(names.insert(a.name).second);
    FUZZ_CHECK(a.node != 2 && four_nodes().is_online(a.node));
    FUZZ_CHECK(a.bytes != 0 && a.bytes % unit == 0);
    // Placed whole inside its node's memory, never overlapping another area.
    bool inside = false;
    for (const auto& r : layout)
      inside = inside || (r.node == a.node && r.start <= a.phys_base && a.bytes <= r.end - a.phys_base);
    FUZZ_CHECK(inside);
    for (const auto& b : plan.areas)
      FUZZ_CHECK(&a == &b || a.phys_base + a.bytes <= b.phys_base || b.phys_base + b.bytes <= a.phys_base);
    std::uint64_t want = 0;
    if (a.kind == config::AreaKind::default_area) want = *p.cma_bytes;
    else if (a.kind == config::AreaKind::pernuma) want = *p.pernuma_bytes;
    else if (v7_2) want = named(a.node) != 0 ? named(a.node) : per_node;
    else want = named(a.node);
    FUZZ_CHECK(!v7_2 || a.kind != config::AreaKind::pernuma);
    FUZZ_CHECK(a.name == (a.kind == config::AreaKind::default_area ? std::string("reserved")
                          : (a.kind == config::AreaKind::pernuma ? "pernuma" : "numa") + std::to_string(a.node)));
    // The auto size is the default area's after rounding: up to one more unit.
    FUZZ_CHECK(a.bytes >= want && a.bytes - want < (v7_2 ? 2 : 1) * unit);
  }
  for (const auto& n : plan.not_placed) FUZZ_CHECK(!n.reason.empty());
  std::size_t asked = 0;
  if (p.cma_bytes && *p.cma_bytes) asked += 1;
  if (!v7_2) {
    if (p.pernuma_bytes && *p.pernuma_bytes) asked += 3;  // nodes 0, 1, 3
    for (const auto& [n, b] : p.numa_cma) asked += b != 0;
  } else {
    for (int node : {0, 1, 3}) asked += named(node) != 0 || per_node != 0;
    for (const auto& [n, b] : p.numa_cma) asked += b != 0 && (n == 2 || n > 3);  // reported
  }
  FUZZ_CHECK(plan.areas.size() + plan.not_placed.size() == asked);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_size(text);
  auto params = config::parse_params(text);
  if (!params.ok()) {
    FUZZ_CHECK(params.error().code == Errc::invalid_argument);
    FUZZ_CHECK(!params.error().message.empty());
    return 0;
  }
  check_plan(*params, 0, config::Arch::x86_64);
  check_plan(*params, size % 8, size % 2 ? config::Arch::arm64 : config::Arch::x86_64);
  check_plan(*params, size % 3, size % 2 ? config::Arch::arm64 : config::Arch::x86_64,
             {config::KernelProfile::v7_2, size % 4 < 2});
  return 0;
}
