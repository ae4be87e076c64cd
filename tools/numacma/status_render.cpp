// tools/numacma/status_render.cpp — the JSON, text and Prometheus outputs of
// `numacma status` (status_render.hpp); the SVG is in status_svg.cpp.
#include "status_render.hpp"

#include <cstdio>
#include <map>
#include <utility>

#include "cli_util.hpp"

namespace numacma::cli {
namespace {

using ojson = nlohmann::ordered_json;

/** -1 (unreadable) -> null. */
ojson or_null(std::int64_t v) { return v < 0 ? ojson(nullptr) : ojson(v); }
std::string or_dash(std::int64_t v) { return v < 0 ? "-" : std::to_string(v); }

std::uint64_t pages_total(const HolderStatus& h) {
  std::uint64_t n = 0;
  for (const auto& [area, pages] : h.pages) n += pages;
  return n;
}

std::string octal_mode(std::uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows no control characters but tab and newline.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n')
          out += '?';
        else
          out += c;
    }
  }
  return out;
}

std::string prom_label_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// ---- JSON ---------------------------------------------------------------

nlohmann::ordered_json status_json(const PoolStatus& st) {
  ojson areas = ojson::array(), holders = ojson::array(), nodes = ojson::array();
  for (const SharedAreaStatus& s : st.areas) {
    const AreaReport& a = s.area;
    ojson o;
    o["name"] = a.name;
    o["node"] = a.node;
    o["pages"] = a.pages;
    o["used"] = a.used;
    o["maxchunk"] = a.maxchunk;
    o["segments"] = a.segments;
    o["alloc_pages_success"] = a.alloc_pages_success;
    o["alloc_pages_fail"] = a.alloc_pages_fail;
    o["release_pages_success"] = a.release_pages_success;
    o["total_pages"] = a.total_pages();
    o["available_pages"] = a.available_pages();
    o["kind"] = a.kind;
    o["backing"] = a.backing;
    o["bytes"] = a.pages * 4096;
    o["longest_segment"] = s.longest_segment;
    o["recoveries"] = s.recoveries;
    o["reaped_pages"] = s.reaped_pages;
    areas.push_back(std::move(o));
  }
  for (const HolderStatus& h : st.holders) {
    ojson pages = ojson::object();
    for (const auto& [area, n] : h.pages) pages[area] = n;
    ojson o;
    o["pid"] = h.pid;
    o["comm"] = h.comm;
    o["alive"] = h.alive;
    o["pages"] = std::move(pages);
    o["pages_total"] = pages_total(h);
    o["buffers"] = h.buffers;
    o["start_time"] = h.start_time;
    holders.push_back(std::move(o));
  }
  for (const SharedNodeStatus& n : st.nodes) {
    const NodeReport& r = n.alloc;
    ojson o;
    o["node"] = r.node;
    o["local"] = r.local;
    o["fallback"] = r.other_node + r.default_area;
    o["pages"] = r.pages;
    o["other_node"] = r.other_node;
    o["default"] = r.default_area;
    o["failed"] = r.failed;
    o["numastat"] = ojson{{"numa_hit", or_null(n.numa_hit)},
                          {"numa_miss", or_null(n.numa_miss)},
                          {"numa_foreign", or_null(n.numa_foreign)},
                          {"local_node", or_null(n.local_node)},
                          {"other_node", or_null(n.other_node)}};
    o["hugepages_total"] = or_null(n.hugepages_total);
    o["hugepages_free"] = or_null(n.hugepages_free);
    nodes.push_back(std::move(o));
  }
  ojson j;
  j["pool"] = st.name;
  j["areas"] = std::move(areas);
  j["holders"] = std::move(holders);
  j["nodes"] = std::move(nodes);
  j["dir"] = st.dir;
  j["params"] = st.params;
  j["backing"] = st.backing;
  j["policy"] = st.policy;
  j["uid"] = st.uid;
  j["gid"] = st.gid;
  j["mode"] = octal_mode(st.mode);
  j["sysfs_root"] = st.sysfs_root;  // the tree the reservation was made over
  return j;
}

// ---- text ---------------------------------------------------------------

