// The formulas of actx's operators, in one place, for CPU scalars, CPU vectors
// and CUDA threads alike: the element loops (cpu/activation_kernel.h,
// cuda/activation_cuda.cu) are written once for every formula listed here.
//
// The first part (guarded) names the formulas and their scalar arguments; it
// is plain C++ (the CPU kernel table includes it with ACTX_FORMULA_IDS_ONLY).
// The second part (no include guard) is included inside the namespace of a
// value type V (a CPU instruction set's vectors, or CUDA's scalars) that
// provides
//   positive(V) -> M (x > 0, ordered), greater(V, V) -> M (a > b, ordered),
//   not_less(V, V) -> M (!(a < b): a >= b, or either is NaN),
//   either(M, M) -> M, select(M, V if_true, V if_false), zero_like(V),
//   V * V, V + V, and (not for C++'s own scalars) V::broadcast; it may
//   overload clamp_between (below).
// torch's own rule for the branch: x > 0 picks the input's; NaN and -0.0 take
// the slope's.

#ifndef ACTX_FORMULA_IDS
#define ACTX_FORMULA_IDS

#include <type_traits>

namespace actx {

// The formulas; a kernel call names one.
enum class Formula : int {
  kPrelu, // leaky_relu and prelu
  kBiasLeakyRelu,
};
inline constexpr int kFormulas = 2;

// A formula's scalar arguments, as it reads them (below).
struct FormulaScalars {
  double values[3] = {0.0, 0.0, 0.0};
};

} // namespace actx

#endif // ACTX_FORMULA_IDS

#ifndef ACTX_FORMULA_IDS_ONLY

#ifndef ACTX_HOST_DEVICE
#if defined(__CUDACC__)
#define ACTX_HOST_DEVICE __host__ __device__
#else
#define ACTX_HOST_DEVICE
#endif
#endif

// `value` as a V: every lane of a vector, or the scalar itself.
template <class V>
ACTX_HOST_DEVICE inline V splat(double value) {
  if constexpr (std::is_arithmetic_v<V>) {
    return static_cast<V>(value);
  } else {
    return V::broadcast(value);
  }
}

// f(x) = x > 0 ? x : a * x, with the sign test given (positive(x), which a
// forward that writes a sign mask also stores)
template <class M, class V>
ACTX_HOST_DEVICE inline V activation_masked(V x, M positive_x, V slope) {
  return select(positive_x, x, x * slope);
}
template <class V>
ACTX_HOST_DEVICE inline V activation(V x, V slope) {
  return activation_masked(x, positive(x), slope);
}

// df/dx * grad = x > 0 ? grad : a * grad, with the sign test given (the mask
// of positive(x), or one read off a saved sign mask)
template <class M, class V>
ACTX_HOST_DEVICE inline V activation_grad_masked(
    V grad,
    M positive_x,
    V slope) {
  return select(positive_x, grad, grad * slope);
}
template <class V>
ACTX_HOST_DEVICE inline V activation_grad(V grad, V x, V slope) {
  return activation_grad_masked(grad, positive(x), slope);
}

// df/da * grad = x > 0 ? 0 : x * grad (`x` may be the output a * x, whose sum
// is divided by a after)
template <class M, class V>
ACTX_HOST_DEVICE inline V slope_grad_masked(V grad, M positive_x, V x) {
  return select(positive_x, zero_like(x), x * grad);
}
template <class V>
ACTX_HOST_DEVICE inline V slope_grad(V grad, V x) {
  return slope_grad_masked(grad, positive(x), x);
}

// clamp(v, low, high) as torch.clamp rounds it: NaN stays NaN (it compares
// false both ways), and v where it equals a bound (-0.0 and 0.0 included).
// Vector types with min/max instructions of those semantics overload it.
template <class V>
ACTX_HOST_DEVICE inline V clamp_between(V v, V low, V high) {
  return select(greater(v, high), high, select(greater(low, v), low, v));
}

// ---- The formulas ----
// Each element has x and its parameter p: per channel, or one for all. A
// formula F gives, with k = F::consts<V>(scalars), its scalars as V:
//   s = F::sign(x, p, k)            the branch the element takes (the bit a
//                                   forward keeps for the backward)
//   y = F::forward(x, s, p, k)
//   F::saturated(x, s, p, k)        where kSaturation: the element was clamped
//                                   (a second bit kept)
//   gx = F::grad_input<kSat>(g, s, sat, p, k)    dL/dx, from the branch (and
//                                   the saturation, with kSat)
//   F::param_grad(g, gx, s, x, p, k)   the element's term of dL/dp (x only
//                                   read where kParamGradReadsX)
// Half types are computed in float, and the result rounded once.

