#pragma once

// 512-bit vectors for AVX-512 (F, BW, VL, DQ): 16 floats or 8 doubles. Only
// compiled inside kernels_avx512.cpp, whose functions all carry the avx512
// target. With ACTX_AVX512_BF16 (kernels_avx512_bf16.cpp, which also targets
// AVX512_BF16) bfloat16 vectors are 32 lanes, stored with vcvtne2ps2bf16, in a
// namespace of its own (ACTX_AVX512_NAMESPACE): the same inline functions with
// other bodies must not meet at link time.

// The emulation test (tests/cpp/test_avx512_emulated.cpp) provides the
// intrinsics itself.
#ifndef ACTX_EMULATED_AVX512
#include <immintrin.h>
#endif

#include "cpu/kernel_table.h"

#ifndef ACTX_AVX512_NAMESPACE
#define ACTX_AVX512_NAMESPACE avx512
#endif

namespace actx {
namespace cpu {
namespace ACTX_AVX512_NAMESPACE {

struct VecF {
  static constexpr int64_t kLanes = 16;
  __m512 v;
  static VecF broadcast(float c) {
    return {_mm512_set1_ps(c)};
  }
  static VecF zero() {
    return {_mm512_setzero_ps()};
  }
  static VecF load_compute(const float* p) {
    return {_mm512_loadu_ps(p)};
  }
  static void store_compute(float* p, VecF v) {
    _mm512_storeu_ps(p, v.v);
  }
};
struct VecD {
  static constexpr int64_t kLanes = 8;
  __m512d v;
  static VecD broadcast(double c) {
    return {_mm512_set1_pd(c)};
  }
  static VecD zero() {
    return {_mm512_setzero_pd()};
  }
  static VecD load_compute(const double* p) {
    return {_mm512_loadu_pd(p)};
  }
  static void store_compute(double* p, VecD v) {
    _mm512_storeu_pd(p, v.v);
  }
};

// Comparison results are bit masks: __mmask16 for floats, __mmask8 for doubles.
inline VecF operator*(VecF a, VecF b) {
  return {_mm512_mul_ps(a.v, b.v)};
}
inline VecF operator+(VecF a, VecF b) {
  return {_mm512_add_ps(a.v, b.v)};
}
inline __mmask16 positive(VecF a) {
  return _mm512_cmp_ps_mask(a.v, _mm512_setzero_ps(), _CMP_GT_OQ);
}
inline __mmask16 greater(VecF a, VecF b) {
  return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ);
}
inline __mmask16 not_less(VecF a, VecF b) {
  return _mm512_cmp_ps_mask(a.v, b.v, _CMP_NLT_UQ);
}
inline __mmask16 either(__mmask16 a, __mmask16 b) {
  return static_cast<__mmask16>(a | b);
}
inline VecF select(__mmask16 m, VecF a, VecF b) {
  return {_mm512_mask_blend_ps(m, b.v, a.v)};
}
// min(high, v) gives v where either is NaN or both are zeros, max(low, .)
// likewise: activation_formulas.h's clamp_between, in two instructions.
inline VecF clamp_between(VecF v, VecF low, VecF high) {
  return {_mm512_max_ps(low.v, _mm512_min_ps(high.v, v.v))};
}
inline float reduce_add(VecF a) {
  return _mm512_reduce_add_ps(a.v);
}

inline VecD operator*(VecD a, VecD b) {
  return {_mm512_mul_pd(a.v, b.v)};
}
inline VecD operator+(VecD a, VecD b) {
  return {_mm512_add_pd(a.v, b.v)};
}
inline __mmask8 positive(VecD a) {
  return _mm512_cmp_pd_mask(a.v, _mm512_setzero_pd(), _CMP_GT_OQ);
}
inline __mmask8 greater(VecD a, VecD b) {
  return _mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ);
}
inline __mmask8 not_less(VecD a, VecD b) {
  return _mm512_cmp_pd_mask(a.v, b.v, _CMP_NLT_UQ);
}
inline __mmask8 either(__mmask8 a, __mmask8 b) {
  return static_cast<__mmask8>(a | b);
}
inline VecD select(__mmask8 m, VecD a, VecD b) {
  return {_mm512_mask_blend_pd(m, b.v, a.v)};
}
inline VecD clamp_between(VecD v, VecD low, VecD high) {
  return {_mm512_max_pd(low.v, _mm512_min_pd(high.v, v.v))};
}
inline double reduce_add(VecD a) {
  return _mm512_reduce_add_pd(a.v);
}

inline VecF zero_like(VecF) {
  return VecF::zero();
}
inline VecD zero_like(VecD) {
  return VecD::zero();
}

// Comparison masks are bits already (bit k: lane k): the sign masks the
// backward keeps. The vector argument only names the type.
inline uint32_t positive_bits(__mmask16 m) {
  return m;
}
inline uint32_t positive_bits(__mmask8 m) {
  return m;
}
inline __mmask16 positive_from_bits(VecF, uint32_t bits) {
  return static_cast<__mmask16>(bits);
}
inline __mmask8 positive_from_bits(VecD, uint32_t bits) {
  return static_cast<__mmask8>(bits);
}

// ---- Parity bits (prelu_with_parity; see activation_kernel.h) ----

// The lowest storage bit of kLanes elements, bit k: element k.
inline uint32_t storage_low_bits(const float* p) {
  return _mm512_test_epi32_mask(_mm512_loadu_si512(p), _mm512_set1_epi32(1));
}
inline uint32_t storage_low_bits_16(const void* p) {
  return _mm256_test_epi16_mask(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
      _mm256_set1_epi16(1));
}
inline uint32_t storage_low_bits(const Half16* p) {
  return storage_low_bits_16(p);
}
// The lanes of 16 (32) elements of 16-bit storage x in their ParityXRange
// (kernel_table.h), whose bounds start at `start` and `span`: the storage at
// most `nonnegative` (T's infinity), or less start at most span (unsigned).
inline uint32_t storage_safe_bits_16(
    const void* x,
    const uint16_t* start,
    const uint16_t* span,
    uint16_t nonnegative) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i low =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(start));
  const __m256i width =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(span));
  return _mm256_cmple_epu16_mask(v, _mm256_set1_epi16(nonnegative)) |
      _mm256_cmple_epu16_mask(_mm256_sub_epi16(v, low), width);
}
inline uint32_t storage_safe_bits(
    const Half16* x,
    const uint16_t* start,
    const uint16_t* span) {
  return storage_safe_bits_16(x, start, span, StorageFormat<Half16>::kInfinity);
}
// storage_low_bits and storage_safe_bits of 64 16-bit elements, 32 lanes per
// instruction, for activation_kernel.h's storage_low_bits64 and
// storage_safe_bits64.
constexpr bool kStorageBits64 = true;
inline uint64_t storage_low_bits64_16(const void* p) {
  const auto* q = static_cast<const __m512i*>(p);
  const __m512i one = _mm512_set1_epi16(1);
  return _mm512_test_epi16_mask(_mm512_loadu_si512(q), one) |
      (static_cast<uint64_t>(
           _mm512_test_epi16_mask(_mm512_loadu_si512(q + 1), one))
       << 32);
}
inline uint32_t storage_safe_bits32_16(
    const void* x,
    const uint16_t* start,
    const uint16_t* span,
    uint16_t nonnegative) {
  const __m512i v = _mm512_loadu_si512(x);
  return _mm512_cmple_epu16_mask(v, _mm512_set1_epi16(nonnegative)) |
      _mm512_cmple_epu16_mask(
             _mm512_sub_epi16(v, _mm512_loadu_si512(start)),
             _mm512_loadu_si512(span));
}
template <class T>
inline uint64_t storage_safe_bits64_16(
    const T* x,
    const uint16_t* start,
    const uint16_t* span) {
  constexpr uint16_t kInfinity = StorageFormat<T>::kInfinity;
  return storage_safe_bits32_16(x, start, span, kInfinity) |
      (static_cast<uint64_t>(
           storage_safe_bits32_16(x + 32, start + 32, span + 32, kInfinity))
       << 32);
}

