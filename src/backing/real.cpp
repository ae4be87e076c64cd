// src/backing/real.cpp — the backings over real memory: anon, hugetlb, auto.
//
//   anon     mmap 4K pages -> mbind strict -> populate -> mlock -> verify node
//            one IOVA segment (IOVA = VA): contiguous only per 4 KiB page
//   hugetlb  [compact the node] -> check free hugepages on the node (fresh from sysfs)
//            -> hugetlbfs memfd -> populate_sorted (mbind strict, populate, verify
//            node, pagemap, map the pages in ascending physical order, mlock)
//            -> close the memfd -> segments = runs of adjacent hugepages
//   auto     hugetlb where the node has enough free hugepages, else anon; says why
//
// Memory that did not land on the node asked for is an error (STYLE 5:
// binding is strict), never a silent fallback.
#include <mutex>

#include "backing/hugetlb_file.hpp"
#include "core/limits.hpp"
#include "backing/sim.hpp"
#include "os/os.hpp"
#include "topology/topology.hpp"

namespace numacma::backing {

namespace {

using core::kPageBytes;
constexpr std::uint64_t k2M = 2ULL << 20, k1G = 1ULL << 30;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::string size_name(std::uint64_t hp) { return hp == k1G ? "1G" : "2M"; }

/** Free hugepages of that size on the node, read now (the topology's copy is stale). */
std::uint64_t free_hugepages_now(const std::string& root, int node, std::uint64_t hp) {
  const std::string path = root + "/devices/system/node/node" + std::to_string(node) +
                           "/hugepages/hugepages-" + std::to_string(hp >> 10) + "kB/free_hugepages";
  Result<std::string> t = os::read_file(path);
  if (!t) return 0;
  Result<std::uint64_t> v = topo::parse_u64(*t);
  return v ? *v : 0;
}

/** Map, bind, populate, lock (unless the IOMMU pins it) and verify; unmaps on any failure. */
Result<void*> map_on_node(std::uint64_t bytes, std::uint64_t hp, int node, bool mlock) {
  // 4 KiB pages: the address 2 MiB aligned, so that an anon area's IOVAs
  // (= its virtual addresses) are aligned as a CMA area's are (A6).
  Result<void*> m = hp == kPageBytes ? os::map_anonymous_aligned(bytes, bytes >= k2M ? k2M : kPageBytes)
                                     : os::map_hugetlb(bytes, hp);
  if (!m) return m;
  auto undo = [&](Error e) -> Result<void*> {
    (void)os::unmap(*m, bytes);
    return e;
  };
  if (node >= 0) {
    if (Status s = os::bind_to_node(*m, bytes, node); !s) return undo(std::move(s).error());
  }
  if (Status s = os::populate(*m, bytes, hp); !s) return undo(std::move(s).error());
  if (mlock) {
    if (Status s = os::lock(*m, bytes); !s) return undo(std::move(s).error());
  }
  if (node >= 0) {
    if (Status s = verify_node(*m, bytes, hp, node); !s) {
      (void)os::unlock(*m, bytes);
      return undo(std::move(s).error());
    }
  }
  return m;
}

void unmap_locked(std::uintptr_t cpu, std::uint64_t bytes) noexcept {
  (void)os::unlock(reinterpret_cast<void*>(cpu), bytes);
  (void)os::unmap(reinterpret_cast<void*>(cpu), bytes);
}

class AnonBacking : public Backing {
 public:
  std::string name() const override { return "anon"; }

  Result<Reservation> reserve(int node, std::uint64_t bytes) override {
    Result<void*> m = map_on_node(bytes, kPageBytes, node, mlock_);
    if (!m) return std::move(m).error();
    Reservation r;
    r.kind = "anon";
    r.node = node;
    r.cpu_base = reinterpret_cast<std::uintptr_t>(*m);
    r.bytes = r.mapped_bytes = bytes;
    r.addr_kind = AddrKind::iova;
    r.segments = {{0, bytes / kPageBytes, r.cpu_base}};
    r.note = "anon: physically contiguous only per 4 KiB page: multi-page DMA addresses are IOVAs "
             "(IOVA mode only)";
    return r;
  }

  void release(const Reservation& r) noexcept override { unmap_locked(r.cpu_base, r.mapped_bytes); }

