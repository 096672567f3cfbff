#pragma once

// One-lane "vectors" for the scalar instruction set: the portable fallback,
// built with the compiler's baseline flags. Half types convert through c10's
// own routines, so the scalar path rounds exactly as PyTorch does.

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstring>

#include "cpu/kernel_table.h"

namespace actx {
namespace cpu {
namespace scalar {

template <class C>
struct Lane {
  static constexpr int64_t kLanes = 1;
  C v;
  static Lane broadcast(C c) {
    return {c};
  }
  static Lane zero() {
    return {C(0)};
  }
  static Lane load_compute(const C* p) {
    return {*p};
  }
  static void store_compute(C* p, Lane v) {
    *p = v.v;
  }
};

template <class C>
inline Lane<C> operator*(Lane<C> a, Lane<C> b) {
  return {a.v * b.v};
}
template <class C>
inline Lane<C> operator+(Lane<C> a, Lane<C> b) {
  return {a.v + b.v};
}
template <class C>
inline bool positive(Lane<C> a) {
  return a.v > C(0);
}
template <class C>
inline bool greater(Lane<C> a, Lane<C> b) {
  return a.v > b.v;
}
template <class C>
inline bool not_less(Lane<C> a, Lane<C> b) {
  return !(a.v < b.v);
}
inline bool either(bool a, bool b) {
  return a || b;
}
template <class C>
inline Lane<C> select(bool m, Lane<C> a, Lane<C> b) {
  return m ? a : b;
}
template <class C>
inline C reduce_add(Lane<C> a) {
  return a.v;
}

template <class C>
inline Lane<C> zero_like(Lane<C>) {
  return Lane<C>::zero();
}

// The sign masks the backward keeps: one lane, one bit.
inline uint32_t positive_bits(bool m) {
  return m ? 1u : 0u;
}
template <class C>
inline bool positive_from_bits(Lane<C>, uint32_t bits) {
  return (bits & 1u) != 0;
}

// ---- Parity bits (prelu_with_parity; see activation_kernel.h and
// vec_avx512.h) ----

template <class T>
inline uint32_t storage_low_bits(const T* p) {
  return low_bit(*p);
}
// No wider storage_low_bits64 and storage_safe_bits64 than
// activation_kernel.h's loops over these.
constexpr bool kStorageBits64 = false;
// 16-bit types: whether the element is in its ParityXRange, whose bounds are
// *start and *span.
template <class T>
inline uint32_t storage_safe_bits(
    const T* x,
    const uint16_t* start,
    const uint16_t* span) {
  uint16_t b;
  std::memcpy(&b, x, sizeof b);
  return in_parity_x_range<T>(b, {*start, *span}) ? 1u : 0u;
}

template <int kShift, bool kByReciprocal>
inline Lane<float> recover_negative(
    Lane<float> y,
    Lane<float> w,
    uint32_t parity) {
  uint32_t bits;
  if constexpr (kByReciprocal) {
    const float q = y.v * (1.0f / w.v);
    std::memcpy(&bits, &q, sizeof bits);
  } else {
    const float q = y.v / w.v;
    const float r = std::fma(-q, w.v, y.v);
    std::memcpy(&bits, &q, sizeof bits);
    if (r > 0.0f) {
      bits -= 1u;
    }
  }
  const uint32_t unit = 1u << kShift;
  bits &= ~(unit - 1u);
  bits += (bits ^ ((parity & 1u) != 0 ? unit : 0u)) & unit;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return {x};
}

inline uint32_t recoverable_bits(Lane<float> x, Lane<float> recovered) {
  const bool both_nan = std::isnan(x.v) && std::isnan(recovered.v);
  return x.v == recovered.v || both_nan ? 1u : 0u;
}

inline uint32_t in_range_bits(
    Lane<float> x,
    Lane<float> y,
    Lane<float> x_low,
    Lane<float> y_low,
    Lane<float> y_high) {
  const float ay = std::fabs(y.v);
  const bool in = std::fabs(x.v) >= x_low.v && ay >= y_low.v && ay <= y_high.v;
  return x.v >= 0.0f || in ? 1u : 0u;
}

template <class T>
using Vec = Lane<compute_t<T>>;

inline Lane<float> load(const float* p) {
  return {*p};
}
inline Lane<double> load(const double* p) {
  return {*p};
}
inline Lane<float> load(const Half16* p) {
  return {static_cast<float>(c10::Half(p->bits, c10::Half::from_bits()))};
}
inline Lane<float> load(const BFloat16* p) {
  return {
      static_cast<float>(c10::BFloat16(p->bits, c10::BFloat16::from_bits()))};
}
inline void store(float* p, Lane<float> v) {
  *p = v.v;
}
inline void store(double* p, Lane<double> v) {
  *p = v.v;
}
inline void store(Half16* p, Lane<float> v) {
  p->bits = c10::Half(v.v).x;
}
inline void store(BFloat16* p, Lane<float> v) {
  p->bits = c10::BFloat16(v.v).x;
}

} // namespace scalar
} // namespace cpu
} // namespace actx
