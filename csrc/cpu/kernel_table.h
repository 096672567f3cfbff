#pragma once

// The interface between the CPU operators and their element loops, which are
// compiled once per instruction set (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp, kernels_avx512_bf16.cpp). The loops include no PyTorch
// header: code compiled for AVX2 or AVX-512 must not leave inline functions
// behind that the linker could pick for callers on a CPU without those
// instructions.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#define ACTX_FORMULA_IDS_ONLY
#include "activation_formulas.h"
#undef ACTX_FORMULA_IDS_ONLY

namespace actx {
namespace cpu {

// Storage types of the half-precision dtypes, bit-compatible with c10::Half and
// c10::BFloat16.
struct Half16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// The type a kernel computes in: float for every dtype but double.
template <class T>
struct ComputeType {
  using type = float;
};
template <>
struct ComputeType<double> {
  using type = double;
};
template <class T>
using compute_t = typename ComputeType<T>::type;

// The elements [begin, end) of a flat buffer; element i uses parameter
// p[(i / inner) % channels].
struct Span {
  int64_t channels;
  int64_t inner;
  int64_t begin;
  int64_t end;
};

// One formula's loops (activation_formulas.h) for storage type T. `p` holds the
// per-element parameters; `gp` receives the sums of their gradient terms
// (null: none wanted).
template <class T>
struct Kernels {
  // out[i] = f(x[i], p)
  void (*forward)(
      const T* x,
      const compute_t<T>* p,
      T* out,
      const FormulaScalars& scalars,
      Span span);
  // grad_input[i] = dL/dx and gp[channel] += the element's dL/dp, from x.
  void (*backward)(
      const T* grad_output,
      const T* x,
      const compute_t<T>* p,
      T* grad_input,
      compute_t<T>* gp,
      const FormulaScalars& scalars,
      Span span);
  // forward, also writing the sign bits of x[span] (span.begin a multiple of
  // 8; one bit per element, bit i % 8 of byte i / 8: the branch element i
  // took) and, where `saturation` is not null, whether it was clamped.
  void (*forward_with_bits)(
      const T* x,
      const compute_t<T>* p,
      T* out,
      uint8_t* sign,
      uint8_t* saturation,
      const FormulaScalars& scalars,
      Span span);
  // backward from those bits instead of x. Where the parameter's gradient
  // reads x, `y` (prelu's output) stands in for it (the caller divides each
  // channel's sum by the slope).
  void (*backward_from_bits)(
      const T* grad_output,
      const uint8_t* sign,
      const uint8_t* saturation,
      const T* y,
      const compute_t<T>* p,
      T* grad_input,
      compute_t<T>* gp,
      const FormulaScalars& scalars,
      Span span);
};

// How prelu_with_parity's loops recover x <= 0 of the 16-bit types: y times
// the weight's reciprocal (activation_kernel.h, recovered_input); float
// divides. The weights for which the loops' check guarantees recovery: positive
// and finite, and for the 16-bit types in [2^-126, 2^126], where the weight and
// its reciprocal are normal floats. The operator reports other weights' calls
// unrecoverable.
template <class T>
constexpr bool kRecoverByReciprocal =
    std::is_same_v<T, BFloat16> || std::is_same_v<T, Half16>;
template <class T>
inline bool parity_weight_supported(compute_t<T> w) {
  if constexpr (kRecoverByReciprocal<T>) {
    return w >= 0x1p-126f && w <= 0x1p126f;
  } else {
    return w > 0 && w <= std::numeric_limits<compute_t<T>>::max();
  }
}

// The parts of a 16-bit storage type that parity_x_range reads: where its
// lowest bit lies in a float's bits (kShift) and what turns a float's bits in
// its normal range into its own (subtracting kRebias, shifting by kShift).
template <class T>
struct StorageFormat;
template <>
struct StorageFormat<Half16> {
  static constexpr int kShift = 13;
  static constexpr uint32_t kRebias = uint32_t{127 - 15} << 23;
  static constexpr float kTiny = 0x1p-14f;
  static constexpr float kMax = 65504.0f;
  static constexpr uint16_t kInfinity = 0x7C00;
};
template <>
struct StorageFormat<BFloat16> {
  static constexpr int kShift = 16;
  static constexpr uint32_t kRebias = 0;
  static constexpr float kTiny = 0x1p-126f;
  static constexpr float kMax = 0x1.FEp127f;
  static constexpr uint16_t kInfinity = 0x7F80;
};

// The storage of the least (kUp) or greatest T value >= v (<= v), for v in
// T's normal range.
template <class T, bool kUp>
inline uint16_t storage_bits_near(double v) {
  using S = StorageFormat<T>;
  float f = static_cast<float>(v);
  if (kUp ? static_cast<double>(f) < v : static_cast<double>(f) > v) {
    f = std::nextafter(f, kUp ? std::numeric_limits<float>::infinity() : 0.0f);
  }
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  const uint32_t below = b & ((uint32_t{1} << S::kShift) - 1);
  return static_cast<uint16_t>(
      ((b - S::kRebias) >> S::kShift) + (kUp && below != 0 ? 1 : 0));
}

// The 16-bit x of a run of one weight w whose parity bits give x back without
// a check: x's storage at most T's infinity (x >= +0, +inf included, NaN not:
// y is x or +0), or x's storage less `start` at most `span` (16-bit unsigned
// arithmetic): the x < 0 with |x| in [a, b], where a >= max(tiny, 4 tiny / w)
// and, for w > 1, b <= max / (2 w). Then x is normal and y = w * x, rounded to
// float and to T, lies in [2 tiny, max]: rounded on T's normal grid, as
// recovered_input's argument needs; w and 1 / w are normal floats
// (parity_weight_supported). Any other weight gives the x >= +0 alone. Other
// elements are recovered and compared.
struct ParityXRange {
  uint16_t start;
  uint16_t span;
};
template <class T>
inline ParityXRange parity_x_range(float w) {
  using S = StorageFormat<T>;
  constexpr ParityXRange kNonNegative{0, S::kInfinity};
  if (!(w >= 0x1p-126f && w <= 0x1p126f)) {
    return kNonNegative;
  }
  const double low = std::max(
      static_cast<double>(S::kTiny), 4.0 * static_cast<double>(S::kTiny) / w);
  const double high =
      w <= 1.0f ? static_cast<double>(S::kMax) : S::kMax / (2.0 * w);
  if (low > S::kMax || high < S::kTiny) {
    return kNonNegative;
  }
  const uint16_t a = storage_bits_near<T, true>(low);
  const uint16_t b = storage_bits_near<T, false>(high);
  if (a > b) {
    return kNonNegative;
  }
  return {static_cast<uint16_t>(0x8000 | a), static_cast<uint16_t>(b - a)};
}
template <class T>
inline bool in_parity_x_range(uint16_t x, ParityXRange r) {
  return x <= StorageFormat<T>::kInfinity ||
      static_cast<uint16_t>(x - r.start) <= r.span;
}
// The weights' ParityXRange as two arrays parallel to the loops' weights: what
// the forward with parity bits of the 16-bit types reads
// (ParityKernels::forward).
struct ParityXRanges {
  const uint16_t* start = nullptr;
  const uint16_t* span = nullptr;
};
template <class T>
inline void fill_parity_x_ranges(
    const float* w,
    int64_t n,
    uint16_t* start,
    uint16_t* span) {
  for (int64_t k = 0; k < n; ++k) {
    const ParityXRange r = parity_x_range<T>(w[k]);
    start[k] = r.start;
    span[k] = r.span;
  }
}

// ParityKernels' forward pays more per run of per-element weights than the
// other loops (its bit words, the ranges of x), so the caller repeats the
// weights of rows of fewer channels than this (channels_last) to a pattern at
// least this long. (The forward with sign bits and the backwards were slower
// with it: docs/benchmarks.md.)
constexpr int64_t kMinParityPeriod = 1024;

// prelu's parity bits (the lowest bit of x[i]'s storage), with which the
// backward recovers x from the output where the weight is positive
// (activation_kernel.h, recovered_input). None for double, whose quotients
// have no wider type for the reference path to check.
template <class T>
struct ParityKernels {
  // prelu, also writing the parity bits; returns whether every x[i] is
  // recovered from (out[i], weight, bit). For float16 and bfloat16, `ranges`
  // holds the weights' ParityXRange (fill_parity_x_ranges); float ignores it.
  bool (*forward)(
      const T* x,
      const compute_t<T>* weight,
      ParityXRanges ranges,
      T* out,
      uint8_t* parity,
      Span span);
  // prelu's backward with x recovered from the output `y`; grad_weight is not
  // null.
  void (*backward)(
      const T* grad_output,
      const uint8_t* parity,
      const T* y,
      const compute_t<T>* weight,
      T* grad_input,
      compute_t<T>* grad_weight,
      Span span);
};

// The lowest bit of an element's storage.
template <class T>
inline uint32_t low_bit(const T& v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 2, "float, half types");
  std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t> b;
  std::memcpy(&b, &v, sizeof b);
  return b & 1u;
}

struct KernelTable {
  Kernels<float> f32[kFormulas];
  Kernels<double> f64[kFormulas];
  Kernels<Half16> f16[kFormulas];
  Kernels<BFloat16> bf16[kFormulas];
  ParityKernels<float> parity_f32;
  ParityKernels<Half16> parity_f16;
  ParityKernels<BFloat16> parity_bf16;
};

// The member of a table for storage type T, out of one per dtype.
template <class T, class F32, class F64, class F16, class BF16>
constexpr auto& for_dtype(F32& f32, F64& f64, F16& f16, BF16& bf16) {
  if constexpr (std::is_same_v<T, float>) {
    return f32;
  } else if constexpr (std::is_same_v<T, double>) {
    return f64;
  } else if constexpr (std::is_same_v<T, Half16>) {
    return f16;
  } else {
    static_assert(std::is_same_v<T, BFloat16>, "a storage type");
    return bf16;
  }
}

template <class T>
const Kernels<T>& kernels_for(const KernelTable& t, Formula formula) {
  return for_dtype<T>(t.f32, t.f64, t.f16, t.bf16)[static_cast<int>(formula)];
}

// Null for double (no parity kernels).
template <class T>
inline const ParityKernels<T>* parity_kernels_for(const KernelTable& t) {
  if constexpr (std::is_same_v<T, double>) {
    return nullptr;
  } else {
    return &for_dtype<T>(
        t.parity_f32, t.parity_f32, t.parity_f16, t.parity_bf16);
  }
}

// One table per instruction set; null where this build has none for it (not
// x86-64).
namespace scalar {
const KernelTable* kernel_table();
}
namespace avx2 {
const KernelTable* kernel_table();
}
namespace avx512 {
const KernelTable* kernel_table();
}
// avx512's loops with 32-lane bfloat16 vectors that AVX512_BF16 rounds.
namespace avx512_bf16 {
const KernelTable* kernel_table();
}

} // namespace cpu
} // namespace actx