  Result<PagesBlock> alloc_pages(int node, std::uint64_t bytes, bool need_physical,
                                 std::uint64_t /*below: no zones here*/) override {
    bytes = round_up(bytes, kPageBytes);
    if (bytes > kPageBytes && need_physical)
      return make_error(Errc::not_contiguous,
                        "pages: " + std::to_string(bytes / kPageBytes) +
                            " pages of 4 KiB cannot be made physically contiguous from user space "
                            "(use IOVA mode, or hugepages)");
    Result<void*> m = map_on_node(bytes, kPageBytes, node, mlock_);
    if (!m) return std::move(m).error();
    PagesBlock b;
    b.kind = "pages-4K";
    b.cpu = reinterpret_cast<std::uintptr_t>(*m);
    b.bytes = b.mapped_bytes = bytes;
    b.node = node;
    if (node < 0) {
      Result<std::vector<int>> n = os::page_nodes(*m, kPageBytes, kPageBytes);
      b.node = n && !n->empty() ? (*n)[0] : -1;
    }
    b.contiguous = bytes == kPageBytes;
    b.addr_kind = AddrKind::iova;
    b.dma_addr = b.cpu;
    if (bytes == kPageBytes) {
      if (auto pa = os::physical_addresses(*m, kPageBytes, kPageBytes); pa) {
        b.dma_addr = (*pa)[0];
        b.addr_kind = AddrKind::physical;
      }
    }
    if (need_physical && b.addr_kind != AddrKind::physical) {
      unmap_locked(b.cpu, b.mapped_bytes);
      return make_error(Errc::permission, "pages: physical addresses are hidden from this process "
                                          "(needs CAP_SYS_ADMIN); use IOVA mode");
    }
    return b;
  }

  void free_pages(const PagesBlock& b) noexcept override { unmap_locked(b.cpu, b.mapped_bytes); }
};

class HugetlbBacking : public AnonBacking {
 public:
  HugetlbBacking(const topo::Topology& t, bool gigantic, const BackingOptions& o)
      : root_(t.root()), hp_(gigantic ? k1G : k2M), compact_(o.compact) {}

  std::string name() const override { return "hugetlb"; }

  Result<Reservation> reserve(int node, std::uint64_t bytes) override {
    return reserve_with(node, bytes, hp_);
  }

  Result<Reservation> reserve_with(int node, std::uint64_t bytes, std::uint64_t hp) {
    const std::string compacted = compact_ ? compact_node(node) : "";
    const std::uint64_t mapped = round_up(bytes, hp);
    const std::uint64_t need = mapped / hp, have = free_hugepages_now(root_, node, hp);
    if (have < need)
      return make_error(Errc::no_memory, "node " + std::to_string(node) + " has " + std::to_string(have) +
                                             " free " + size_name(hp) + " hugepages, needs " +
                                             std::to_string(need));
    Result<int> fd = os::memfd_hugetlb("numacma-node" + std::to_string(node), hp);
    if (!fd) return std::move(fd).error();
    Result<HugeMapping> m = populate_sorted(*fd, mapped, hp, node, mlock_);
    (void)os::close_fd(*fd);  // the mapping keeps the file, and the file its pages
    if (!m) return std::move(m).error();
    Reservation r;
    r.kind = "hugetlb-" + size_name(hp);
    r.node = node;
    r.cpu_base = m->cpu_base;
    r.bytes = bytes;
    r.mapped_bytes = mapped;
    r.note = compacted;
    auto add_note = [&r](const std::string& n) { r.note += (r.note.empty() ? "" : "; ") + n; };
    if (m->phys.empty()) {
      r.addr_kind = AddrKind::iova;
      r.segments = {{0, bytes / kPageBytes, r.cpu_base}};
      add_note("hugetlb: physical addresses unreadable (pagemap hides PFNs from this process; needs "
               "CAP_SYS_ADMIN): IOVA mode only");
      return r;
    }
    r.addr_kind = AddrKind::physical;
    // Mapped in ascending physical order: one segment per run of physically
    // adjacent hugepages, cut at `bytes`.
    r.segments = segments_from_phys(m->phys, hp, bytes);
    return r;
  }

  void release(const Reservation& r) noexcept override { unmap_huge(r.cpu_base, r.mapped_bytes); }

