// tests/fuzz/trace_fuzz.cpp — the replay trace reader on any bytes, one line
// at a time as replay feeds it. Every answer must be a TraceLine that keeps the
// format's promises or an error that starts "line N: ".
#include <cstdint>
#include <string>
#include <string_view>

#include "pool/trace.hpp"

namespace {

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) __builtin_trap(); \
  } while (0)

bool has_space(const std::string& s) {
  return s.find_first_of(" \t\n\r\v\f") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace numacma::trace;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t line_no = 1;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    auto r = parse_trace_line(line, line_no);
    if (!r.ok()) {
      FUZZ_CHECK(r.error().code == numacma::Errc::invalid_argument);
      FUZZ_CHECK(r.error().message.rfind("line " + std::to_string(line_no) + ": ", 0) == 0);
    } else if (r->op == TraceOp::none) {
      FUZZ_CHECK(r->id.empty());
    } else if (r->op == TraceOp::cpu) {  // `cpu <N>`: a CPU, no id
      FUZZ_CHECK(r->id.empty());
      FUZZ_CHECK(r->cpu >= 0 && r->cpu <= kMaxCpu);
    } else {
      FUZZ_CHECK(!r->id.empty() && !has_space(r->id) && r->id.find('#') == std::string::npos);
      if (r->op == TraceOp::alloc) {
        FUZZ_CHECK(r->node >= -1 && r->node <= 1023);
        FUZZ_CHECK(r->dma_mask != 0);
        FUZZ_CHECK(!has_space(r->device));
        FUZZ_CHECK(r->cpu >= -1 && r->cpu <= kMaxCpu);
      }
    }
    pos = nl + 1;
    ++line_no;
  }
  return 0;
}
