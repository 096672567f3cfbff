// The element loops for AVX2 + FMA + F16C. The target pragma applies to this
// file alone, which includes no PyTorch header, so nothing compiled here can be
// picked by code outside it; the loops run only after capability.cpp found the
// instructions on the CPU.
#include "cpu/kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC applies its target pragma to the functions after it; Clang ignores it and
// takes its own.
#if defined(__clang__)
#pragma clang attribute push( \
    __attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#include "cpu/vec_avx2.h"

namespace actx {
namespace cpu {
namespace avx2 {
#include "cpu/activation_kernel.h"
} // namespace avx2
} // namespace cpu
} // namespace actx

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
const actx::cpu::KernelTable* actx::cpu::avx2::kernel_table() {
  return nullptr;
}
#endif