  Result<PagesBlock> alloc_pages(int node, std::uint64_t bytes, bool need_physical,
                                 std::uint64_t /*below: no zones here*/) override {
    bytes = round_up(bytes, kPageBytes);
    if (bytes > kPageBytes && bytes <= k2M && node >= 0 && free_hugepages_now(root_, node, k2M) > 0) {
      Result<void*> m = map_on_node(k2M, k2M, node, mlock_);
      if (m) {
        PagesBlock b;
        b.kind = "pages-2M";
        b.node = node;
        b.cpu = reinterpret_cast<std::uintptr_t>(*m);
        b.bytes = bytes;
        b.mapped_bytes = k2M;
        if (auto pa = os::physical_addresses(*m, k2M, k2M); pa) {
          b.dma_addr = (*pa)[0];
          b.addr_kind = AddrKind::physical;
          b.contiguous = true;
          return b;
        }
        unmap_locked(b.cpu, b.mapped_bytes);
      }
    }
    return AnonBacking::alloc_pages(node, bytes, need_physical, kAnywhere);
  }

 private:
  std::string compact_node(int node) const { return backing::compact_node(root_, node); }

  std::string root_;
  std::uint64_t hp_;
  bool compact_;
};

class AutoBacking final : public HugetlbBacking {
 public:
  AutoBacking(const topo::Topology& t, const BackingOptions& o) : HugetlbBacking(t, false, o), root_(t.root()) {}
  std::string name() const override { return "auto"; }

  Result<Reservation> reserve(int node, std::uint64_t bytes) override {
    std::string why;
    for (std::uint64_t hp : {k2M, k1G}) {
      const std::uint64_t need = round_up(bytes, hp) / hp;
      const std::uint64_t have = free_hugepages_now(root_, node, hp);
      if (have >= need) {
        Result<Reservation> r = reserve_with(node, bytes, hp);
        if (r) {
          r->note = "auto: " + r->kind + " on node " + std::to_string(node) + " (" +
                    std::to_string(have) + " free " + size_name(hp) + " hugepages)" +
                    (r->note.empty() ? "" : "; " + r->note);
          return r;
        }
        why += (why.empty() ? "" : "; ") + r.error().message;
      } else {
        why += (why.empty() ? "" : "; ") + ("node " + std::to_string(node) + " has " +
                                             std::to_string(have) + " free " + size_name(hp) +
                                             " hugepages, needs " + std::to_string(need));
      }
    }
    Result<Reservation> r = AnonBacking::reserve(node, bytes);
    if (r) r->note = "auto: anon on node " + std::to_string(node) + " (" + why + "); " + r->note;
    return r;
  }

 private:
  std::string root_;
};

}  // namespace

std::unique_ptr<Backing> make_anon(const topo::Topology&) { return std::make_unique<AnonBacking>(); }
std::unique_ptr<Backing> make_hugetlb(const topo::Topology& t, bool gigantic, const BackingOptions& o) {
  return std::make_unique<HugetlbBacking>(t, gigantic, o);
}
std::unique_ptr<Backing> make_auto(const topo::Topology& t, const BackingOptions& o) {
  return std::make_unique<AutoBacking>(t, o);
}

const char* addr_kind_name(AddrKind k) noexcept { return k == AddrKind::iova ? "iova" : "physical"; }

Status check_base_page(std::size_t os_page) {
  if (os_page == kPageBytes) return {};
  return make_error(Errc::unsupported,
                    "this kernel's page size is " + std::to_string(os_page / 1024) +
                        " KiB (sysconf _SC_PAGESIZE = " + std::to_string(os_page) +
                        "); numacma's allocation unit is the 4 KiB page of x86-64 and 4K-page arm64 "
                        "kernels, so the anon, hugetlb and auto backings are not supported here "
                        "(the sim backing is)");
}

Result<std::unique_ptr<Backing>> make_backing(std::string_view kind, const topo::Topology& t,
                                              const SimOptions& sim, const BackingOptions& opts) {
  if (kind == "sim") return make_sim(t, sim);
  if (kind == "anon" || kind == "hugetlb" || kind == "hugetlb-2M" || kind == "hugetlb-1G" || kind == "auto")
    if (Status ok = check_base_page(os::page_size()); !ok) return std::move(ok).error();
  if (kind == "anon") return make_anon(t);
  if (kind == "hugetlb" || kind == "hugetlb-2M") return make_hugetlb(t, false, opts);
  if (kind == "hugetlb-1G") return make_hugetlb(t, true, opts);
  if (kind == "auto") return make_auto(t, opts);
  return make_error(Errc::invalid_argument, "unknown backing '" + std::string(kind) +
                                                "' (valid: auto, hugetlb, hugetlb-1G, anon, sim)");
}

}  // namespace numacma::backing
