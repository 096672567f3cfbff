#pragma once

// 256-bit vectors for AVX2 + FMA + F16C: 8 floats or 4 doubles. Only compiled inside
// kernels_avx2.cpp, whose functions all carry the avx2 target.

#include <immintrin.h>

#include "cpu/kernel_table.h"

namespace actx {
namespace cpu {
namespace avx2 {

struct VecF {
  static constexpr int64_t kLanes = 8;
  __m256 v;
  static VecF broadcast(float c) {
    return {_mm256_set1_ps(c)};
  }
  static VecF zero() {
    return {_mm256_setzero_ps()};
  }
};
struct VecD {
  static constexpr int64_t kLanes = 4;
  __m256d v;
  static VecD broadcast(double c) {
    return {_mm256_set1_pd(c)};
  }
  static VecD zero() {
    return {_mm256_setzero_pd()};
  }
};
// Comparison results: all-ones lanes where true.
struct MaskF {
  __m256 m;
};
struct MaskD {
  __m256d m;
};

inline VecF operator*(VecF a, VecF b) {
  return {_mm256_mul_ps(a.v, b.v)};
}
inline VecF operator+(VecF a, VecF b) {
  return {_mm256_add_ps(a.v, b.v)};
}
inline MaskF positive(VecF a) {
  return {_mm256_cmp_ps(a.v, _mm256_setzero_ps(), _CMP_GT_OQ)};
}
inline VecF select(MaskF m, VecF a, VecF b) {
  return {_mm256_blendv_ps(b.v, a.v, m.m)};
}
inline float reduce_add(VecF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline VecD operator*(VecD a, VecD b) {
  return {_mm256_mul_pd(a.v, b.v)};
}
inline VecD operator+(VecD a, VecD b) {
  return {_mm256_add_pd(a.v, b.v)};
}
inline MaskD positive(VecD a) {
  return {_mm256_cmp_pd(a.v, _mm256_setzero_pd(), _CMP_GT_OQ)};
}
inline VecD select(MaskD m, VecD a, VecD b) {
  return {_mm256_blendv_pd(b.v, a.v, m.m)};
}
inline double reduce_add(VecD a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

inline VecF zero_like(VecF) {
  return VecF::zero();
}
inline VecD zero_like(VecD) {
  return VecD::zero();
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
  return {_mm256_loadu_ps(p)};
}
inline VecD load(const double* p) {
  return {_mm256_loadu_pd(p)};
}
inline VecF load(const Half16* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline VecF load(const BFloat16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16))};
}
inline void store(float* p, VecF v) {
  _mm256_storeu_ps(p, v.v);
}
inline void store(double* p, VecD v) {
  _mm256_storeu_pd(p, v.v);
}
inline void store(Half16* p, VecF v) {
  _mm_storeu_si128(
      reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// Round to nearest even, as c10::BFloat16 does (NaN becomes 0x7FC0).
inline void store(BFloat16* p, VecF v) {
  const __m256i bits = _mm256_castps_si256(v.v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
  const __m256 is_number = _mm256_cmp_ps(v.v, v.v, _CMP_ORD_Q);
  rounded = _mm256_castps_si256(_mm256_blendv_ps(
      _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC0)), _mm256_castsi256_ps(rounded), is_number));
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

} // namespace avx2
} // namespace cpu
} // namespace actx
