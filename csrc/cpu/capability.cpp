#include "cpu/capability.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

#include "cpu/x86_features.h"

namespace actx {
namespace cpu {
namespace {

struct Level {
  const char* name;
  const KernelTable* (*table)();
  bool (*supported)();
};

const X86Features& x86_features() {
  static const X86Features features = read_x86_features();
  return features;
}

bool cpu_has_avx2() {
  return x86_features().avx2_fma_f16c && avx2::kernel_table() != nullptr;
}

bool cpu_has_avx512() {
  return x86_features().avx512_f_bw_vl_dq && avx512::kernel_table() != nullptr;
}

bool always() {
  return true;
}

// Lowest first.
constexpr Level kLevels[] = {
    {"scalar", &scalar::kernel_table, &always},
    {"avx2", &avx2::kernel_table, &cpu_has_avx2},
    {"avx512", &avx512::kernel_table, &cpu_has_avx512},
};

const Level* find_level(const std::string& name) {
  for (const Level& level : kLevels) {
    if (name == level.name) {
      return &level;
    }
  }
  return nullptr;
}

const Level* best_supported() {
  const Level* best = &kLevels[0];
  for (const Level& level : kLevels) {
    if (level.supported()) {
      best = &level;
    }
  }
  return best;
}

const Level* initial_level() {
  const Level* best = best_supported();
  const char* requested = std::getenv("ACTX_CPU_CAPABILITY");
  if (requested == nullptr || *requested == '\0') {
    return best;
  }
  const Level* level = find_level(requested);
  if (level == nullptr) {
    TORCH_WARN(
        "actx: ignoring ACTX_CPU_CAPABILITY=",
        requested,
        " (expected scalar, avx2 or avx512); using ",
        best->name);
    return best;
  }
  if (!level->supported()) {
    TORCH_WARN(
        "actx: ACTX_CPU_CAPABILITY=",
        requested,
        " is not supported by this CPU; using ",
        best->name);
    return best;
  }
  return level;
}

std::atomic<const Level*>& current() {
  static std::atomic<const Level*> level{initial_level()};
  return level;
}

} // namespace

const KernelTable& active_kernels() {
  return *current().load(std::memory_order_relaxed)->table();
}

std::string capability_name() {
  return current().load(std::memory_order_relaxed)->name;
}

std::string set_capability(const std::string& capability) {
  const Level* level = find_level(capability);
  TORCH_CHECK(
      level != nullptr,
      "actx::_set_cpu_capability: expected `capability` to be scalar, avx2 or avx512, got '",
      capability,
      "'");
  TORCH_CHECK(
      level->supported(),
      "actx::_set_cpu_capability: this CPU (or this build) does not support '",
      capability,
      "'; the best it supports is '",
      best_supported()->name,
      "'");
  current().store(level, std::memory_order_relaxed);
  return level->name;
}

} // namespace cpu
} // namespace actx
