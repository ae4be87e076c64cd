// src/config/params.hpp — kernel-style CMA parameters into a ReservationPlan.
//
//   "cma=64M cma_pernuma=16M numa_cma=1:32M,3:8M"
//        |          |                |
//        |          |                +-- R3: area "numa<N>" on each named node
//        |          +------------------- R2: area "pernuma<N>" on every online
//        |                                   node with memory
//        +------------------------------ R1: default area "reserved" (R5: on the
//                                            first online node with memory)
//
// parse_params() is pure syntax (no topology); make_plan() places the parsed
// request on a Topology. Neither makes a system call. Every malformed input is
// an Errc::invalid_argument whose message names the bad token.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "numacma/result.hpp"
#include "topology/topology.hpp"

namespace numacma::config {

/** The kernel's memparse: digits (decimal, or 0x hex, or 0 octal) followed by
 *  an optional suffix K, M, G, T, P, E (case-insensitive). Rejects empty
 *  input, junk after the suffix and values that overflow 64 bits. */
Result<std::uint64_t> parse_size(std::string_view text);

struct Params {
  std::optional<std::uint64_t> cma_bytes;      ///< cma=<size>
  std::optional<std::uint64_t> pernuma_bytes;  ///< cma_pernuma=<size>
  std::vector<std::pair<int, std::uint64_t>> numa_cma;  ///< numa_cma=<node>:<size>,...
};

/** Whitespace-separated tokens. Unknown keys, duplicate keys, duplicate
 *  nodes in numa_cma=, `cma=<size>@<base>` (a physical base cannot be
 *  chosen from user space) and malformed values are errors. */
Result<Params> parse_params(std::string_view text);

enum class AreaKind { default_area, pernuma, numa, device };
const char* area_kind_name(AreaKind k) noexcept;

struct PlannedArea {
  std::string name;      ///< "reserved", "pernuma<N>", "numa<N>", device name
  AreaKind kind = AreaKind::default_area;
  int node = -1;
  std::uint64_t bytes = 0;  ///< rounded up to whole pages and whole bitmap bits (R6)
};

struct NotPlaced {
  std::string name;
  int node = -1;
  std::string reason;    ///< "node 5 does not exist", "node 2 has no memory"
};

struct ReservationPlan {
  std::vector<PlannedArea> areas;     ///< in reservation order: default, pernuma, numa
  std::vector<NotPlaced> not_placed;  ///< R3: reported, not fatal
};

/** Places params on the topology (R1-R6). A size of 0 plans nothing for that
 *  key. page_size is P; sizes round up to P << order_per_bit. */
ReservationPlan make_plan(const Params& params, const topo::Topology& topology,
                          std::uint64_t page_size = 4096, unsigned order_per_bit = 0);

}  // namespace numacma::config
