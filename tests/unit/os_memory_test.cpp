// src/os on this host: mappings, binding, locking, placement (move_pages)
// and physical addresses (/proc/self/pagemap), files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "os/errno_error.hpp"
#include "os/os.hpp"

namespace os = numacma::os;
using numacma::Errc;

namespace {

constexpr std::size_t kPage = 4096;

/** A mapped, populated range, unmapped at scope exit. */
struct Mapping {
  void* p = nullptr;
  std::size_t bytes = 0;
  explicit Mapping(std::size_t b) : bytes(b) {
    auto m = os::map_anonymous(b);
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    if (m) {
      p = *m;
    }
  }
  ~Mapping() {
    if (p != nullptr) {
      EXPECT_TRUE(os::unmap(p, bytes).ok());
    }
  }
};

}  // namespace

TEST(OsMemory, PageSizeAndRoot) {
  EXPECT_EQ(os::page_size(), static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(os::is_root(), ::getuid() == 0);
}

TEST(OsMemory, MapWriteUnmap) {
  for (bool noreserve : {false, true}) {
    auto m = os::map_anonymous(16 * kPage, noreserve);
    ASSERT_TRUE(m.ok()) << m.error().message;
    std::memset(*m, 0x5a, 16 * kPage);
    EXPECT_EQ(static_cast<unsigned char*>(*m)[16 * kPage - 1], 0x5a);
    EXPECT_TRUE(os::unmap(*m, 16 * kPage).ok());
  }
}

TEST(OsMemory, ErrorsCarryTheErrno) {
  // A failed system call: its errno in sys_errno, EINVAL as invalid_argument.
  auto bad_unmap = os::unmap(reinterpret_cast<void*>(0x1001), kPage);
  ASSERT_FALSE(bad_unmap.ok());
  EXPECT_EQ(bad_unmap.error().sys_errno, EINVAL);
  EXPECT_EQ(bad_unmap.error().code, Errc::invalid_argument);
  auto missing = os::read_file("/nonexistent-numacma-test/file");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().sys_errno, ENOENT);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  // A refused precondition made no system call: sys_errno 0.
  auto bad_huge = os::map_hugetlb(3 << 20, 2 << 20);
  ASSERT_FALSE(bad_huge.ok());
  EXPECT_EQ(bad_huge.error().sys_errno, 0);
}

TEST(OsMemory, OneErrnoRule) {
  EXPECT_EQ(os::errc_from_errno(EINVAL), Errc::invalid_argument);
  EXPECT_EQ(os::errc_from_errno(ENOSYS), Errc::unsupported);
  EXPECT_EQ(os::errc_from_errno(EACCES), Errc::permission);
  EXPECT_EQ(os::errc_from_errno(EBUSY), Errc::io_error);
  const numacma::Error plain = os::errno_error("ioctl(X)", EBUSY);
  EXPECT_EQ(plain.sys_errno, EBUSY);
  EXPECT_EQ(plain.message, std::string("ioctl(X): ") + std::strerror(EBUSY));
  // Only a call that says so turns EINVAL into unsupported; the errno stays.
  const numacma::Error cap = os::errno_error_unsupported_on_einval("memfd_create(x)", EINVAL);
  EXPECT_EQ(cap.code, Errc::unsupported);
  EXPECT_EQ(cap.sys_errno, EINVAL);
  EXPECT_EQ(os::errno_error_unsupported_on_einval("memfd_create(x)", ENOMEM).code, Errc::no_memory);
}

TEST(OsMemory, ErrorsNameTheCall) {
  auto bad_unmap = os::unmap(reinterpret_cast<void*>(0x1001), kPage);  // not page aligned
  ASSERT_FALSE(bad_unmap.ok());
  EXPECT_NE(bad_unmap.error().message.find("munmap"), std::string::npos);
  auto bad_huge = os::map_hugetlb(3 << 20, 2 << 20);  // not a multiple of the hugepage
  ASSERT_FALSE(bad_huge.ok());
  EXPECT_EQ(bad_huge.error().code, Errc::invalid_argument);
  auto bad_size = os::map_hugetlb(4 << 20, 3 << 20);  // not a power of two
  ASSERT_FALSE(bad_size.ok());
  EXPECT_EQ(bad_size.error().code, Errc::invalid_argument);
  Mapping m(kPage);
  auto neg = os::bind_to_node(m.p, kPage, -1);
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.error().code, Errc::invalid_argument);
  auto big = os::bind_to_node(m.p, kPage, 100000);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::invalid_argument);
}

TEST(OsMemory, MovePagesTellsPresenceAndNode) {
  Mapping m(8 * kPage);
  ASSERT_NE(m.p, nullptr);
  auto before = os::page_nodes(m.p, m.bytes, kPage);
  ASSERT_TRUE(before.ok()) << before.error().message;
  ASSERT_EQ(before->size(), 8u);
  for (int s : *before) EXPECT_LT(s, 0) << "an untouched page is not present (-ENOENT)";
  ASSERT_TRUE(os::populate(m.p, m.bytes, kPage).ok());
  auto after = os::page_nodes(m.p, m.bytes, kPage);
  ASSERT_TRUE(after.ok());
  for (int s : *after) EXPECT_GE(s, 0);
  // One entry per step.
  auto per2 = os::page_nodes(m.p, m.bytes, 2 * kPage);
  ASSERT_TRUE(per2.ok());
  EXPECT_EQ(per2->size(), 4u);
}

