#pragma once

// The interface between the CPU operators and their element loops, which are
// compiled once per instruction set (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp). The loops include no PyTorch header: code compiled for
// AVX2 or AVX-512 must not leave inline functions behind that the linker could
// pick for callers on a CPU without those instructions.

#include <cstdint>
#include <cstring>

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

// The sign masks of the backward (one bit per element, bit i % 8 of byte i / 8
// set where x[i] > 0).
template <class T>
struct MaskKernels {
  // forward, also writing the bits of x[span] (span.begin a multiple of 8).
  void (*forward)(
      const T* x,
      const compute_t<T>* weight,
      T* out,
      uint8_t* mask,
      Span span);
  // backward with the sign read off the mask: grad_input[i] = bit ? g[i] : w *
  // g[i]; and, when grad_weight is not null, grad_weight[channel] += bit ? 0 :
  // result[i] * g[i] (the prelu output standing in for x; the caller divides
  // by the weight).
  void (*backward)(
      const T* grad_output,
      const uint8_t* mask,
      const T* result,
      const compute_t<T>* weight,
      T* grad_input,
      compute_t<T>* grad_weight,
      Span span);
};

struct KernelTable {
  Kernels<float> f32;
  Kernels<double> f64;
  Kernels<Half16> f16;
  Kernels<BFloat16> bf16;
  MaskKernels<float> mask_f32;
  MaskKernels<double> mask_f64;
  MaskKernels<Half16> mask_f16;
  MaskKernels<BFloat16> mask_bf16;
};

template <class T>
const Kernels<T>& kernels_for(const KernelTable& table);
template <class T>
const MaskKernels<T>& mask_kernels_for(const KernelTable& table);
template <>
inline const Kernels<float>& kernels_for<float>(const KernelTable& t) {
  return t.f32;
}
template <>
inline const MaskKernels<float>& mask_kernels_for<float>(const KernelTable& t) {
  return t.mask_f32;
}
template <>
inline const Kernels<double>& kernels_for<double>(const KernelTable& t) {
  return t.f64;
}
template <>
inline const MaskKernels<double>& mask_kernels_for<double>(
    const KernelTable& t) {
  return t.mask_f64;
}
template <>
inline const Kernels<Half16>& kernels_for<Half16>(const KernelTable& t) {
  return t.f16;
}
template <>
inline const MaskKernels<Half16>& mask_kernels_for<Half16>(
    const KernelTable& t) {
  return t.mask_f16;
}
template <>
inline const Kernels<BFloat16>& kernels_for<BFloat16>(const KernelTable& t) {
  return t.bf16;
}
template <>
inline const MaskKernels<BFloat16>& mask_kernels_for<BFloat16>(
    const KernelTable& t) {
  return t.mask_bf16;
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
