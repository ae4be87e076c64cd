// src/pool/iova_space.cpp — the two IOVA spaces of iova_space.hpp.
#include "pool/iova_space.hpp"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

#include "vfio/container.hpp"
#include "vfio/iova.hpp"

namespace numacma::detail {

namespace {

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

class ContainerSpace final : public IovaSpace {
 public:
  explicit ContainerSpace(vfio::Container& c) : c_(c) {}
  Result<std::uint64_t> map(std::uintptr_t va, std::uint64_t bytes, std::uint64_t align,
                            std::uint64_t limit, std::string_view what) override {
    return c_.map(va, bytes, align, limit, what);
  }
  Status unmap(std::uint64_t iova, std::uint64_t bytes) override { return c_.unmap(iova, bytes); }
  std::uint64_t area_limit() const noexcept override { return c_.min_mask(); }
  std::string describe_mapping(std::uint64_t iova) const override {
    return "vfio: mapped at IOVA " + hex(iova) + " for " + std::to_string(c_.device_count()) +
           " device(s)";
  }

 private:
  vfio::Container& c_;
};

class ExternalSpace final : public IovaSpace {
 public:
  ExternalSpace(ExternalIommuSpec spec, const std::vector<vfio::IovaRange>& usable)
      : spec_(std::move(spec)), alloc_(usable) {}
  ~ExternalSpace() override {
    for (const auto& [iova, m] : live_) (void)spec_.iommu->unmap(m.first, iova, m.second);
  }

  Result<std::uint64_t> map(std::uintptr_t va, std::uint64_t bytes, std::uint64_t align,
                            std::uint64_t limit, std::string_view what) override {
    std::lock_guard<std::mutex> lock(mu_);
    Result<std::uint64_t> iova = alloc_.alloc(bytes, align, limit);
    if (!iova)
      return make_error(iova.error().code, std::string(what) + " in " + spec_.owner +
                                               "'s IOMMU: " + iova.error().message);
    if (Status s = spec_.iommu->map(va, *iova, bytes); !s) {
      (void)alloc_.free(*iova, bytes);
      return make_error(s.error().code, std::string(what) + ": " + spec_.owner + " could not map " +
                                            hex(bytes) + " bytes at IOVA " + hex(*iova) + ": " +
                                            s.error().message);
    }
    live_.emplace(*iova, std::make_pair(va, bytes));
    return *iova;
  }

  Status unmap(std::uint64_t iova, std::uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = live_.find(iova);
    if (it == live_.end() || it->second.second != bytes)
      return make_error(Errc::invalid_argument,
                        "IOVA " + hex(iova) + " (" + hex(bytes) + " bytes) is not a mapping of the pool");
    if (Status s = spec_.iommu->unmap(it->second.first, iova, bytes); !s) return s;
    live_.erase(it);
    return alloc_.free(iova, bytes);
  }

  std::uint64_t area_limit() const noexcept override { return UINT64_MAX; }
  std::string describe_mapping(std::uint64_t iova) const override {
    return spec_.owner + ": mapped at IOVA " + hex(iova) + " in its IOMMU";
  }

 private:
  ExternalIommuSpec spec_;
  std::mutex mu_;
  vfio::IovaAllocator alloc_;
  std::map<std::uint64_t, std::pair<std::uintptr_t, std::uint64_t>> live_;  // iova -> va, bytes
};

}  // namespace

std::unique_ptr<IovaSpace> container_space(vfio::Container& container) {
  return std::make_unique<ContainerSpace>(container);
}

Result<std::unique_ptr<IovaSpace>> external_space(ExternalIommuSpec spec) {
  if (!spec.iommu) return make_error(Errc::invalid_argument, "use_external_iommu: no iommu given");
  if (spec.owner.empty()) spec.owner = "the external IOMMU";
  std::vector<vfio::IovaRange> usable;
  for (const auto& [first, last] : spec.usable) {
    if (last < first)
      return make_error(Errc::invalid_argument, "use_external_iommu: range [" + hex(first) + ", " +
                                                    hex(last) + "] ends before it starts");
    if (last >= vfio::kIovaFloor) usable.push_back({first, last});
  }
  std::vector<vfio::IovaRange> holes;
  for (const auto& [first, last] : spec.reserved)
    if (first <= last) holes.push_back({first, last});
  usable = vfio::subtract(std::move(usable), holes);
  if (usable.empty())
    return make_error(Errc::invalid_argument,
                      "use_external_iommu: no usable IOVA range at or above " + hex(vfio::kIovaFloor) +
                          " outside the reserved ones");
  std::unique_ptr<IovaSpace> s = std::make_unique<ExternalSpace>(std::move(spec), usable);
  return s;
}

}  // namespace numacma::detail
