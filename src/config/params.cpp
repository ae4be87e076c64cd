// src/config/params.cpp — the syntax of the kernel-style CMA parameters.
//
//   text   = token { whitespace token }
//   token  = "cma=" size
//          | "cma_pernuma=" size
//          | "numa_cma=" node ":" size { "," node ":" size }
//   size   = memparse: (decimal | 0x hex | 0 octal) [K|M|G|T|P|E]
//   node   = decimal 0..1023
//
// Only syntax lives here (no topology); make_plan() in plan.cpp places the
// result. Every error is Errc::invalid_argument and quotes the whole bad
// token first, then what is wrong inside it, so that a user pasting a long
// kernel command line can see at once which piece was refused.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "config/params.hpp"

namespace numacma::config {
namespace {

constexpr int kMaxNumNodes = 1024;  // the kernel's MAX_NUMNODES upper bound

int digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}


Error bad_token(std::string_view token, const std::string& why) {
  return make_error(Errc::invalid_argument, "'" + std::string(token) + "': " + why);
}

/** "<node>" of numa_cma=: plain decimal, 0..1023. */
Result<int> parse_node(std::string_view text) {
  if (text.empty()) return make_error(Errc::invalid_argument, "missing node before ':'");
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return make_error(Errc::invalid_argument,
                        "node '" + std::string(text) + "' is not a decimal number");
    v = v * 10 + (c - '0');
    if (v >= kMaxNumNodes)
      return make_error(Errc::invalid_argument, "node '" + std::string(text) +
                                                    "' is out of range 0.." +
                                                    std::to_string(kMaxNumNodes - 1));
  }
  return v;
}

/** numa_cma=<node>:<size>[,<node>:<size>...] into params.numa_cma. */
Status parse_numa_cma(std::string_view token, std::string_view value, Params& params) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = value.find(',', pos);
    const std::string_view entry =
        value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (entry.empty())
      return bad_token(token, comma == std::string_view::npos && pos > 0
                                  ? "empty entry after the last ','"
                                  : "empty entry (expected <node>:<size>)");
    const std::size_t colon = entry.find(':');
    if (colon == std::string_view::npos)
      return bad_token(token, "entry '" + std::string(entry) + "' is not <node>:<size>");
    auto node = parse_node(entry.substr(0, colon));
    if (!node) return bad_token(token, node.error().message);
    const std::string_view size_text = entry.substr(colon + 1);
    if (size_text.empty())
      return bad_token(token, "entry '" + std::string(entry) + "': missing size after ':'");
    auto size = parse_size(size_text);
    if (!size) return bad_token(token, size.error().message);
    // The kernel's early_numa_cma stores numa_cma_size[nid] = size: a node
    // given again takes the later size. It keeps the place of its first
    // entry, so the plan's order of numa areas (one per node) is unchanged.
    bool seen = false;
    for (auto& [n, bytes] : params.numa_cma) {
      if (n != *node) continue;
      params.notes.push_back("numa_cma: node " + std::to_string(n) + " given twice: " +
                             fmt_size(bytes) + " overridden by " + fmt_size(*size) +
                             ", as the kernel does");
      bytes = *size;
      seen = true;
      break;
    }
    if (!seen) params.numa_cma.emplace_back(*node, *size);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return {};
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
  auto fail = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, "size '" + std::string(text) + "': " + why);
  };
  if (text.empty()) return fail("empty");

  // simple_strtoull with base 0: "0x" + hex digit -> hex, a leading 0 ->
  // octal (the 0 itself is an octal digit), else decimal.
  unsigned base = 10;
  std::size_t i = 0;
  if (text[0] == '0') {
    if (text.size() >= 2 && (text[1] == 'x' || text[1] == 'X')) {
      if (text.size() < 3 || digit_value(text[2]) < 0)
        return fail("'0x' is not followed by a hex digit");
      base = 16;
      i = 2;
    } else {
      base = 8;
    }
  }
  const std::size_t first_digit = i;
  std::uint64_t v = 0;
  for (; i < text.size(); ++i) {
    const int d = digit_value(text[i]);
    if (d < 0 || static_cast<unsigned>(d) >= base) break;
    // The kernel wraps silently here; a wrapped size would reserve a
    // surprising amount, so it is refused.
    if (v > (std::numeric_limits<std::uint64_t>::max() - static_cast<unsigned>(d)) / base)
      return fail("does not fit in 64 bits");
    v = v * base + static_cast<unsigned>(d);
  }
  if (i == first_digit) return fail("no digits");
  if (i == text.size()) return v;

  // memparse's suffix: one letter, each step a shift by 10.
  const char s = text[i];
  unsigned shift = 0;
  switch (s) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    case 'P': case 'p': shift = 50; break;
    case 'E': case 'e': shift = 60; break;
    default:
      if (base == 8 && (s == '8' || s == '9'))
        return fail("digit '" + std::string(1, s) + "' in an octal number (a leading 0 means octal)");
      return fail("unknown suffix '" + std::string(text.substr(i)) + "'");
  }
  if (i + 1 != text.size())
    return fail("unexpected '" + std::string(text.substr(i + 1)) + "' after the suffix '" +
                std::string(1, s) + "'");
  if (v > (std::numeric_limits<std::uint64_t>::max() >> shift))
    return fail("does not fit in 64 bits");
  return v << shift;
}

