// src/pool/trace.hpp — the replay trace format (docs/design.md) and its reader.
//
//   # comment                                   (also after a request)
//   cpu <N>                                     the default of cpu=<N> (once, before any request)
//   alloc <id> <node|-1> <size>[K|M|G] [dma_mask=0x<hex>] [device=<name>] [cpu=<N>]
//   free <id>
//
// The reader is pure text -> TraceLine; it never touches a Pool, so it is
// fuzzed on its own. A bad line is an Error naming the line number and the bad
// token ("line 7: alloc: size '12Q': unknown suffix 'Q'"); blank and comment
// lines yield TraceOp::none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "numacma/result.hpp"

namespace numacma::trace {

/** cpu: the trace states the CPU of its alloc lines that name none
 *  (TraceLine::cpu); the replay checks that it does so once, first. */
enum class TraceOp { none, alloc, free, cpu };

struct TraceLine {
  TraceOp op = TraceOp::none;
  std::string id;
  int node = -1;                     ///< -1: NUMA_NO_NODE
  std::uint64_t size = 0;            ///< bytes (may be 0: the pool rejects it, A1)
  std::uint64_t dma_mask = ~std::uint64_t{0};
  std::string device;                ///< "" when not given
  /** cpu=<N>: the CPU the request is made on (0..kMaxCpu), -1 when not
   *  given (the trace's `cpu` line, else CPU 0: never the replaying host's).
   *  It matters to a device with no node, whose pages come from the CPU's
   *  node (docs/semantics.md A3, A7). For TraceOp::cpu: the CPU the line states. */
  int cpu = -1;
};

/** The largest CPU id a trace may name (the topology's cpulist bound). */
inline constexpr int kMaxCpu = 1 << 20;

/** Parses one line (without its newline). line_no is used in messages. */
Result<TraceLine> parse_trace_line(std::string_view line, std::size_t line_no);

}  // namespace numacma::trace
