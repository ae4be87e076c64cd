// src/pool/replay.cpp — the replay engine: trace lines in, decisions out.
// An alloc goes through the pool as Pool::alloc_coherent would, but on the
// trace's CPU (cpu=<N>, else the trace's `cpu` line, else CPU 0) rather than
// the one asking: a replay decides the same on every run and every host,
// whatever CPU the scheduler runs it on (a fixture's CPU numbers are not the
// host's). The live pool asks which CPU it runs on (Pool::alloc_coherent).
#include "pool/replay.hpp"

#include "pool/pool_impl.hpp"
#include "pool/trace.hpp"

namespace numacma::replay {

using nlohmann::json;

Replayer::Replayer(Pool& pool) : pool_(pool) {
  for (const DeviceAreaSpec& d : pool.device_areas()) device_area_[d.device] = d.device;
}

json Replayer::feed(std::string_view line, std::size_t line_no) {
  Result<trace::TraceLine> parsed = trace::parse_trace_line(line, line_no);
  if (!parsed)
    return json{{"op", "error"}, {"line", line_no}, {"ok", false}, {"error", parsed.error().message}};
  const trace::TraceLine& t = *parsed;
  auto failure = [&](const char* op, const Error& e) {
    return json{{"op", op}, {"id", t.id}, {"ok", false}, {"error", e.message}, {"code", errc_name(e.code)}};
  };
  switch (t.op) {
    case trace::TraceOp::none: return json();
    case trace::TraceOp::cpu: {
      const auto refuse = [&](const std::string& why) {
        return json{{"op", "error"}, {"line", line_no}, {"ok", false},
                    {"error", "line " + std::to_string(line_no) + ": cpu: " + why}};
      };
      if (cpu_line_ != 0)
        return refuse("the trace states its default CPU once (at line " + std::to_string(cpu_line_) + ")");
      if (requests_ != 0) return refuse("the default CPU must be stated before the first request");
      cpu_line_ = line_no;
      default_cpu_ = t.cpu;
      return json{{"op", "cpu"}, {"ok", true}, {"cpu", t.cpu}};
    }
    case trace::TraceOp::alloc: {
      ++requests_;
      if (live_.count(t.id) != 0)
        return failure("alloc", make_error(Errc::invalid_argument,
                                           "line " + std::to_string(line_no) + ": id '" + t.id +
                                               "' is already live"));
      Device dev = Device::on_node(t.node, t.device.empty() ? "trace" : t.device, t.dma_mask);
      if (auto it = device_area_.find(t.device); !t.device.empty() && it != device_area_.end())
        dev.area = it->second;
      // The CPU the request is made on (A3/A7 for a device with no node): the
      // line's cpu=<N>, else the trace's default. A CPU the topology does not
      // list is CPU 0's node's (PoolImpl::node_of_cpu).
      const int cpu = t.cpu >= 0 ? t.cpu : default_cpu_;
      Result<DmaBuffer> b = detail::impl_of(pool_)->alloc_buffer(dev, t.size, cpu);
      if (!b) return failure("alloc", b.error());
      json out{{"op", "alloc"},
               {"id", t.id},
               {"ok", true},
               {"area", b->area_name()},
               {"node", b->node()},
               {"dma_addr", detail::fmt_hex(b->dma_addr())},
               {"pages", b->pages()},
               {"fallback", b->fallback()},
               {"served", served_name(b->served())},
               {"iova", b->iova()}};
      live_.emplace(t.id, std::move(*b));
      return out;
    }
    case trace::TraceOp::free: {
      ++requests_;
      auto it = live_.find(t.id);
      if (it == live_.end())
        return failure("free", make_error(Errc::bad_free, "line " + std::to_string(line_no) +
                                                              ": no live buffer with id '" + t.id + "'"));
      const std::string area = it->second.area_name();
      Status s = pool_.free_coherent(std::move(it->second));
      live_.erase(it);
      if (!s) return failure("free", s.error());
      return json{{"op", "free"}, {"id", t.id}, {"ok", true}, {"area", area}};
    }
  }
  return json();
}

json stats_to_json(const Pool& pool) {
  const Stats st = pool.stats();
  json areas = json::array(), nodes = json::array();
  for (const AreaReport& a : st.areas) {
    areas.push_back({{"name", a.name},
                     {"kind", a.kind},
                     {"node", a.node},
                     {"backing", a.backing},
                     {"iova", a.iova},
                     {"base_dma", detail::fmt_hex(a.base_dma)},
                     {"pages", a.pages},
                     {"order_per_bit", a.order_per_bit},
                     {"used", a.used},
                     {"maxchunk", a.maxchunk},
                     {"segments", a.segments},
                     {"longest_segment", a.longest_segment},
                     {"alloc_pages_success", a.alloc_pages_success},
                     {"alloc_pages_fail", a.alloc_pages_fail},
                     {"release_pages_success", a.release_pages_success},
                     {"total_pages", a.total_pages()},
                     {"available_pages", a.available_pages()},
                     {"device_usable", a.device_usable}});
  }
  for (const NodeReport& n : st.nodes) {
    nodes.push_back({{"node", n.node},
                     {"local", n.local},
                     {"other_node", n.other_node},
                     {"default_area", n.default_area},
                     {"pages", n.pages},
                     {"failed", n.failed}});
  }
  json j{{"op", "stats"},
         {"dma_mode", pool.dma_mode()},
         {"address_kind", address_kind_name(st.address_kind)},
         {"device_usable", st.device_usable},
         {"areas", areas},
         {"nodes", nodes},
         {"pages_live", st.pages_live},
         {"bad_frees", st.bad_frees}};
  if (const VfioReport v = pool.vfio_report(); v.enabled) {  // vfio mode only
    j["iommu"] = v.iommu;
    if (v.unsafe) j["unsafe"] = true;  // no-IOMMU mode
  }
  return j;
}

json Replayer::stats_json() const {
  json j = stats_to_json(pool_);
  j["live"] = live_.size();
  return j;
}

}  // namespace numacma::replay