// The x <= 0 with y = w * x rounded to a storage type whose lowest bit is bit
// kShift of a float: the quotient y / w truncated to that type's grid (the
// remainder y - q * w, exact with an FMA, says whether q's rounding went past
// y / w; kByReciprocal: q = y * (1 / w), truncated as it is), then one step
// further where its lowest bit is not `parity`'s.
template <int kShift, bool kByReciprocal>
inline VecF recover_negative(VecF y, VecF w, uint32_t parity) {
  __m512i bits;
  if constexpr (kByReciprocal) {
    bits = _mm512_castps_si512(
        _mm512_mul_ps(y.v, _mm512_div_ps(_mm512_set1_ps(1.0f), w.v)));
  } else {
    const __m512 q = _mm512_div_ps(y.v, w.v);
    const __m512 r = _mm512_fnmadd_ps(q, w.v, y.v);
    bits = _mm512_mask_sub_epi32(
        _mm512_castps_si512(q),
        _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_GT_OQ),
        _mm512_castps_si512(q),
        _mm512_set1_epi32(1));
  }
  const __m512i unit = _mm512_set1_epi32(1 << kShift);
  bits = _mm512_and_si512(bits, _mm512_set1_epi32(-(1 << kShift)));
  const __m512i want =
      _mm512_maskz_mov_epi32(static_cast<__mmask16>(parity), unit);
  bits = _mm512_add_epi32(
      bits, _mm512_and_si512(_mm512_xor_si512(bits, want), unit));
  return {_mm512_castsi512_ps(bits)};
}

// The lanes whose x the backward gets back: x == recovered, or both NaN (the
// gradients are NaN either way). A NaN recovered for a number x is not: the
// step to the parity bit takes an overflowed y (-inf) to a NaN.
inline uint32_t recoverable_bits(VecF x, VecF recovered) {
  return _mm512_cmp_ps_mask(x.v, recovered.v, _CMP_EQ_OQ) |
      (_mm512_cmp_ps_mask(x.v, x.v, _CMP_UNORD_Q) &
       _mm512_cmp_ps_mask(recovered.v, recovered.v, _CMP_UNORD_Q));
}

