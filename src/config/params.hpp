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

#include "config/memblock.hpp"
#include "numacma/result.hpp"
#include "topology/topology.hpp"

namespace numacma::config {

/** The kernel's memparse: digits (decimal, or 0x hex, or 0 octal) followed by
 *  an optional suffix K, M, G, T, P, E (case-insensitive). Rejects empty
 *  input, junk after the suffix and values that overflow 64 bits. */
Result<std::uint64_t> parse_size(std::string_view text);

/** "4 MiB", "0 B", "4097 B": a size in its largest whole unit. */
std::string fmt_size(std::uint64_t bytes);

struct Params {
  std::optional<std::uint64_t> cma_bytes;      ///< cma=<size>
  std::optional<std::uint64_t> pernuma_bytes;  ///< cma_pernuma=<size>
  /** numa_cma=<node>:<size>,... one entry per node, in the order each node
   *  first appears; a node given again keeps its place and takes the later
   *  size (the kernel's numa_cma_size[nid] = size). */
  std::vector<std::pair<int, std::uint64_t>> numa_cma;
  /** What was accepted but deserves a word (a numa_cma= node given twice);
   *  the pool adds these to its reservation notes. */
  std::vector<std::string> notes;
};

/** Whitespace-separated tokens. Unknown keys, duplicate keys,
 *  `cma=<size>@<base>` (a physical base cannot be chosen from user space)
 *  and malformed values are errors. A node given twice in numa_cma= is not:
 *  as in the kernel the last size wins, and a note says so. */
Result<Params> parse_params(std::string_view text);

/** Whose per-NUMA CMA rules make_plan follows (docs/semantics.md, "Kernel
 *  profiles"):
 *   v6_12  cma_pernuma= makes "pernuma<N>" and numa_cma= "numa<N>", two
 *          independent areas a node may both have; reserved before the
 *          default area.
 *   v7_2   one area per node, "numa<N>": numa_cma='s size for the nodes it
 *          names, else cma_pernuma='s (d5cae2261b86); reserved after the
 *          default area, and not at all when the default area fails. With
 *          cma_size_pernuma (CONFIG_CMA_SIZE_PERNUMA, 7e6ace2535d0), neither
 *          key given and more than one node online, every online node gets
 *          an area of the default area's reserved size. */
enum class KernelProfile { v6_12, v7_2 };

struct Profile {
  KernelProfile kernel = KernelProfile::v6_12;
  bool cma_size_pernuma = false;  ///< 7.2's CONFIG_CMA_SIZE_PERNUMA; invalid with 6.12
};

/** "6.12" | "7.2" -> the profile; anything else is invalid_argument. */
Result<KernelProfile> parse_kernel_profile(std::string_view text);
const char* kernel_profile_name(KernelProfile k) noexcept;

enum class AreaKind { default_area, pernuma, numa, device };
const char* area_kind_name(AreaKind k) noexcept;

struct PlannedArea {
  std::string name;      ///< "reserved", "pernuma<N>", "numa<N>", device name
  AreaKind kind = AreaKind::default_area;
  int node = -1;
  std::uint64_t bytes = 0;  ///< rounded up to 2 MiB (the CMA minimum alignment) and whole bitmap bits (R6)
  std::uint64_t phys_base = 0;  ///< where the kernel would put it (memblock.hpp); the sim backing's address
};

struct NotPlaced {
  std::string name;
  int node = -1;
  std::string reason;    ///< "node 5 does not exist", "node 2 has no memory"
};

struct ReservationPlan {
  std::vector<PlannedArea> areas;     ///< default, pernuma (by node), numa (as given)
  std::vector<NotPlaced> not_placed;  ///< R3, R4: reported, not fatal
  Arch arch = Arch::x86_64;
  /** Physical memory still free once the areas are placed (device areas and
   *  the sim's page fallback come from it). */
  std::vector<PhysRange> free_after;
};

/** Places params on the topology (R1-R6) as the kernel `profile` would on `arch`:
 *  sizes round up to 2 MiB (the CMA minimum alignment, a pageblock) and to
 *  P << order_per_bit; the per-node areas are placed first, node by node
 *  (pernuma<N>, then numa<N>), each inside its node; then the default area
 *  below the architecture's limit (memblock.hpp). An area that does not fit
 *  is in not_placed with the reason, as the kernel warns and goes on (R4).
 *  A size of 0 plans nothing for that key. */
ReservationPlan make_plan(const Params& params, const topo::Topology& topology,
                          std::uint64_t page_size = core::kPageBytes, unsigned order_per_bit = 0,
                          Arch arch = host_arch(), const Profile& profile = {});

/** Places one more area (a device's own) in the plan's free memory, top-down
 *  inside its node; not_placed (with the reason) when it does not fit. */
void place_device_area(ReservationPlan& plan, PlannedArea area);

}  // namespace numacma::config
