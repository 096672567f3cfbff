// The element loops for AVX-512 (F, BW, VL, DQ). The target pragma applies to
// this file alone, which includes no PyTorch header, so nothing compiled here
// can be picked by code outside it; the loops run only after capability.cpp
// found the instructions on the CPU. kernels_avx512_bf16.cpp compiles this file
// again, for CPUs with AVX512_BF16 too.
#include "cpu/kernel_table.h"

#ifndef ACTX_AVX512_NAMESPACE
#define ACTX_AVX512_NAMESPACE avx512
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(ACTX_AVX512_BF16)
#define ACTX_AVX512_TARGET \
  "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c"
#else
#define ACTX_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"
#endif
// A pragma whose text is macro-expanded first (the target above).
#define ACTX_PRAGMA_TEXT(text) _Pragma(#text)
#define ACTX_PRAGMA(text) ACTX_PRAGMA_TEXT(text)
// GCC applies its target pragma to the functions after it; Clang ignores it and
// takes its own.
#if defined(__clang__)
ACTX_PRAGMA(clang attribute push(
    __attribute__((target(ACTX_AVX512_TARGET))),
    apply_to = function))
#else
ACTX_PRAGMA(GCC target(ACTX_AVX512_TARGET))
#endif
#if !defined(__clang__)
// GCC 12 warns inside its own avx512fintrin.h about the undefined upper lanes
// it creates on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "cpu/vec_avx512.h"

namespace actx {
namespace cpu {
namespace ACTX_AVX512_NAMESPACE {
#include "cpu/activation_kernel.h"
} // namespace ACTX_AVX512_NAMESPACE
} // namespace cpu
} // namespace actx

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
const actx::cpu::KernelTable* actx::cpu::ACTX_AVX512_NAMESPACE::kernel_table() {
  return nullptr;
}
#endif
