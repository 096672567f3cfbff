#pragma once

// The instruction set of the CPU element loops, chosen once at load time: the
// best the CPU supports, or the level named by the environment variable
// ACTX_CPU_CAPABILITY (scalar, avx2, avx512) when set; set_capability switches
// it later, for tests and benchmarks.

#include <string>

#include "cpu/kernel_table.h"

namespace actx {
namespace cpu {

const KernelTable& active_kernels();
std::string capability_name();
// Switches to `capability`; an unknown name, or one this CPU lacks, is an
// error.
std::string set_capability(const std::string& capability);

} // namespace cpu
} // namespace actx
