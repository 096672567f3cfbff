#pragma once

// 256-bit vectors for AVX2 + FMA + F16C: 8 floats or 4 doubles. Only compiled
// inside kernels_avx2.cpp, whose functions all carry the avx2 target.

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
  static VecF load_compute(const float* p) {
    return {_mm256_loadu_ps(p)};
  }
  static void store_compute(float* p, VecF v) {
    _mm256_storeu_ps(p, v.v);
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
  static VecD load_compute(const double* p) {
    return {_mm256_loadu_pd(p)};
  }
  static void store_compute(double* p, VecD v) {
    _mm256_storeu_pd(p, v.v);
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
inline MaskF greater(VecF a, VecF b) {
  return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)};
}
inline MaskF not_less(VecF a, VecF b) {
  return {_mm256_cmp_ps(a.v, b.v, _CMP_NLT_UQ)};
}
inline MaskF either(MaskF a, MaskF b) {
  return {_mm256_or_ps(a.m, b.m)};
}
inline VecF select(MaskF m, VecF a, VecF b) {
  return {_mm256_blendv_ps(b.v, a.v, m.m)};
}
// min(high, v) gives v where either is NaN or both are zeros, max(low, .)
// likewise: activation_formulas.h's clamp_between, in two instructions.
inline VecF clamp_between(VecF v, VecF low, VecF high) {
  return {_mm256_max_ps(low.v, _mm256_min_ps(high.v, v.v))};
}
inline float reduce_add(VecF a) {
  __m128 s =
      _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
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
inline MaskD greater(VecD a, VecD b) {
  return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)};
}
inline MaskD not_less(VecD a, VecD b) {
  return {_mm256_cmp_pd(a.v, b.v, _CMP_NLT_UQ)};
}
inline MaskD either(MaskD a, MaskD b) {
  return {_mm256_or_pd(a.m, b.m)};
}
inline VecD select(MaskD m, VecD a, VecD b) {
  return {_mm256_blendv_pd(b.v, a.v, m.m)};
}
inline VecD clamp_between(VecD v, VecD low, VecD high) {
  return {_mm256_max_pd(low.v, _mm256_min_pd(high.v, v.v))};
}
inline double reduce_add(VecD a) {
  __m128d s =
      _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

inline VecF zero_like(VecF) {
  return VecF::zero();
}
inline VecD zero_like(VecD) {
  return VecD::zero();
}

// A comparison result as bits (bit k: lane k), and back: the sign masks the
// backward keeps. The vector argument only names the type.
inline uint32_t positive_bits(MaskF m) {
  return static_cast<uint32_t>(_mm256_movemask_ps(m.m));
}
inline uint32_t positive_bits(MaskD m) {
  return static_cast<uint32_t>(_mm256_movemask_pd(m.m));
}
inline MaskF positive_from_bits(VecF, uint32_t bits) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i set =
      _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane_bits);
  return {_mm256_castsi256_ps(_mm256_cmpeq_epi32(set, lane_bits))};
}
inline MaskD positive_from_bits(VecD, uint32_t bits) {
  const __m256i lane_bits = _mm256_setr_epi64x(1, 2, 4, 8);
  const __m256i set = _mm256_and_si256(
      _mm256_set1_epi64x(static_cast<long long>(bits)), lane_bits);
  return {_mm256_castsi256_pd(_mm256_cmpeq_epi64(set, lane_bits))};
}

// ---- Parity bits (prelu_with_parity; see activation_kernel.h and
// vec_avx512.h) ----

inline uint32_t storage_low_bits(const float* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return static_cast<uint32_t>(
      _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 31))));
}
// The sign bits of 16-bit lanes, packed to bytes (the saturation keeps the
// sign) and gathered.
inline uint32_t sign_bits_16(__m128i lo, __m128i hi) {
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(lo, hi)));
}
// 16-bit elements: each low bit shifted to the top.
inline uint32_t low_bits_16(__m128i lo, __m128i hi) {
  return sign_bits_16(_mm_slli_epi16(lo, 15), _mm_slli_epi16(hi, 15));
}
inline uint32_t storage_low_bits(const Half16* p) { // 8 lanes
  return low_bits_16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
      _mm_setzero_si128());
}
inline uint32_t storage_low_bits(const BFloat16* p) { // 16 lanes
  const auto* q = reinterpret_cast<const __m128i*>(p);
  return low_bits_16(_mm_loadu_si128(q), _mm_loadu_si128(q + 1));
}
// All ones in the 16-bit lanes where a <= b, unsigned: min(a, b) == a.
inline __m128i at_most_u16(__m128i a, __m128i b) {
  return _mm_cmpeq_epi16(_mm_min_epu16(a, b), a);
}
// All ones in the lanes of 8 elements of 16-bit storage x in their
// ParityXRange (kernel_table.h), whose bounds start at `start` and `span`;
// `nonnegative` is T's infinity.
inline __m128i storage_safe_lanes_16(
    const void* x,
    const uint16_t* start,
    const uint16_t* span,
    uint16_t nonnegative) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
  const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(start));
  const __m128i width = _mm_loadu_si128(reinterpret_cast<const __m128i*>(span));
  return _mm_or_si128(
      at_most_u16(v, _mm_set1_epi16(nonnegative)),
      at_most_u16(_mm_sub_epi16(v, low), width));
}
inline uint32_t storage_safe_bits(
    const Half16* x,
    const uint16_t* start,
    const uint16_t* span) {
  return sign_bits_16(
      storage_safe_lanes_16(x, start, span, StorageFormat<Half16>::kInfinity),
      _mm_setzero_si128());
}
inline uint32_t storage_safe_bits(
    const BFloat16* x,
    const uint16_t* start,
    const uint16_t* span) {
  constexpr uint16_t kInfinity = StorageFormat<BFloat16>::kInfinity;
  return sign_bits_16(
      storage_safe_lanes_16(x, start, span, kInfinity),
      storage_safe_lanes_16(x + 8, start + 8, span + 8, kInfinity));
}

