// src/backing/sim.hpp — factories of the backing kinds (private to src/backing).
#pragma once

#include <memory>

#include "backing/backing.hpp"

namespace numacma::backing {

std::unique_ptr<Backing> make_sim(const topo::Topology& t, const SimOptions& o);
/** anon, hugetlb (2 MiB pages; 1 GiB pages when `gigantic`), and auto. */
std::unique_ptr<Backing> make_anon(const topo::Topology& t);
std::unique_ptr<Backing> make_hugetlb(const topo::Topology& t, bool gigantic, const BackingOptions& o);
std::unique_ptr<Backing> make_auto(const topo::Topology& t, const BackingOptions& o);

}  // namespace numacma::backing
