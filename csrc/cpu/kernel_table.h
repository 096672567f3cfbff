#pragma once

// The interface between the CPU operators and their element loops, which are
// compiled once per instruction set (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp). The loops include no PyTorch header: code compiled for
// AVX2 or AVX-512 must not leave inline functions behind that the linker could
// pick for callers on a CPU without those instructions.

#include <cstdint>

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

struct KernelTable {
  Kernels<float> f32;
  Kernels<double> f64;
  Kernels<Half16> f16;
  Kernels<BFloat16> bf16;
};

template <class T>
const Kernels<T>& kernels_for(const KernelTable& table);
template <>
inline const Kernels<float>& kernels_for<float>(const KernelTable& t) {
  return t.f32;
}
template <>
inline const Kernels<double>& kernels_for<double>(const KernelTable& t) {
  return t.f64;
}
template <>
inline const Kernels<Half16>& kernels_for<Half16>(const KernelTable& t) {
  return t.f16;
}
template <>
inline const Kernels<BFloat16>& kernels_for<BFloat16>(const KernelTable& t) {
  return t.bf16;
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