// storage_low_bits and storage_safe_bits of 64 16-bit elements, 16 lanes per
// instruction, for activation_kernel.h's storage_low_bits64 and
// storage_safe_bits64.
constexpr bool kStorageBits64 = true;
// The sign bits of two vectors of 16 lanes, packed to bytes (per 128-bit lane:
// a's 8, b's 8) and put back in element order.
inline uint32_t sign_bits_32(__m256i a, __m256i b) {
  const __m256i packed = _mm256_permute4x64_epi64(
      _mm256_packs_epi16(a, b), _MM_SHUFFLE(3, 1, 2, 0));
  return static_cast<uint32_t>(_mm256_movemask_epi8(packed));
}
inline uint64_t storage_low_bits64_16(const void* p) {
  uint64_t bits = 0;
  for (int64_t j = 0; j < 64; j += 32) {
    const auto* q = static_cast<const __m256i*>(p) + j / 16;
    bits |= static_cast<uint64_t>(sign_bits_32(
                _mm256_slli_epi16(_mm256_loadu_si256(q), 15),
                _mm256_slli_epi16(_mm256_loadu_si256(q + 1), 15)))
        << j;
  }
  return bits;
}
// All ones in the 16-bit lanes where a <= b, unsigned (at_most_u16's test).
inline __m256i at_most_u16x16(__m256i a, __m256i b) {
  return _mm256_cmpeq_epi16(_mm256_min_epu16(a, b), a);
}
inline __m256i load_si256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
// All ones in the lanes of 16 elements of 16-bit storage x in their
// ParityXRange (storage_safe_lanes_16's test). (Helper functions, not
// lambdas: GCC 12 warned that such a lambda returned an AVX vector without AVX
// enabled, the file's target pragma not applying to it.)
template <class T>
inline __m256i storage_safe_lanes_16x16(
    const T* x,
    const uint16_t* start,
    const uint16_t* span) {
  const __m256i v = load_si256(x);
  return _mm256_or_si256(
      at_most_u16x16(v, _mm256_set1_epi16(StorageFormat<T>::kInfinity)),
      at_most_u16x16(_mm256_sub_epi16(v, load_si256(start)), load_si256(span)));
}
template <class T>
inline uint64_t storage_safe_bits64_16(
    const T* x,
    const uint16_t* start,
    const uint16_t* span) {
  uint64_t bits = 0;
  for (int64_t j = 0; j < 64; j += 32) {
    bits |= static_cast<uint64_t>(sign_bits_32(
                storage_safe_lanes_16x16(x + j, start + j, span + j),
                storage_safe_lanes_16x16(
                    x + j + 16, start + j + 16, span + j + 16)))
        << j;
  }
  return bits;
}

