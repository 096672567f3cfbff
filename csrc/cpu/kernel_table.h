#pragma once

// The interface between the CPU operators and their element loops, which are
// compiled once per instruction set (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp). The loops include no PyTorch header: code compiled for
// AVX2 or AVX-512 must not leave inline functions behind that the linker could
// pick for callers on a CPU without those instructions.

#include <cstdint>
#include <cstring>
#include <type_traits>

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

// The elements [begin, end) of a flat buffer; element i uses weight[(i / inner)
// % channels].
struct Span {
  int64_t channels;
  int64_t inner;
  int64_t begin;
  int64_t end;
};

template <class T>
struct Kernels {
  // out[i] = x[i] > 0 ? x[i] : w * x[i]
  void (*forward)(const T* x, const compute_t<T>* weight, T* out, Span span);
  // grad_input[i] = x[i] > 0 ? g[i] : w * g[i]; and, when grad_weight is not
  // null, grad_weight[channel] += x[i] > 0 ? 0 : x[i] * g[i]
  void (*backward)(
      const T* grad_output,
      const T* x,
      const compute_t<T>* weight,
      T* grad_input,
      compute_t<T>* grad_weight,
      Span span);
};

// The bits the backward keeps (one bit per element, bit i % 8 of byte i / 8):
// sign masks (x[i] > 0), and the parity bits of prelu_with_parity (the lowest
// bit of x[i]'s storage), with which the backward recovers x from the output
// where the weight is positive (activation_kernel.h, recovered_input). No
// parity kernels for double, whose quotients have no wider type for the
// reference path to check.
template <class T>
struct BitKernels {
  // forward, also writing the bits of x[span] (span.begin a multiple of 8).
  // Returns, for parity bits, whether every x[i] is recovered from (out[i],
  // weight, bit); true for masks.
  bool (*forward)(
      const T* x,
      const compute_t<T>* weight,
      T* out,
      uint8_t* bits,
      Span span);
  // backward with grad_input[i] = x > 0 ? g[i] : w * g[i]; and, when
  // grad_weight is not null (prelu), grad_weight[channel] += x > 0 ? 0 : x *
  // g[i]. From a mask the sign is the bit, and the prelu output stands in for
  // x (the caller divides by the weight); from parity bits x is recovered from
  // the output.
  void (*backward)(
      const T* grad_output,
      const uint8_t* bits,
      const T* result,
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
  Kernels<float> f32;
  Kernels<double> f64;
  Kernels<Half16> f16;
  Kernels<BFloat16> bf16;
  BitKernels<float> mask_f32;
  BitKernels<double> mask_f64;
  BitKernels<Half16> mask_f16;
  BitKernels<BFloat16> mask_bf16;
  BitKernels<float> parity_f32;
  BitKernels<Half16> parity_f16;
  BitKernels<BFloat16> parity_bf16;
};

// Null for double (no parity kernels).
template <class T>
inline const BitKernels<T>* parity_kernels_for(const KernelTable& t) {
  if constexpr (std::is_same_v<T, float>) {
    return &t.parity_f32;
  } else if constexpr (std::is_same_v<T, Half16>) {
    return &t.parity_f16;
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return &t.parity_bf16;
  } else {
    return nullptr;
  }
}

// The member of a table for storage type T, out of one per dtype.
template <class T, class F32, class F64, class F16, class BF16>
constexpr const auto& for_dtype(
    const F32& f32,
    const F64& f64,
    const F16& f16,
    const BF16& bf16) {
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
const Kernels<T>& kernels_for(const KernelTable& t) {
  return for_dtype<T>(t.f32, t.f64, t.f16, t.bf16);
}
template <class T>
const BitKernels<T>& mask_kernels_for(const KernelTable& t) {
  return for_dtype<T>(t.mask_f32, t.mask_f64, t.mask_f16, t.mask_bf16);
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

} // namespace cpu
} // namespace actx