std::string status_text(const PoolStatus& st) {
  std::string out = "pool " + st.name + ": " + st.params + " (backing " + st.backing +
                    ", policy " + st.policy + ")\n";
  out += "state " + st.dir + " (uid " + std::to_string(st.uid) + ", gid " + std::to_string(st.gid) +
         ", mode " + octal_mode(st.mode) + ")\n\nareas\n";
  // Amounts of memory as sizes (the page counts are in --json).
  Table areas({"area", "kind", "node", "backing", "size", "used", "maxchunk", "segs", "longest_seg",
               "alloc_ok", "alloc_fail", "released", "recoveries", "reaped"});
  for (const SharedAreaStatus& s : st.areas) {
    const AreaReport& a = s.area;
    areas.add({a.name, a.kind, std::to_string(a.node), a.backing, human_pages(a.pages), human_pages(a.used),
               human_pages(a.maxchunk), std::to_string(a.segments), human_pages(s.longest_segment),
               human_pages(a.alloc_pages_success), human_pages(a.alloc_pages_fail),
               human_pages(a.release_pages_success), std::to_string(s.recoveries),
               human_pages(s.reaped_pages)});
  }
  out += areas.str();

  if (st.holders.empty()) {
    out += "\nholders: none\n";
  } else {
    out += "\nholders\n";
    Table holders({"pid", "comm", "alive", "buffers", "held", "per area"});
    for (const HolderStatus& h : st.holders) {
      std::string per;
      for (const auto& [area, n] : h.pages) per += (per.empty() ? "" : ", ") + area + " " + human_pages(n);
      holders.add({std::to_string(h.pid), h.comm.empty() ? "-" : h.comm, h.alive ? "yes" : "DEAD",
                   std::to_string(h.buffers), human_pages(pages_total(h)), per.empty() ? "-" : per});
    }
    out += holders.str();
  }

  out += "\nallocations per requesting node (fallback = other_node + default)\n";
  Table alloc({"node", "local", "fallback", "other_node", "default", "pages", "failed"});
  for (const SharedNodeStatus& n : st.nodes) {
    const NodeReport& r = n.alloc;
    alloc.add({std::to_string(r.node), std::to_string(r.local),
               std::to_string(r.other_node + r.default_area), std::to_string(r.other_node),
               std::to_string(r.default_area), std::to_string(r.pages), std::to_string(r.failed)});
  }
  out += alloc.str();

  out += "\nthe nodes now (numastat; 2M hugepages)\n";
  Table now({"node", "numa_hit", "numa_miss", "numa_foreign", "local_node", "other_node",
             "hugepages free/total"});
  for (const SharedNodeStatus& n : st.nodes) {
    if (n.alloc.node < 0) continue;  // kNoNode: requests without a node; no such node to read
    now.add({std::to_string(n.alloc.node), or_dash(n.numa_hit), or_dash(n.numa_miss),
             or_dash(n.numa_foreign), or_dash(n.local_node), or_dash(n.other_node),
             or_dash(n.hugepages_free) + "/" + or_dash(n.hugepages_total)});
  }
  out += now.str();
  return out;
}

// ---- Prometheus -----------------------------------------------------------

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

/** Families in first-use order; within one, samples in first-use order, and
 *  a label set given twice adds to the same sample (two dead holders that
 *  had the same pid are one series). */
class Exposition {
 public:
  void add(const char* name, const char* type, const char* help, const Labels& labels,
           std::int64_t value) {
    auto [it, fresh] = index_.try_emplace(name, families_.size());
    if (fresh) families_.push_back(Family{name, type, help, {}, {}});
    Family& f = families_[it->second];
    std::string key;
    for (const auto& [k, v] : labels) key += (key.empty() ? "" : ",") + k + "=\"" + prom_label_escape(v) + "\"";
    auto [s, added] = f.index.try_emplace(key, f.samples.size());
    if (added)
      f.samples.emplace_back(key, value);
    else
      f.samples[s->second].second += value;
  }

  std::string str() const {
    std::string out;
    for (const Family& f : families_) {
      out += "# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
      for (const auto& [labels, value] : f.samples)
        out += f.name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
    }
    return out;
  }

 private:
  struct Family {
    std::string name, type, help;
    std::vector<std::pair<std::string, std::int64_t>> samples;
    std::map<std::string, std::size_t> index;
  };
  std::vector<Family> families_;
  std::map<std::string, std::size_t> index_;
};

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

}  // namespace