// The lanes with x >= 0, or |x| >= x_low and y_low <= |y| <= y_high.
inline uint32_t in_range_bits(
    VecF x,
    VecF y,
    VecF x_low,
    VecF y_low,
    VecF y_high) {
  const __m512 ay = _mm512_abs_ps(y.v);
  return _mm512_cmp_ps_mask(x.v, _mm512_setzero_ps(), _CMP_GE_OQ) |
      (_mm512_cmp_ps_mask(_mm512_abs_ps(x.v), x_low.v, _CMP_GE_OQ) &
       _mm512_cmp_ps_mask(ay, y_low.v, _CMP_GE_OQ) &
       _mm512_cmp_ps_mask(ay, y_high.v, _CMP_LE_OQ));
}

template <class T>
struct VecOf {
  using type = VecF;
};
template <>
struct VecOf<double> {
  using type = VecD;
};
template <class T>
using Vec = typename VecOf<T>::type;

inline VecF load(const float* p) {
  return {_mm512_loadu_ps(p)};
}
inline VecD load(const double* p) {
  return {_mm512_loadu_pd(p)};
}
inline VecF load(const Half16* p) {
  return {
      _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
inline void store(float* p, VecF v) {
  _mm512_storeu_ps(p, v.v);
}
inline void store(double* p, VecD v) {
  _mm512_storeu_pd(p, v.v);
}
inline void store(Half16* p, VecF v) {
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(p),
      _mm512_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// Round to nearest even, as c10::BFloat16 does (NaN becomes 0x7FC0).
inline __m256i round_to_bfloat16(VecF v) {
  const __m512i bits = _mm512_castps_si512(v.v);
  const __m512i lsb =
      _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
  const __mmask16 is_number = _mm512_cmp_ps_mask(v.v, v.v, _CMP_ORD_Q);
  rounded =
      _mm512_mask_blend_epi32(is_number, _mm512_set1_epi32(0x7FC0), rounded);
  return _mm512_cvtepi32_epi16(rounded);
}

// ---- bfloat16: 32 lanes with AVX512_BF16, else 16 ----

#if defined(ACTX_AVX512_BF16)
// 32 bfloat16 values as two float vectors in lane order (v0: elements 0-15,
// v1: 16-31), so that one vcvtne2ps2bf16 rounds and packs a whole vector for
// its store.
#include "cpu/vec_pair.h"

inline uint32_t storage_low_bits(const BFloat16* p) { // 32 lanes
  return _mm512_test_epi16_mask(_mm512_loadu_si512(p), _mm512_set1_epi16(1));
}
inline uint32_t storage_safe_bits(
    const BFloat16* x,
    const uint16_t* start,
    const uint16_t* span) {
  return storage_safe_bits32_16(
      x, start, span, StorageFormat<BFloat16>::kInfinity);
}

template <>
struct VecOf<BFloat16> {
  using type = VecBF;
};

// One load: the 64-bit quarters ordered 0 4 1 5 2 6 3 7, so that unpacking the
// low halves of the 128-bit lanes gives elements 0-15 and the high halves
// 16-31 (fewer instructions than two widening loads).
inline VecBF load(const BFloat16* p) {
  const __m512i bits = _mm512_permutexvar_epi64(
      _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7), _mm512_loadu_si512(p));
  const __m512i zero = _mm512_setzero_si512();
  return {
      {_mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, bits))},
      {_mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, bits))}};
}

// vcvtne2ps2bf16 rounds to nearest even too, and packs both halves in one
// instruction, but flushes denormal floats to zero: a vector with one (class
// 0x20) rounds the integer way. (Its NaNs keep their sign; NaN-ness is what
// torch defines.)
inline void store(BFloat16* p, VecBF v) {
  const __mmask16 denormal = _mm512_fpclass_ps_mask(v.v0.v, 0x20) |
      _mm512_fpclass_ps_mask(v.v1.v, 0x20);
  if (__builtin_expect(denormal == 0, 1)) {
    const auto rounded = _mm512_cvtne2ps_pbh(v.v1.v, v.v0.v); // 32 bfloat16
    std::memcpy(p, &rounded, sizeof rounded);
    return;
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), round_to_bfloat16(v.v0));
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(p + 16), round_to_bfloat16(v.v1));
}
#else
inline uint32_t storage_low_bits(const BFloat16* p) {
  return storage_low_bits_16(p);
}
inline uint32_t storage_safe_bits(
    const BFloat16* x,
    const uint16_t* start,
    const uint16_t* span) {
  return storage_safe_bits_16(
      x, start, span, StorageFormat<BFloat16>::kInfinity);
}

// 16 bfloat16 values as floats (their bits shifted up).
inline VecF load(const BFloat16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
}

inline void store(BFloat16* p, VecF v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), round_to_bfloat16(v));
}
#endif

} // namespace ACTX_AVX512_NAMESPACE
} // namespace cpu
} // namespace actx
