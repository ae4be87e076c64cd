// What the numacma-vmcheck sources (tests/vm/guest/*.cpp) share: failure
// reporting, the independent witnesses (move_pages(2) for the node of a page,
// /proc/self/pagemap for its physical address, QEMU's edu device writing
// through a DMA address), helpers over the library, and the checks, each
// defined in the file of its concern:
//   numa_checks.cpp      topo-match placement contiguity dma mask exhaust nohuge cmdq
//   shared_checks.cpp    shared
//   dmapool_checks.cpp   dmapool
//   vfio_checks.cpp, vfio_errors.cpp   vfio-*
// and the check table in vmcheck.cpp (main).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "numacma/numacma.hpp"

namespace vmcheck {

inline constexpr std::size_t kPage = 4096;
/** FAIL lines printed so far (a check that returns 0 with failures fails). */
extern int g_failures;

void fail(const std::string& msg);
void info(const std::string& msg);
std::string hex(std::uint64_t v);

// ---- independent witnesses (witnesses.cpp) ---------------------------------------

/** Node of every 4 KiB page of [p, p+bytes), by move_pages(2) with no target. */
std::vector<int> page_nodes(const void* p, std::size_t bytes);
bool all_on_node(const numacma::DmaBuffer& b, int node, const std::string& what);
/** Physical address of the page holding p, from /proc/self/pagemap. */
std::uint64_t phys_of(const void* p);

/** QEMU's edu device, through its BAR (sysfs resource0). */
class Edu {
 public:
  bool open(const std::string& bdf);
  /** One DMA transfer of `count` bytes; to_ram: device buffer -> RAM at dma. */
  bool transfer(std::uint64_t dma, std::uint32_t count, bool to_ram);

 private:
  std::uint32_t r32(std::size_t o) { return *reinterpret_cast<volatile std::uint32_t*>(bar_ + o); }
  void w32(std::size_t o, std::uint32_t v) { *reinterpret_cast<volatile std::uint32_t*>(bar_ + o) = v; }
  std::uint64_t r64(std::size_t o) { return *reinterpret_cast<volatile std::uint64_t*>(bar_ + o); }
  void w64(std::size_t o, std::uint64_t v) { *reinterpret_cast<volatile std::uint64_t*>(bar_ + o) = v; }
  int fd_ = -1;
  volatile std::uint8_t* bar_ = nullptr;
};

/** Makes the device write a pattern into page `page` of `dst` (via `src`). */
bool dma_page(Edu& edu, const numacma::DmaBuffer& src, const numacma::DmaBuffer& dst, std::size_t page,
              unsigned seed);

// ---- helpers over the library (witnesses.cpp) -------------------------------------

/** The pool, or exit 1 with a FAIL line. */
numacma::Pool make_pool(const std::string& params, const std::string& backing,
                        numacma::Policy policy = numacma::Policy::kernel);
const numacma::AreaReport* area(const numacma::Stats& st, const std::string& name);
/** F3: after every buffer is freed, nothing is used and every page that was
 *  allocated was released. */
bool f3_holds(const numacma::Pool& pool);
std::vector<int> memory_nodes();
std::uint64_t free_hugepages(int node);
/** Opens the edu device at `bdf` and makes its Device on `pool`. */
std::optional<numacma::Device> edu_device(Edu& edu, const std::string& bdf, std::uint64_t mask,
                                          const numacma::Pool& pool);

// ---- the checks: 0 pass, 77 skip, else fail ---------------------------------------

int check_topo(const std::string& got_path, const std::string& want_path);
int check_placement(const std::string& backing);
int check_contiguity(int node);
int check_dma(const std::string& bdf, std::uint64_t mask);
int check_mask(const std::string& bdf, std::uint64_t mask);
int check_exhaust(int node, const std::string& policy, const std::string& order_csv);
int check_nohuge(int node);
int check_cmdq(const std::string& path, int driver_node, int device_node, const std::string& order_csv);
int check_shared(const std::vector<std::string>& a);
int check_dmapool(const std::vector<std::string>& edus);
/** Runs a vfio-* check (vfio_checks.cpp); -1 when `a[0]` is not one. */
int run_vfio_check(const std::vector<std::string>& a);

}  // namespace vmcheck
