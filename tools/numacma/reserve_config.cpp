// tools/numacma/reserve_config.cpp — see reserve_config.hpp.
#include "reserve_config.hpp"

#include <algorithm>
#include <map>

#include "config/params.hpp"
#include "pool_args.hpp"

namespace numacma::cli {
namespace {

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

/** A group as getgrnam takes it ([A-Za-z0-9_.-], not starting with '-',
 *  at most 32 characters) or a group number. */
bool valid_group(std::string_view g) {
  if (g.empty() || g.size() > 32 || g.front() == '-') return false;
  return std::all_of(g.begin(), g.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

Result<bool> parse_bool(std::string_view v) {
  for (const char* t : {"yes", "true", "on", "1"})
    if (v == t) return true;
  for (const char* f : {"no", "false", "off", "0"})
    if (v == f) return false;
  return make_error(Errc::invalid_argument, "expected yes or no (true/false, on/off, 1/0)");
}

/** One KEY=VALUE into cfg; the error message without its line number. */
Status apply(ReserveConfig& cfg, std::string_view key, std::string_view value) {
  ReserveOptions& o = cfg.options;
  const std::string v(value);
  if (key == "params") {
    Result<config::Params> p = config::parse_params(v);
    if (!p) return p.error();
    o.params = v;
  } else if (key == "backing") {
    static const char* const kBackings[] = {"auto", "hugetlb", "hugetlb-1G", "anon", "sim"};
    if (std::find(std::begin(kBackings), std::end(kBackings), value) == std::end(kBackings))
      return make_error(Errc::invalid_argument,
                        "'" + v + "': expected auto, hugetlb, hugetlb-1G, anon or sim");
    o.backing = v;
  } else if (key == "group") {
    if (!valid_group(value))
      return make_error(Errc::invalid_argument,
                        "'" + v + "': not a group name ([A-Za-z0-9_.-], at most 32) or number");
    o.group = v;
  } else if (key == "policy") {
    if (value != "kernel" && value != "nearest")
      return make_error(Errc::invalid_argument, "'" + v + "': expected kernel or nearest");
    o.policy = value == "nearest" ? Policy::nearest : Policy::kernel;
  } else if (key == "order_per_bit") {
    if (value.size() != 1 || value[0] < '0' || value[0] > '9')
      return make_error(Errc::invalid_argument, "'" + v + "': expected 0 to 9");
    o.order_per_bit = static_cast<unsigned>(value[0] - '0');
  } else if (key == "compact") {
    Result<bool> b = parse_bool(value);
    if (!b) return make_error(Errc::invalid_argument, "'" + v + "': " + b.error().message);
    o.compact = *b;
  } else if (key == "kernel") {
    Result<config::KernelProfile> k = config::parse_kernel_profile(value);
    if (!k) return k.error();
    o.kernel = *k == config::KernelProfile::v7_2 ? Kernel::v7_2 : Kernel::v6_12;
  } else if (key == "cma_size_pernuma") {
    Result<bool> b = parse_bool(value);
    if (!b) return make_error(Errc::invalid_argument, "'" + v + "': " + b.error().message);
    o.cma_size_pernuma = *b;
  } else {  // device_area
    Result<DeviceAreaSpec> d = parse_device_area(value);
    if (!d) return d.error();
    o.device_areas.push_back(std::move(*d));
  }
  return {};
}

}  // namespace

const std::vector<std::string>& reserve_config_keys() {
  static const std::vector<std::string> kKeys = {"params", "backing", "group", "policy", "order_per_bit",
                                                 "compact", "kernel", "cma_size_pernuma", "device_area"};
  return kKeys;
}

Result<ReserveConfig> parse_reserve_config(std::string_view text) {
  ReserveConfig cfg;
  std::map<std::string, int, std::less<>> seen;  // key (device: "device_area:NAME") -> line
  int line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    const std::string at = "line " + std::to_string(line_no) + ": ";
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;

    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      return make_error(Errc::invalid_argument, at + "expected KEY=VALUE, got '" + std::string(line) + "'");
    const std::string key(trim(line.substr(0, eq)));
    if (key.empty() || key.find_first_of(" \t") != std::string::npos)
      return make_error(Errc::invalid_argument, at + "expected KEY=VALUE, got '" + std::string(line) + "'");
    const std::string_view value = trim(line.substr(eq + 1));
    const auto& keys = reserve_config_keys();
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string known;
      for (const std::string& k : keys) known += (known.empty() ? "" : ", ") + k;
      return make_error(Errc::invalid_argument, at + "unknown key '" + key + "' (keys: " + known + ")");
    }
    if (value.empty()) return make_error(Errc::invalid_argument, at + key + "= needs a value");
    if (key != "device_area") {
      if (auto [it, fresh] = seen.try_emplace(key, line_no); !fresh)
        return make_error(Errc::invalid_argument,
                          at + key + " already set on line " + std::to_string(it->second));
    }
    if (Status s = apply(cfg, key, value); !s)
      return make_error(Errc::invalid_argument, at + key + ": " + s.error().message);
    if (key == "device_area") {
      const std::string& name = cfg.options.device_areas.back().device;
      if (auto [it, fresh] = seen.try_emplace("device_area:" + name, line_no); !fresh)
        return make_error(Errc::invalid_argument, at + "device area '" + name +
                                                      "' already declared on line " +
                                                      std::to_string(it->second));
    }
    cfg.keys.push_back(key);
  }
  return cfg;
}

}  // namespace numacma::cli
