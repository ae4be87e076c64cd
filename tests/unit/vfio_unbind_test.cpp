// vfio::unbind over a temporary fake sysfs tree (vfio_bind_fake.hpp): the
// remembered driver back, or the kernel's pick; and bind/unbind through the
// public API with the real writer.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "vfio_bind_fake.hpp"

TEST(VfioUnbind, RestoresTheRememberedDriver) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  k.native[kX] = "";  // the kernel would pick nothing: only the remembered name brings nvme back
  ASSERT_TRUE(vfio::bind(kX, k.options()).ok());
  k.log.clear();
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->from, "vfio-pci");
  EXPECT_EQ(r->to, "nvme");
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->note, "");
  EXPECT_EQ(sys.driver_of(kX), "nvme");
  EXPECT_EQ(k.log, (Log{{"bus/pci/drivers/vfio-pci/unbind", kX},
                        {kOverride, "\n"},
                        {kOverride, "nvme"},
                        {"bus/pci/drivers_probe", kX},
                        {kOverride, "\n"}}));
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioUnbind, WithoutAMemoTheKernelPicks) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.dev(kX) / "driver_override", "vfio-pci");
  Kernel k(sys);
  k.native[kX] = "nvme";
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->to, "nvme");
  EXPECT_EQ(k.log, (Log{{"bus/pci/drivers/vfio-pci/unbind", kX},
                        {kOverride, "\n"},
                        {"bus/pci/drivers_probe", kX}}));
}

TEST(VfioUnbind, RememberedDriverNotLoadedKeepsTheMemo) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.memo(kX), "nvme\n");
  Kernel k(sys);
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->to, "");
  EXPECT_NE(r->note.find("modprobe nvme"), std::string::npos) << r->note;
  EXPECT_EQ(slurp(sys.memo(kX)), "nvme\n");
  EXPECT_EQ(slurp(sys.dev(kX) / "driver_override"), "\n");
  // With nvme loaded, the next unbind finishes the job.
  sys.driver("nvme");
  auto again = vfio::unbind(kX, k.options());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->from, "");
  EXPECT_EQ(again->to, "nvme");
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioUnbind, MalformedMemoIsAnErrorNamingItBeforeAnyWrite) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.memo(kX), "../../evil\n");
  Kernel k(sys);
  auto r = vfio::unbind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(sys.memo(kX).string()), std::string::npos) << r.error().message;
  EXPECT_TRUE(k.log.empty());
  EXPECT_EQ(sys.driver_of(kX), "vfio-pci");
}

TEST(VfioPublicApi, BindAndUnbindWithTheRealWriter) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  sys.device("0000:06:00.0", -1, "nvme");
  ::setenv("NUMACMA_RUN_DIR", sys.run.c_str(), 1);
  EXPECT_EQ(vfio::default_run_dir(), sys.run.string());
  EXPECT_TRUE(numacma::vfio_bind(kX, sys.root.string()).ok());  // already bound: no write
  const Status no_group = numacma::vfio_bind("0000:06:00.0", sys.root.string());
  ASSERT_FALSE(no_group.ok());
  EXPECT_EQ(no_group.error().code, Errc::unsupported);
  EXPECT_EQ(numacma::vfio_unbind("0000:07:00.0", sys.root.string()).error().code, Errc::not_found);
  // Unbind with a memo in $NUMACMA_RUN_DIR: the real writes land in the files.
  put(sys.memo(kX), "nvme\n");
  EXPECT_TRUE(numacma::vfio_unbind(kX, sys.root.string()).ok());
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers/vfio-pci/unbind"), kX);
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers_probe"), kX);
  EXPECT_TRUE(fs::exists(sys.memo(kX)));  // nvme did not take it (plain files): kept
  ::unsetenv("NUMACMA_RUN_DIR");
  EXPECT_EQ(vfio::default_run_dir(), "/run/numacma");
}
