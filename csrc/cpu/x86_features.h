#pragma once

// What the CPU and the OS support, read from CPUID and XCR0. GCC and Clang read
// them alike (Clang's
// __builtin_cpu_supports does not know "f16c"). Used by capability.cpp and the
// kernels benchmark.

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#include <cstring>

namespace actx {
namespace cpu {

struct X86Features {
  bool avx2_fma_f16c = false;
  bool avx512_f_bw_vl_dq = false;
  // AVX512_BF16 on top: vcvtneps2bf16, float to bfloat16 rounded to nearest
  // even (denormals flushed to zero).
  bool avx512_bf16 = false;
  // AMD family 19h: Zen 3 and Zen 4, of which Zen 4 has AVX-512.
  bool amd_family_19h = false;
};

inline X86Features read_x86_features() {
  X86Features features;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) {
    return features;
  }
  const bool fma_f16c_avx =
      (ecx & bit_FMA) && (ecx & bit_F16C) && (ecx & bit_AVX);
  // XCR0: the register state the OS saves on a context switch. AVX needs SSE
  // and YMM state (bits 1 and 2); AVX-512 also the opmask and the upper ZMM
  // registers (bits 5 to 7).
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  const bool os_saves_ymm = (xcr0_low & 0x06) == 0x06;
  const bool os_saves_zmm = (xcr0_low & 0xE6) == 0xE6;
  // Leaf 1's EAX: the base family in bits 8-11, plus bits 20-27 when the base
  // is 0xF. Leaf 0: the vendor string in EBX, EDX, ECX.
  const unsigned base_family = (eax >> 8) & 0xF;
  const unsigned family =
      base_family == 0xF ? base_family + ((eax >> 20) & 0xFF) : base_family;
  unsigned vendor_regs[4] = {0, 0, 0, 0};
  __get_cpuid(
      0, &vendor_regs[3], &vendor_regs[0], &vendor_regs[2], &vendor_regs[1]);
  const bool amd = std::memcmp(vendor_regs, "AuthenticAMD", 12) == 0;
  features.amd_family_19h = amd && family == 0x19;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    return features;
  }
  features.avx2_fma_f16c = fma_f16c_avx && os_saves_ymm && (ebx & bit_AVX2);
  features.avx512_f_bw_vl_dq = features.avx2_fma_f16c && os_saves_zmm &&
      (ebx & bit_AVX512F) && (ebx & bit_AVX512BW) && (ebx & bit_AVX512VL) &&
      (ebx & bit_AVX512DQ);
  // Leaf 7, subleaf 1: EAX bit 5.
  if (features.avx512_f_bw_vl_dq &&
      __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
    features.avx512_bf16 = (eax & (1u << 5)) != 0;
  }
#endif
  return features;
}

} // namespace cpu
} // namespace actx