Result<Params> parse_params(std::string_view text) {
  Params params;
  std::string first_cma, first_pernuma, first_numa;  // the token that set each key
  std::size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && is_space(text[pos])) ++pos;
    std::size_t end = pos;
    while (end < text.size() && !is_space(text[end])) ++end;
    if (end == pos) break;
    const std::string_view token = text.substr(pos, end - pos);
    pos = end;

    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos)
      return bad_token(token, "expected key=value (cma=, cma_pernuma= or numa_cma=)");
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);

    std::string* first = nullptr;
    if (key == "cma") first = &first_cma;
    else if (key == "cma_pernuma") first = &first_pernuma;
    else if (key == "numa_cma") first = &first_numa;
    else
      return bad_token(token, "unknown key '" + std::string(key) +
                                  "' (known: cma, cma_pernuma, numa_cma)");
    if (!first->empty())
      return bad_token(token, "duplicate key '" + std::string(key) + "' (first given as '" +
                                  *first + "')");
    *first = std::string(token);
    if (value.empty()) return bad_token(token, "empty value");

    if (key == "numa_cma") {
      if (auto st = parse_numa_cma(token, value, params); !st) return std::move(st).error();
      continue;
    }
    if (key == "cma" && value.find('@') != std::string_view::npos)
      return bad_token(token,
                       "'@<base>' is not supported: a physical base cannot be chosen from user "
                       "space (give only the size)");
    auto size = parse_size(value);
    if (!size) return bad_token(token, size.error().message);
    (key == "cma" ? params.cma_bytes : params.pernuma_bytes) = *size;
  }
  return params;
}

Result<KernelProfile> parse_kernel_profile(std::string_view text) {
  if (text == "6.12") return KernelProfile::v6_12;
  if (text == "7.2") return KernelProfile::v7_2;
  return make_error(Errc::invalid_argument,
                    "kernel profile '" + std::string(text) + "': expected 6.12 or 7.2");
}

const char* kernel_profile_name(KernelProfile k) noexcept {
  return k == KernelProfile::v7_2 ? "7.2" : "6.12";
}

const char* area_kind_name(AreaKind k) noexcept {
  switch (k) {
    case AreaKind::default_area: return "default";
    case AreaKind::pernuma: return "pernuma";
    case AreaKind::numa: return "numa";
    case AreaKind::device: return "device";
  }
  return "unknown";
}

std::string fmt_size(std::uint64_t b) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (u < 6 && b >= 1024 && b % 1024 == 0) {
    b /= 1024;
    ++u;
  }
  return std::to_string(b) + " " + units[u];
}

}  // namespace numacma::config