// prelu and leaky_relu: y = x > 0 ? x : a * x, a the slope.
struct PreluFormula {
  static constexpr Formula kId = Formula::kPrelu;
  static constexpr bool kSaturation = false;
  static constexpr bool kParamGradReadsX = true;
  template <class V>
  struct Consts {};
  template <class V>
  ACTX_HOST_DEVICE static Consts<V> consts(const FormulaScalars&) {
    return {};
  }
  template <class V>
  ACTX_HOST_DEVICE static auto sign(V x, V, const Consts<V>&) {
    return positive(x);
  }
  template <class V, class M>
  ACTX_HOST_DEVICE static V forward(V x, M s, V a, const Consts<V>&) {
    return activation_masked(x, s, a);
  }
  template <bool kSat, class V, class M>
  ACTX_HOST_DEVICE static V grad_input(V g, M s, M, V a, const Consts<V>&) {
    return activation_grad_masked(g, s, a);
  }
  template <class V, class M>
  ACTX_HOST_DEVICE static V param_grad(V g, V, M s, V x, V, const Consts<V>&) {
    return slope_grad_masked(g, s, x);
  }
};

// bias_leaky_relu (StyleGAN2's fused bias + leaky ReLU + gain, and NVlabs'
// clamp): t = x + b; y = clamp(gain * (t > 0 ? t : alpha * t), -c, c), the
// products rounded as the composition add -> leaky_relu -> mul -> clamp rounds
// them in float. Scalars: alpha (values[0]), gain (values[1]), c (values[2];
// negative: no clamp). dL/dx = the chain rule through the same steps,
// (g * gain) * alpha on the slope's branch, and 0 where the output was clamped:
// only -c < v < c passes, so neither c itself nor NaN does (the minimum-norm
// subgradient, torch.clamp's backward from torch 2.15, and NVlabs' kernel);
// dL/db sums dL/dx.
struct BiasLeakyReluFormula {
  static constexpr Formula kId = Formula::kBiasLeakyRelu;
  static constexpr bool kSaturation = true;
  static constexpr bool kParamGradReadsX = false;
  template <class V>
  struct Consts {
    V alpha;
    V gain;
    V high;
    V low;
    bool clamp;
  };
  template <class V>
  ACTX_HOST_DEVICE static Consts<V> consts(const FormulaScalars& s) {
    const double c = s.values[2];
    return {
        splat<V>(s.values[0]),
        splat<V>(s.values[1]),
        splat<V>(c),
        splat<V>(-c),
        c >= 0.0};
  }
  template <class V>
  ACTX_HOST_DEVICE static auto sign(V x, V b, const Consts<V>&) {
    return positive(x + b);
  }
  // gain * leaky_relu(x + b), before the clamp.
  template <class V, class M>
  ACTX_HOST_DEVICE static V scaled(V x, M s, V b, const Consts<V>& k) {
    const V t = x + b;
    return select(s, t, t * k.alpha) * k.gain;
  }
  template <class V, class M>
  ACTX_HOST_DEVICE static M saturated(V x, M s, V b, const Consts<V>& k) {
    const V v = scaled(x, s, b, k);
    return either(not_less(v, k.high), not_less(k.low, v));
  }
  template <class V, class M>
  ACTX_HOST_DEVICE static V forward(V x, M s, V b, const Consts<V>& k) {
    const V v = scaled(x, s, b, k);
    return k.clamp ? clamp_between(v, k.low, k.high) : v;
  }
  template <bool kSat, class V, class M>
  ACTX_HOST_DEVICE static V grad_input(V g, M s, M sat, V, const Consts<V>& k) {
    const V through_gain = g * k.gain;
    const V d = select(s, through_gain, through_gain * k.alpha);
    if constexpr (kSat) {
      return select(sat, zero_like(d), d);
    } else {
      return d;
    }
  }
  template <class V, class M>
  ACTX_HOST_DEVICE static V param_grad(V, V gx, M, V, V, const Consts<V>&) {
    return gx;
  }
};

// Calls f(F{}) for the formula F whose kId is `id`.
template <class... Fs>
struct FormulaList {
  template <class Fn>
  ACTX_HOST_DEVICE static void visit(Formula id, Fn&& f) {
    ((Fs::kId == id ? (f(Fs{}), true) : false) || ...);
  }
};
using AllFormulas = FormulaList<PreluFormula, BiasLeakyReluFormula>;

#endif // ACTX_FORMULA_IDS_ONLY
