// src/pool/areas.cpp — see areas.hpp.
#include "pool/areas.hpp"

#include <algorithm>

namespace numacma::detail {

AreaSlot::AreaSlot(core::Area a, config::AreaKind k, backing::Reservation r)
    : area(std::move(a)), kind(k), res(std::move(r)) {
  handles.resize(area.config().pages >> area.config().order_per_bit);
}

void AreaTable::size_nodes(int max_node) {
  const std::size_t n = static_cast<std::size_t>(std::max(max_node, 0)) + 1;
  pernuma_.assign(n, -1);
  numa_.assign(n, -1);
}

AreaSlot& AreaTable::add(std::unique_ptr<AreaSlot> slot) {
  const int idx = static_cast<int>(slots_.size());
  const int node = slot->area.node();
  const auto put = [&](std::vector<int>& v) {
    if (node >= 0 && static_cast<std::size_t>(node) < v.size()) v[static_cast<std::size_t>(node)] = idx;
  };
  switch (slot->kind) {
    case config::AreaKind::default_area: default_ = idx; break;
    case config::AreaKind::pernuma: put(pernuma_); break;
    case config::AreaKind::numa: put(numa_); break;
    case config::AreaKind::device: device_[slot->area.name()] = idx; break;
  }
  slots_.push_back(std::move(slot));
  return *slots_.back();
}

void AreaTable::index_by_cpu() {
  by_cpu_.clear();
  for (std::size_t i = 0; i < slots_.size(); ++i) by_cpu_.push_back(static_cast<int>(i));
  std::sort(by_cpu_.begin(), by_cpu_.end(), [&](int a, int b) {
    return at(a).area.config().cpu_base < at(b).area.config().cpu_base;
  });
}

int AreaTable::device(const std::string& name) const {
  auto it = device_.find(name);
  return it == device_.end() ? -1 : it->second;
}

int AreaTable::by_cpu(std::uintptr_t cpu) const noexcept {
  // The candidate is the last slot starting at or below cpu.
  auto it = std::upper_bound(by_cpu_.begin(), by_cpu_.end(), cpu,
                             [&](std::uintptr_t c, int idx) { return c < at(idx).area.config().cpu_base; });
  if (it == by_cpu_.begin()) return -1;
  const int idx = *std::prev(it);
  return at(idx).area.contains_cpu(cpu) ? idx : -1;
}

}  // namespace numacma::detail
