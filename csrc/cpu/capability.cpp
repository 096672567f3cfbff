#include "cpu/capability.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iterator>

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

// AMD Zen 4 carries out each 512-bit operation as two 256-bit halves. There
// the loops of float32 and float64, bound by the memory, run faster with
// 256-bit vectors (AVX2); the float16 ones, bound by vcvtph2ps/vcvtps2ph, with
// 512-bit vectors; the bfloat16 ones with the AVX512_BF16 build's 32-lane
// vectors that one vcvtne2ps2bf16 rounds (AVX2 where a CPU lacks it;
// docs/benchmarks.md).
bool cpu_is_zen4() {
  return x86_features().amd_family_19h && cpu_has_avx512();
}

const KernelTable* zen4_kernel_table() {
  static const KernelTable* const table = []() -> const KernelTable* {
    const KernelTable* narrow = avx2::kernel_table();
    const KernelTable* wide = avx512::kernel_table();
    if (narrow == nullptr || wide == nullptr) {
      return nullptr;
    }
    static KernelTable mixed = *narrow;
    std::copy(
        std::begin(wide->f16), std::end(wide->f16), std::begin(mixed.f16));
    mixed.parity_f16 = wide->parity_f16;
    const KernelTable* bf16 =
        x86_features().avx512_bf16 ? avx512_bf16::kernel_table() : nullptr;
    if (bf16 != nullptr) {
      std::copy(
          std::begin(bf16->bf16), std::end(bf16->bf16), std::begin(mixed.bf16));
      mixed.parity_bf16 = bf16->parity_bf16;
    } else {
      // Bound by its division, which is faster at 512 bits.
      mixed.parity_bf16.backward = wide->parity_bf16.backward;
    }
    return &mixed;
  }();
  return table;
}

// In order of preference: the last one the CPU supports is the default. zen4
// is avx512's instructions, with avx2's loops where Zen 4 runs them faster.
constexpr Level kLevels[] = {
    {"scalar", &scalar::kernel_table, &always},
    {"avx2", &avx2::kernel_table, &cpu_has_avx2},
    {"avx512", &avx512::kernel_table, &cpu_has_avx512},
    {"zen4", &zen4_kernel_table, &cpu_is_zen4},
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
  const Level* fallback = best_supported();
  const char* requested = std::getenv("ACTX_CPU_CAPABILITY");
  if (requested == nullptr || *requested == '\0') {
    return fallback;
  }
  const Level* level = find_level(requested);
  if (level == nullptr) {
    TORCH_WARN(
        "actx: ignoring ACTX_CPU_CAPABILITY=",
        requested,
        " (expected scalar, avx2, avx512 or zen4); using ",
        fallback->name);
    return fallback;
  }
  if (!level->supported()) {
    TORCH_WARN(
        "actx: ACTX_CPU_CAPABILITY=",
        requested,
        " is not supported by this CPU; using ",
        fallback->name);
    return fallback;
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
      "actx::_set_cpu_capability: expected `capability` to be scalar, avx2, avx512 or zen4, got '",
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