template <int kShift, bool kByReciprocal>
inline VecF recover_negative(VecF y, VecF w, uint32_t parity) {
  __m256i bits;
  if constexpr (kByReciprocal) {
    bits = _mm256_castps_si256(
        _mm256_mul_ps(y.v, _mm256_div_ps(_mm256_set1_ps(1.0f), w.v)));
  } else {
    const __m256 q = _mm256_div_ps(y.v, w.v);
    const __m256 r = _mm256_fnmadd_ps(q, w.v, y.v);
    // All-ones (-1) where q went past y / w: added, a step back.
    const __m256i past =
        _mm256_castps_si256(_mm256_cmp_ps(r, _mm256_setzero_ps(), _CMP_GT_OQ));
    bits = _mm256_add_epi32(_mm256_castps_si256(q), past);
  }
  const __m256i unit = _mm256_set1_epi32(1 << kShift);
  bits = _mm256_and_si256(bits, _mm256_set1_epi32(-(1 << kShift)));
  const __m256i want = _mm256_and_si256(
      _mm256_castps_si256(positive_from_bits(VecF{}, parity).m), unit);
  bits = _mm256_add_epi32(
      bits, _mm256_and_si256(_mm256_xor_si256(bits, want), unit));
  return {_mm256_castsi256_ps(bits)};
}
inline uint32_t recoverable_bits(VecF x, VecF recovered) {
  const __m256 both_nan = _mm256_and_ps(
      _mm256_cmp_ps(x.v, x.v, _CMP_UNORD_Q),
      _mm256_cmp_ps(recovered.v, recovered.v, _CMP_UNORD_Q));
  return static_cast<uint32_t>(_mm256_movemask_ps(
      _mm256_or_ps(_mm256_cmp_ps(x.v, recovered.v, _CMP_EQ_OQ), both_nan)));
}
inline uint32_t in_range_bits(
    VecF x,
    VecF y,
    VecF x_low,
    VecF y_low,
    VecF y_high) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ay = _mm256_andnot_ps(sign, y.v);
  const __m256 in = _mm256_and_ps(
      _mm256_and_ps(
          _mm256_cmp_ps(_mm256_andnot_ps(sign, x.v), x_low.v, _CMP_GE_OQ),
          _mm256_cmp_ps(ay, y_low.v, _CMP_GE_OQ)),
      _mm256_cmp_ps(ay, y_high.v, _CMP_LE_OQ));
  return static_cast<uint32_t>(_mm256_movemask_ps(
      _mm256_or_ps(_mm256_cmp_ps(x.v, _mm256_setzero_ps(), _CMP_GE_OQ), in)));
}
// 16 bfloat16 values as two float vectors. load() fills them the cheap way: a
// 32-bit lane of the loaded register holds elements 2j (low half) and 2j + 1
// (high half), so a shift and a mask make floats of them without crossing
// 128-bit lanes (half the instructions per element of unpacking, and what
// bounds bfloat16 on AVX2): v0 holds elements 0, 2, ..., 14 and v1 elements 1,
// 3, ..., 15. Where each element has its own weight, load_in_order() puts
// elements 0-7 in v0 and 8-15 in v1, the order of the weights that
// load_compute() reads (one cross-lane permute more per load and per store,
// instead of shuffling the weights and weight-gradient sums on every step).
#include "cpu/vec_pair.h"

template <class T>
struct VecOf {
  using type = VecF;
};
template <>
struct VecOf<double> {
  using type = VecD;
};
template <>
struct VecOf<BFloat16> {
  using type = VecBF;
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
  return {
      _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline VecBF load(const BFloat16* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {
      {_mm256_castsi256_ps(_mm256_slli_epi32(bits, 16))},
      {_mm256_castsi256_ps(_mm256_and_si256(
          bits, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))))}};
}
inline VecBF load_in_order(const BFloat16* p) {
  // 64-bit quarters q0 q1 q2 q3 (elements 0-3, 4-7, 8-11, 12-15) to q0 q2 | q1
  // q3: unpacking the low halves of the 128-bit lanes then gives elements 0-7,
  // the high halves 8-15.
  const __m256i bits = _mm256_permute4x64_epi64(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
      _MM_SHUFFLE(3, 1, 2, 0));
  const __m256i zero = _mm256_setzero_si256();
  return {
      {_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, bits))},
      {_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, bits))}};
}
inline void store(float* p, VecF v) {
  _mm256_storeu_ps(p, v.v);
}
inline void store(double* p, VecD v) {
  _mm256_storeu_pd(p, v.v);
}
inline void store(Half16* p, VecF v) {
  _mm_storeu_si128(
      reinterpret_cast<__m128i*>(p),
      _mm256_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// Float bits rounded to nearest even at bit 16, as c10::BFloat16 does. No NaN
// case: a NaN whose low 16 bits are zero stays NaN, and every NaN here is one
// (bfloat16 inputs, weights whose NaNs the CPU backend made canonical, and the
// default NaN of 0 * inf).
inline __m256i round_to_bfloat16_bits(VecF v) {
  const __m256i bits = _mm256_castps_si256(v.v);
  const __m256i lsb =
      _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  return _mm256_add_epi32(
      bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
}
inline void store(BFloat16* p, VecBF v) {
  const __m256i even = _mm256_srli_epi32(round_to_bfloat16_bits(v.v0), 16);
  const __m256i odd = _mm256_and_si256(
      round_to_bfloat16_bits(v.v1),
      _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(p), _mm256_or_si256(even, odd));
}
inline void store_in_order(BFloat16* p, VecBF v) {
  // Packing works within 128-bit lanes (0-3 8-11 | 4-7 12-15); the permute
  // restores the order.
  const __m256i packed = _mm256_packus_epi32(
      _mm256_srli_epi32(round_to_bfloat16_bits(v.v0), 16),
      _mm256_srli_epi32(round_to_bfloat16_bits(v.v1), 16));
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(p),
      _mm256_permute4x64_epi64(packed, _MM_SHUFFLE(3, 1, 2, 0)));
}

} // namespace avx2
} // namespace cpu
} // namespace actx
