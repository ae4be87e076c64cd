// src/pool/replay.hpp — runs a trace (src/pool/trace.hpp) through a real Pool.
//
//   trace line --parse_trace_line--> TraceLine --PoolImpl::alloc_buffer(cpu) / release-->
//   one JSON object per request (docs/design.md "replay output"), then stats_json().
//
// The engine holds the live buffers by trace id; buffers still live when the
// Replayer goes away are freed then (after the stats were taken). No I/O here:
// the CLI reads the file and prints what feed() returns.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"

namespace numacma::replay {

class Replayer {
 public:
  explicit Replayer(Pool& pool);

  /** One trace line (without newline). Returns the decision object, or a
   *  null json for blank and comment lines. A bad line yields
   *  {"op":"error","line":N,"ok":false,"error":...} and the replay goes on.
   *  A `cpu <N>` line yields {"op":"cpu","ok":true,"cpu":N}: from there on an
   *  alloc without cpu= is made on CPU N (before it, and without one, CPU 0);
   *  a second one, or one after a request, is an error line. */
  nlohmann::json feed(std::string_view line, std::size_t line_no);

  /** {"op":"stats","dma_mode":..,"areas":[...],"nodes":[...],"live":N,...} */
  nlohmann::json stats_json() const;

  std::size_t live() const noexcept { return live_.size(); }

 private:
  Pool& pool_;
  std::unordered_map<std::string, DmaBuffer> live_;
  std::unordered_map<std::string, std::string> device_area_;  // device name -> area
  int default_cpu_ = 0;         // the CPU of an alloc without cpu= (never the host's)
  std::size_t cpu_line_ = 0;    // the line of the trace's `cpu` line (0: none yet)
  std::size_t requests_ = 0;    // alloc and free lines seen
};

/** Stats of a pool as the JSON of the replay's stats line (also used by demo). */
nlohmann::json stats_to_json(const Pool& pool);

}  // namespace numacma::replay
