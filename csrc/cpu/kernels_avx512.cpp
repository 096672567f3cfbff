// The element loops for AVX-512 (F, BW, VL, DQ). The target pragma applies to
// this file alone, which includes no PyTorch header, so nothing compiled here
// can be picked by code outside it; the loops run only after capability.cpp
// found the instructions on the CPU.
#include "cpu/kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC applies its target pragma to the functions after it; Clang ignores it and
// takes its own.
#if defined(__clang__)
#pragma clang attribute push(                                         \
    __attribute__((                                                   \
        target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
    apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif
#if !defined(__clang__)
// GCC 12 warns inside its own avx512fintrin.h about the undefined upper lanes
// it creates on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "cpu/vec_avx512.h"

namespace actx {
namespace cpu {
namespace avx512 {
#include "cpu/activation_kernel.h"
} // namespace avx512
} // namespace cpu
} // namespace actx

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
const actx::cpu::KernelTable* actx::cpu::avx512::kernel_table() {
  return nullptr;
}
#endif
