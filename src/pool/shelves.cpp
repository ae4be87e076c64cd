// src/pool/shelves.cpp — see shelves.hpp.
#include "pool/shelves.hpp"

namespace numacma::detail {

std::uint32_t PageShelf::store(backing::PagesBlock&& pb) {
  if (vacant.empty()) {
    slots.push_back(std::move(pb));
    owned.push_back(0);
    return static_cast<std::uint32_t>(slots.size() - 1);
  }
  const std::uint32_t s = vacant.back();
  vacant.pop_back();
  slots[s] = std::move(pb);
  owned[s] = 0;
  return s;
}

backing::PagesBlock PageShelf::take(std::uint32_t s) {
  backing::PagesBlock pb = std::move(slots[s]);
  owned[s] = 0;
  vacant.push_back(s);
  return pb;
}

}  // namespace numacma::detail
