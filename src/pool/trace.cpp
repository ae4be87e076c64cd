// src/pool/trace.cpp — one line of a replay trace into a TraceLine.
//
//   "cpu 3"   the CPU of the alloc lines that name none (else CPU 0)
//   "alloc q0 2 64K dma_mask=0xffffffff device=nvme0 cpu=5   # comment"
//    |     |  | |   '------------ options, any order, each once -'
//    |     |  | '-- size: parse_size (memparse: K/M/G/T/P/E, 0x hex, 0 octal)
//    |     |  '---- node: -1 or 0..1023
//    |     '------- id: any token without whitespace ('#' starts a comment)
//    '------------- op: alloc | free
//
// Everything after '#' is dropped first, then the rest is split on
// whitespace. Errors read "line N: <op>: <what> '<token>' ..." so a replay can
// print them and go on with the next line.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/params.hpp"
#include "pool/trace.hpp"

namespace numacma::trace {
namespace {

constexpr int kMaxNode = 1023;

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/** "-1" or a decimal 0..1023; nullopt-like -2 on error. */
int parse_node(std::string_view t) noexcept {
  if (t == "-1") return -1;
  if (t.empty()) return -2;
  int v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return -2;
    v = v * 10 + (c - '0');
    if (v > kMaxNode) return -2;
  }
  return v;
}

/** cpu=<N>: decimal 0..kMaxCpu. Returns "" on success, else why. */
std::string parse_cpu(std::string_view t, int& out) {
  if (t.empty()) return "is empty";
  int v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return "must be a decimal number";
    v = v * 10 + (c - '0');
    if (v > kMaxCpu) return "is out of range 0.." + std::to_string(kMaxCpu);
  }
  out = v;
  return "";
}

/** "0x<hex>", non-zero, at most 64 bits. Returns "" on success, else why. */
std::string parse_mask(std::string_view t, std::uint64_t& out) {
  if (t.size() < 3 || t[0] != '0' || (t[1] != 'x' && t[1] != 'X'))
    return "must be 0x<hex>";
  std::uint64_t v = 0;
  for (std::size_t i = 2; i < t.size(); ++i) {
    const int d = hex_digit(t[i]);
    if (d < 0) return "has a non-hex digit '" + std::string(1, t[i]) + "'";
    if (v >> 60) return "does not fit in 64 bits";
    v = (v << 4) | static_cast<unsigned>(d);
  }
  if (v == 0) return "must not be 0";
  out = v;
  return "";
}

}  // namespace

Result<TraceLine> parse_trace_line(std::string_view line, std::size_t line_no) {
  const std::string where = "line " + std::to_string(line_no) + ": ";
  auto fail = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, where + why);
  };
  if (const std::size_t hash = line.find('#'); hash != std::string_view::npos)
    line = line.substr(0, hash);
  const auto tok = split(line);
  TraceLine out;
  if (tok.empty()) return out;  // blank or comment: TraceOp::none

  if (tok[0] == "free") {
    if (tok.size() < 2) return fail("free: missing <id>");
    if (tok.size() > 2) return fail("free: unexpected token '" + std::string(tok[2]) + "'");
    out.op = TraceOp::free;
    out.id = std::string(tok[1]);
    return out;
  }
  if (tok[0] == "cpu") {
    if (tok.size() < 2) return fail("cpu: missing <N> (cpu <N>: the CPU of the alloc lines without cpu=)");
    if (tok.size() > 2) return fail("cpu: unexpected token '" + std::string(tok[2]) + "'");
    const std::string why = parse_cpu(tok[1], out.cpu);
    if (!why.empty()) return fail("cpu: '" + std::string(tok[1]) + "' " + why);
    out.op = TraceOp::cpu;
    return out;
  }
  if (tok[0] != "alloc")
    return fail("unknown op '" + std::string(tok[0]) + "' (expected alloc, free or cpu)");

  static constexpr const char* kFields[] = {"<id>", "<node|-1>", "<size>"};
  if (tok.size() < 4)
    return fail(std::string("alloc: missing ") + kFields[tok.size() - 1] +
                " (alloc <id> <node|-1> <size> [dma_mask=0x<hex>] [device=<name>] [cpu=<N>])");
  out.op = TraceOp::alloc;
  out.id = std::string(tok[1]);
  out.node = parse_node(tok[2]);
  if (out.node == -2)
    return fail("alloc: node '" + std::string(tok[2]) + "' must be -1 or 0.." +
                std::to_string(kMaxNode));
  auto size = config::parse_size(tok[3]);
  if (!size) return fail("alloc: " + size.error().message);
  out.size = *size;

  bool have_mask = false, have_device = false, have_cpu = false;
  for (std::size_t i = 4; i < tok.size(); ++i) {
    const std::string_view t = tok[i];
    if (t.starts_with("dma_mask=")) {
      if (have_mask) return fail("alloc: dma_mask given twice ('" + std::string(t) + "')");
      have_mask = true;
      const std::string why = parse_mask(t.substr(9), out.dma_mask);
      if (!why.empty()) return fail("alloc: '" + std::string(t) + "': dma_mask " + why);
    } else if (t.starts_with("device=")) {
      if (have_device) return fail("alloc: device given twice ('" + std::string(t) + "')");
      have_device = true;
      if (t.size() == 7) return fail("alloc: '" + std::string(t) + "': empty device name");
      out.device = std::string(t.substr(7));
    } else if (t.starts_with("cpu=")) {
      if (have_cpu) return fail("alloc: cpu given twice ('" + std::string(t) + "')");
      have_cpu = true;
      const std::string why = parse_cpu(t.substr(4), out.cpu);
      if (!why.empty()) return fail("alloc: '" + std::string(t) + "': cpu " + why);
    } else {
      return fail("alloc: unexpected token '" + std::string(t) +
                  "' (options: dma_mask=0x<hex>, device=<name>, cpu=<N>)");
    }
  }
  return out;
}

}  // namespace numacma::trace