std::string status_prometheus(const std::vector<PoolStatus>& pools, const std::vector<PoolFailure>& failed) {
  // Names per https://prometheus.io/docs/practices/naming/: amounts of memory
  // in bytes (the areas' 4 KiB pages converted), counters ending in _total,
  // capacity and current amounts in families of their own.
  constexpr std::uint64_t kPage = 4096;
  Exposition e;
  for (const PoolStatus& p : pools)
    e.add("numacma_pool_info", "gauge", "A shared pool reserved on this machine (always 1).",
          {{"pool", p.name}, {"params", p.params}, {"backing", p.backing}, {"policy", p.policy}}, 1);
  for (const PoolStatus& p : pools) {
    std::int64_t dead = 0;
    for (const HolderStatus& h : p.holders) dead += h.alive ? 0 : 1;
    e.add("numacma_pool_holders", "gauge", "Processes holding buffers of the pool.",
          {{"pool", p.name}}, i64(p.holders.size()));
    e.add("numacma_pool_dead_holders", "gauge",
          "Holders whose process has exited (numacma reap gives their memory back).",
          {{"pool", p.name}}, dead);
  }

  struct AreaMetric {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t (*get)(const SharedAreaStatus&);
    std::uint64_t scale;  ///< kPage: a page count exposed in bytes
  };
  static const AreaMetric kAreaMetrics[] = {
      {"numacma_area_size_bytes", "gauge", "Size of the area.",
       [](const SharedAreaStatus& s) { return s.area.pages; }, kPage},
      {"numacma_area_used_bytes", "gauge", "Memory of the area held by buffers.",
       [](const SharedAreaStatus& s) { return s.area.used; }, kPage},
      {"numacma_area_available_bytes", "gauge", "Memory of the area not held by buffers.",
       [](const SharedAreaStatus& s) { return s.area.available_pages(); }, kPage},
      {"numacma_area_maxchunk_bytes", "gauge", "Largest free run of the area.",
       [](const SharedAreaStatus& s) { return s.area.maxchunk; }, kPage},
      {"numacma_area_segments", "gauge", "Physically contiguous segments of the area.",
       [](const SharedAreaStatus& s) { return s.area.segments; }, 1},
      {"numacma_area_longest_segment_bytes", "gauge", "Longest physically contiguous segment of the area.",
       [](const SharedAreaStatus& s) { return s.longest_segment; }, kPage},
      {"numacma_area_allocated_bytes_total", "counter", "Memory allocated from the area.",
       [](const SharedAreaStatus& s) { return s.area.alloc_pages_success; }, kPage},
      {"numacma_area_alloc_failed_bytes_total", "counter", "Memory the area could not serve.",
       [](const SharedAreaStatus& s) { return s.area.alloc_pages_fail; }, kPage},
      {"numacma_area_released_bytes_total", "counter", "Memory freed back to the area.",
       [](const SharedAreaStatus& s) { return s.area.release_pages_success; }, kPage},
      {"numacma_area_recoveries_total", "counter", "Locks of the area found with their owner dead.",
       [](const SharedAreaStatus& s) { return s.recoveries; }, 1},
      {"numacma_area_reaped_bytes_total", "counter", "Memory given back from dead processes.",
       [](const SharedAreaStatus& s) { return s.reaped_pages; }, kPage},
  };
  for (const AreaMetric& m : kAreaMetrics)
    for (const PoolStatus& p : pools)
      for (const SharedAreaStatus& s : p.areas)
        e.add(m.name, m.type, m.help,
              {{"pool", p.name}, {"area", s.area.name}, {"node", std::to_string(s.area.node)}},
              i64(m.get(s) * m.scale));

  for (const PoolStatus& p : pools)
    for (const HolderStatus& h : p.holders)
      for (const auto& [area, n] : h.pages)
        e.add("numacma_holder_bytes", "gauge", "Memory a process holds in an area.",
              {{"pool", p.name}, {"area", area}, {"pid", std::to_string(h.pid)}, {"comm", h.comm},
               {"alive", h.alive ? "true" : "false"}},
              i64(n * kPage));
  for (const PoolStatus& p : pools)
    for (const HolderStatus& h : p.holders)
      e.add("numacma_holder_buffers", "gauge", "Buffers a process holds in the pool.",
            {{"pool", p.name}, {"pid", std::to_string(h.pid)}, {"comm", h.comm},
             {"alive", h.alive ? "true" : "false"}},
            i64(h.buffers));

  for (const PoolStatus& p : pools)
    for (const SharedNodeStatus& n : p.nodes) {
      const NodeReport& r = n.alloc;
      const std::pair<const char*, std::uint64_t> served[] = {
          {"local", r.local}, {"other_node", r.other_node}, {"default", r.default_area},
          {"pages", r.pages}, {"failed", r.failed}};
      for (const auto& [what, count] : served)
        e.add("numacma_node_allocs_total", "counter",
              "Allocations by the requesting device's node and where they were served (A9).",
              {{"pool", p.name}, {"node", std::to_string(r.node)}, {"served", what}}, i64(count));
    }

  // The machine's own counters: one series per node whatever the pools.
  std::map<int, const SharedNodeStatus*> machine;
  for (const PoolStatus& p : pools)
    for (const SharedNodeStatus& n : p.nodes)
      if (n.alloc.node >= 0) {
        // The first pool that could read the node's files speaks for it.
        auto [it, fresh] = machine.try_emplace(n.alloc.node, &n);
        if (!fresh && it->second->numa_hit < 0 && it->second->hugepages_total < 0) it->second = &n;
      }
  // numastat: the kernel's counts of page allocations (events, as
  // node_exporter's node_memory_numa_*_total), one family each: their sum
  // over a label would mean nothing (a hit is also a local_node).
  struct NumaStat {
    const char* name;
    const char* help;
    std::int64_t SharedNodeStatus::*field;
  };
  static const NumaStat kNumaStats[] = {
      {"numacma_node_numa_hit_total", "Pages allocated on the node as intended (numastat numa_hit).",
       &SharedNodeStatus::numa_hit},
      {"numacma_node_numa_miss_total", "Pages allocated on the node though intended elsewhere (numa_miss).",
       &SharedNodeStatus::numa_miss},
      {"numacma_node_numa_foreign_total", "Pages intended for the node but allocated elsewhere (numa_foreign).",
       &SharedNodeStatus::numa_foreign},
      {"numacma_node_local_node_total", "Pages allocated on the node by a process running on it (local_node).",
       &SharedNodeStatus::local_node},
      {"numacma_node_other_node_total", "Pages allocated on the node by a process running elsewhere (other_node).",
       &SharedNodeStatus::other_node},
  };
  for (const NumaStat& ns : kNumaStats)
    for (const auto& [node, n] : machine)
      if (n->*ns.field >= 0) e.add(ns.name, "counter", ns.help, {{"node", std::to_string(node)}}, n->*ns.field);
  constexpr std::int64_t k2M = 2 << 20;
  for (const auto& [node, n] : machine)
    if (n->hugepages_total >= 0)
      e.add("numacma_node_hugepages_bytes", "gauge", "Hugepages of the node now (nr_hugepages).",
            {{"node", std::to_string(node)}, {"page_bytes", std::to_string(k2M)}}, n->hugepages_total * k2M);
  for (const auto& [node, n] : machine)
    if (n->hugepages_free >= 0)
      e.add("numacma_node_hugepages_free_bytes", "gauge", "Free hugepages of the node now (free_hugepages).",
            {{"node", std::to_string(node)}, {"page_bytes", std::to_string(k2M)}}, n->hugepages_free * k2M);

  // A pool that could not be read is left out, and a comment says so (a
  // scraper ignores comments); `numacma status` exits 1 for it.
  const auto one_line = [](std::string t) {
    for (char& c : t)
      if (c == '\n' || c == '\r') c = ' ';
    return t;
  };
  std::string skipped;
  for (const PoolFailure& f : failed)
    skipped += "# numacma: pool " + one_line(f.name) + " skipped: " + one_line(f.message) + "\n";
  return skipped + e.str();
}

nlohmann::ordered_json status_error_json(const PoolFailure& f) {
  ojson j;
  j["pool"] = f.name;
  j["error"] = f.message;
  j["code"] = errc_name(f.code);
  return j;
}

std::string status_error_text(const PoolFailure& f) {
  return "pool " + f.name + ": CANNOT BE READ (" + errc_name(f.code) + "): " + f.message + "\n";
}

}  // namespace numacma::cli