TEST(OsMemory, BindLockAndVerifyOnNode0) {
  Mapping m(16 * kPage);
  ASSERT_NE(m.p, nullptr);
  auto b = os::bind_to_node(m.p, m.bytes, 0);
  if (!b.ok() && b.error().code == Errc::permission) GTEST_SKIP() << "mbind not permitted: " << b.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_TRUE(os::populate(m.p, m.bytes, kPage).ok());
  auto l = os::lock(m.p, m.bytes);
  if (!l.ok()) GTEST_SKIP() << "mlock not permitted here: " << l.error().message;
  auto nodes = os::page_nodes(m.p, m.bytes, kPage);
  ASSERT_TRUE(nodes.ok());
  for (int s : *nodes) EXPECT_EQ(s, 0);
  EXPECT_TRUE(os::unlock(m.p, m.bytes).ok());
}

TEST(OsMemory, BindToAnOfflineNodeFails) {
  Mapping m(kPage);
  auto b = os::bind_to_node(m.p, kPage, 1000);  // in range of the mask, not online
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("mbind"), std::string::npos);
  EXPECT_NE(b.error().message.find("node 1000"), std::string::npos);
}

TEST(OsMemory, PagemapPhysicalAddresses) {
  if (!os::physical_addresses_readable())
    GTEST_SKIP() << "/proc/self/pagemap hides PFNs from this process (needs CAP_SYS_ADMIN)";
  Mapping m(4 * kPage);
  ASSERT_TRUE(os::populate(m.p, m.bytes, kPage).ok());
  ASSERT_TRUE(os::lock(m.p, m.bytes).ok());
  auto pa = os::physical_addresses(m.p, m.bytes, kPage);
  ASSERT_TRUE(pa.ok()) << pa.error().message;
  ASSERT_EQ(pa->size(), 4u);
  for (std::uint64_t a : *pa) {
    EXPECT_NE(a, 0u);
    EXPECT_EQ(a % kPage, 0u);
  }
  // An offset inside a page keeps its offset.
  auto mid = os::physical_addresses(static_cast<char*>(m.p) + 100, kPage, kPage);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ((*mid)[0], (*pa)[0] + 100);
  // Locked pages do not move: the same answer twice.
  auto again = os::physical_addresses(m.p, m.bytes, kPage);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *pa);
  (void)os::unlock(m.p, m.bytes);
}

TEST(OsMemory, PagemapOfAMissingPageIsAnError) {
  Mapping m(kPage);  // never touched
  auto pa = os::physical_addresses(m.p, kPage, kPage);
  ASSERT_FALSE(pa.ok());
  EXPECT_EQ(pa.error().code, Errc::io_error);
  EXPECT_NE(pa.error().message.find("not present"), std::string::npos);
}

TEST(OsMemory, PagemapWithoutPrivilegeIsPermission) {
  if (os::physical_addresses_readable()) GTEST_SKIP() << "PFNs are readable here (CAP_SYS_ADMIN)";
  Mapping m(kPage);
  ASSERT_TRUE(os::populate(m.p, kPage, kPage).ok());
  auto pa = os::physical_addresses(m.p, kPage, kPage);
  ASSERT_FALSE(pa.ok());
  EXPECT_EQ(pa.error().code, Errc::permission);
}

TEST(OsFiles, ReadWriteListExists) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("numacma-os-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  // write_file writes into an existing file (a sysfs knob); it creates nothing.
  std::ofstream(dir / "a").flush();
  std::ofstream(dir / "b").flush();
  ASSERT_TRUE(os::write_file((dir / "b").string(), "two\n").ok());
  ASSERT_TRUE(os::write_file((dir / "a").string(), "one").ok());
  auto a = os::read_file((dir / "a").string());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "one");
  auto names = os::list_dir(dir.string());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "sub"}));
  EXPECT_TRUE(os::exists((dir / "b").string()));
  EXPECT_FALSE(os::exists((dir / "c").string()));
  auto missing = os::read_file((dir / "c").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find((dir / "c").string()), std::string::npos);
  EXPECT_FALSE(os::list_dir((dir / "c").string()).ok());
  auto nofile = os::write_file((dir / "c").string(), "x");
  ASSERT_FALSE(nofile.ok());
  EXPECT_EQ(nofile.error().code, Errc::not_found);
  EXPECT_FALSE(os::exists((dir / "c").string()));
  fs::remove_all(dir);
}

TEST(OsFiles, ReadsSysfs) {
  auto online = os::read_file("/sys/devices/system/node/online");
  ASSERT_TRUE(online.ok()) << online.error().message;
  EXPECT_EQ(online->substr(0, 1), "0");
}
