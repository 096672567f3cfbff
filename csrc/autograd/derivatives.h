#pragma once

// The derivatives of every actx operator: the backward formula of each graph
// node (node.h), with named saved tensors, and the forward-mode tangents. The
// formulas call the actx operators through the dispatcher, and those have
// Autograd kernels of their own: double backward, and forward over reverse
// (hessians), come from the same code. Which formula a call records, and what
// it keeps, is decided in activation_autograd.cpp.
//
// torch's forward-mode formulas for prelu count x == 0 with the positive side
// (x >= 0) where its backward formulas do not (x > 0); actx follows both, so
// that its tangents equal torch's at 0 as well.

#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

#include "actx/actx.h"
#include "autograd/node.h"
#include "bits.h"
#include "checks.h"
#include "private_ops.h"

namespace actx::autograd {

// What a prelu node keeps beside its output and weight (bits.h).
enum class PreluBits { kSign, kParity };

// ---- Helpers ----

// a + b where an undefined tensor stands for zero (a tangent or gradient that
// does not exist).
inline at::Tensor add_defined(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined()) {
    return b;
  }
  return b.defined() ? a + b : a;
}

// `shape`: the weight's shape aligned to the input (prelu_weight_sym_shape),
// computed once per formula. A weight (or its gradient or tangent) reshaped to
// it broadcasts against the input.

// Sums a term of the weight gradient to the weight's shape and dtype.
inline at::Tensor sum_to_weight(
    const at::Tensor& term,
    const SymDimVector& shape,
    const at::Tensor& weight) {
  return term.sum_to_size_symint(shape)
      .reshape_symint(weight.sym_sizes())
      .to(weight.scalar_type());
}

// The tangent of t at the forward-AD level (undefined: none), and t's primal
// value.
inline at::Tensor tangent_of(const at::Tensor& t) {
  return t.defined() ? t._fw_grad(/*level=*/0) : at::Tensor();
}
inline at::Tensor primal_of(const at::Tensor& t) {
  return t._fw_primal(/*level=*/0);
}

// The tangent of x > 0 ? a : w * a (prelu's output with a = x, its grad_input
// with a = grad_output), given the tangents a_t and w_t (either may be
// undefined): x >= 0 ? a_t : w * a_t + w_t * a, with non_negative = (x >= 0).
// a, w are primals, w in the broadcast `shape`.
inline at::Tensor masked_slope_tangent(
    const at::Tensor& non_negative,
    const at::Tensor& a,
    const at::Tensor& a_t,
    const at::Tensor& w,
    const at::Tensor& w_t,
    const SymDimVector& shape) {
  const at::Tensor on_negative = add_defined(
      a_t.defined() ? w.reshape_symint(shape) * a_t : at::Tensor(),
      w_t.defined() ? w_t.reshape_symint(shape) * a : at::Tensor());
  return at::where(
      non_negative, a_t.defined() ? a_t : at::zeros_like(a), on_negative);
}

// x > 0 as a backward from bits knows it: from the mask, or (a positive
// weight) y > 0.
inline at::Tensor positive_input(
    PreluBits kind,
    const at::Tensor& bits,
    const at::Tensor& y) {
  return kind == PreluBits::kSign ? unpack_bits_reference(bits, y) : y.gt(0);
}

// ---- leaky_relu ----

// leaky_relu's and leaky_relu_'s node. `self` is x, or (kFromOutput) the
// output, whose sign is x's for a slope >= 0 (self_is_result).
template <bool kFromOutput>
struct LeakyReluFormula {
  static constexpr const char* kName = kFromOutput
      ? "actx::LeakyReluBackwardFromOutput"
      : "actx::LeakyReluBackward";
  template <class T>
  struct Saved {
    T self;
    ACTX_SLOTS(self)
  };
  struct Constants {
    at::Scalar negative_slope;
    bool self_is_result = kFromOutput;
    ACTX_SLOTS(negative_slope, self_is_result)
  };
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor()};
    }
    return {actx::leaky_relu_backward(
        grads[0], saved.self, c.negative_slope, c.self_is_result)};
  }
};

// leaky_relu_backward(grad_output, self, ...) is linear in grad_output with the
// same mask; its derivative in self is zero almost everywhere (torch's rule).
struct LeakyReluBackwardFormula {
  static constexpr const char* kName = "actx::LeakyReluBackwardBackward";
  template <class T>
  using Saved = LeakyReluFormula<false>::Saved<T>;
  using Constants = LeakyReluFormula<false>::Constants;
  // Inputs: grad_output, self.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    variable_list result =
        LeakyReluFormula<false>::backward(saved, c, grads); // grad_output's
    result.emplace_back();                                  // self's
    return result;
  }
};

// leaky_relu's node when it keeps the sign mask of x alone. The mask's bits
// belong to the output's elements in its memory order: the incoming gradient is
// laid out as the output (its `strides`) first, which it usually already is.
struct LeakyReluFromMaskFormula {
  static constexpr const char* kName = "actx::LeakyReluBackwardFromMask";
  template <class T>
  struct Saved {
    T mask;
    ACTX_SLOTS(mask)
  };
  struct Constants {
    at::Scalar negative_slope;
    std::vector<int64_t> strides;
    ACTX_SLOTS(negative_slope, strides)
  };
  // Inputs: self.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor()};
    }
    const at::Tensor& g = grads[0];
    // new_empty_strided, not at::empty_strided: under vmap (batched
    // gradients) it gives each sample these strides.
    const at::Tensor laid_out = g.strides() == at::IntArrayRef(c.strides)
        ? g
        : g.new_empty_strided(g.sizes(), c.strides).copy_(g);
    return {internal::leaky_relu_backward_from_mask(
        laid_out, saved.mask, c.negative_slope)};
  }
};

// _leaky_relu_backward_from_mask is linear in grad_output with the same mask
// (which is not differentiable), and its output is laid out as its input.
struct LeakyReluBackwardFromMaskFormula {
  static constexpr const char* kName =
      "actx::LeakyReluBackwardFromMaskBackward";
  template <class T>
  using Saved = LeakyReluFromMaskFormula::Saved<T>;
  using Constants = LeakyReluFromMaskFormula::Constants;
  // Inputs: grad_output.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    return LeakyReluFromMaskFormula::backward(saved, c, grads);
  }
};

// The tangent of leaky_relu(self), and of leaky_relu_backward(g, self, ...) in
// g: the operator applied to the tangent.
inline at::Tensor leaky_relu_tangent(
    const at::Tensor& self_t,
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  return actx::leaky_relu_backward(
      self_t, primal_of(self), negative_slope, false);
}

// ---- prelu ----

// prelu's node when it keeps its input.
struct PreluFormula {
  static constexpr const char* kName = "actx::PreluBackward";
  template <class T>
  struct Saved {
    T self;
    T weight;
    ACTX_SLOTS(self, weight)
  };
  using Constants = NoConstants;
  // Inputs: self, weight.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants&,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    auto [grad_input, grad_weight] =
        actx::prelu_backward(grads[0], saved.self, saved.weight);
    return {grad_input, grad_weight};
  }
};

// prelu_backward_from_mask or prelu_backward_from_parity.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits(
    PreluBits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return kind == PreluBits::kSign
      ? internal::prelu_backward_from_mask(grad_output, bits, result, weight)
      : internal::prelu_backward_from_parity(grad_output, bits, result, weight);
}

// prelu's node when it keeps its output, its weight and one bit per element:
// the sign of x (the weight gradient takes x = y / w where x <= 0), or the
// parity bits from which x is recovered.
template <PreluBits kKind>
struct PreluFromBitsFormula {
  static constexpr const char* kName = kKind == PreluBits::kSign
      ? "actx::PreluBackwardFromMask"
      : "actx::PreluBackwardFromParity";
  template <class T>
  struct Saved {
    T result;
    T bits;
    T weight;
    ACTX_SLOTS(result, bits, weight)
  };
  using Constants = NoConstants;
  // Inputs: self, weight.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants&,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    auto [grad_input, grad_weight] = prelu_backward_from_bits(
        kKind, grads[0], saved.bits, saved.result, saved.weight);
    return {grad_input, grad_weight};
  }
};

// The tangent of prelu(self, weight).
inline at::Tensor prelu_tangent(
    const at::Tensor& self,
    const at::Tensor& weight,
    const at::Tensor& self_t,
    const at::Tensor& weight_t) {
  const at::Tensor x = primal_of(self);
  const at::Tensor w = primal_of(weight);
  return masked_slope_tangent(
      x >= 0, x, self_t, w, weight_t, prelu_weight_sym_shape(x, w, "prelu"));
}

// The derivatives of prelu_backward(g, x, w) (prelu's second derivatives), in
// ATen operations, themselves differentiable. prelu_backward computes
//   grad_input  = x > 0 ? g : w * g
//   grad_weight = sum over the broadcast dims of (x > 0 ? 0 : x * g)
// Either incoming gradient may be undefined (zero); its terms are then left
// out.
struct PreluBackwardFormula {
  static constexpr const char* kName = "actx::PreluBackwardBackward";
  template <class T>
  struct Saved {
    T grad_output;
    T self;
    T weight;
    ACTX_SLOTS(grad_output, self, weight)
  };
  using Constants = NoConstants;
  // Inputs: grad_output, self, weight.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants&,
      const variable_list& grads) {
    const at::Tensor& g = saved.grad_output;
    const at::Tensor& x = saved.self;
    const at::Tensor& weight = saved.weight;
    const at::Tensor& gg_input = grads[0];  // d loss / d grad_input
    const at::Tensor& gg_weight = grads[1]; // d loss / d grad_weight
    if (!gg_input.defined() && !gg_weight.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const SymDimVector shape =
        prelu_weight_sym_shape(x, weight, "prelu_backward");
    const at::Tensor w = weight.reshape_symint(shape);
    const at::Tensor gg_w =
        gg_weight.defined() ? gg_weight.reshape_symint(shape) : at::Tensor();
    const at::Tensor positive = x > 0;
    // d/dg: grad_input gives (x > 0 ? gg_input : w * gg_input); grad_weight
    // gives x * gg_w on x <= 0.
    const at::Tensor on_negative = add_defined(
        gg_input.defined() ? w * gg_input : at::Tensor(),
        gg_w.defined() ? x * gg_w : at::Tensor());
    const at::Tensor d_grad =
        at::where(
            positive,
            gg_input.defined() ? gg_input : at::zeros_like(g),
            on_negative)
            .to(g.scalar_type());
    // d/dx: only grad_weight depends on x (away from 0): g * gg_w on x <= 0.
    const at::Tensor d_self = gg_w.defined()
        ? at::where(positive, at::zeros_like(x), g * gg_w).to(x.scalar_type())
        : at::Tensor();
    // d/dw: only grad_input depends on w: g * gg_input on x <= 0, summed to the
    // weight's shape.
    const at::Tensor d_weight = gg_input.defined()
        ? sum_to_weight(
              at::where(positive, at::zeros_like(x), g * gg_input),
              shape,
              weight)
        : at::Tensor();
    return {d_grad, d_self, d_weight};
  }
};

// The tangents of prelu_backward(g, x, w)'s two outputs.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_tangents(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  const at::Tensor g_t = tangent_of(grad_output);
  const at::Tensor x_t = tangent_of(self);
  const at::Tensor w_t = tangent_of(weight);
  at::Tensor grad_input_t, grad_weight_t;
  if (!g_t.defined() && !x_t.defined() && !w_t.defined()) {
    return {grad_input_t, grad_weight_t};
  }
  const at::Tensor g = primal_of(grad_output);
  const at::Tensor x = primal_of(self);
  const at::Tensor w = primal_of(weight);
  const SymDimVector shape = prelu_weight_sym_shape(x, w, "prelu_backward");
  // grad_input = x > 0 ? g : w * g (x's tangent contributes zero almost
  // everywhere).
  if (g_t.defined() || w_t.defined()) {
    grad_input_t = masked_slope_tangent(x >= 0, g, g_t, w, w_t, shape);
  }
  // grad_weight = sum of (x > 0 ? 0 : x * g), whose tangent is the sum of x_t *
  // g + x * g_t on x < 0.
  if (g_t.defined() || x_t.defined()) {
    const at::Tensor term = add_defined(
        x_t.defined() ? x_t * g : at::Tensor(),
        g_t.defined() ? x * g_t : at::Tensor());
    grad_weight_t =
        sum_to_weight(at::where(x >= 0, at::zeros_like(term), term), shape, w);
  }
  return {grad_input_t, grad_weight_t};
}

// The derivatives of prelu_backward_from_mask(g, mask, y, w) and
// prelu_backward_from_parity(g, parity, y, w), where y = w * x is prelu's
// output and m is x > 0:
//   grad_input  = m ? g : w * g
//   grad_weight = (sum over the broadcast dims of (m ? 0 : g * y)) / w
// (from parity bits the kernels sum g * x with x recovered exactly; its
// derivatives are these).
template <PreluBits kKind>
struct PreluBackwardFromBitsFormula {
  static constexpr const char* kName = kKind == PreluBits::kSign
      ? "actx::PreluBackwardFromMaskBackward"
      : "actx::PreluBackwardFromParityBackward";
  template <class T>
  struct Saved {
    T grad_output;
    T bits;
    T result;
    T weight;
    ACTX_SLOTS(grad_output, bits, result, weight)
  };
  using Constants = NoConstants;
  // Inputs: grad_output, result, weight.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants&,
      const variable_list& grads) {
    const at::Tensor& g = saved.grad_output;
    const at::Tensor& y = saved.result;
    const at::Tensor& weight = saved.weight;
    const at::Tensor& gg_input = grads[0];
    const at::Tensor& gg_weight = grads[1];
    if (!gg_input.defined() && !gg_weight.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const SymDimVector shape =
        prelu_weight_sym_shape(y, weight, "_prelu_backward_from_mask");
    const at::Tensor w = weight.reshape_symint(shape);
    const at::Tensor positive = positive_input(kKind, saved.bits, y);
    // gg_weight / w, broadcast: the weight gradient's derivative per g * y.
    const at::Tensor per_term = gg_weight.defined()
        ? gg_weight.reshape_symint(shape) / w
        : at::Tensor();
    const at::Tensor on_negative = add_defined(
        gg_input.defined() ? w * gg_input : at::Tensor(),
        per_term.defined() ? y * per_term : at::Tensor());
    const at::Tensor d_grad =
        at::where(
            positive,
            gg_input.defined() ? gg_input : at::zeros_like(g),
            on_negative)
            .to(g.scalar_type());
    const at::Tensor d_result = per_term.defined()
        ? at::where(positive, at::zeros_like(y), g * per_term)
              .to(y.scalar_type())
        : at::Tensor();
    // d/dw: g * gg_input where x <= 0 (from grad_input), and -gg_weight *
    // grad_weight / w (grad_weight is a sum divided by w).
    at::Tensor d_weight = gg_input.defined()
        ? at::where(positive, at::zeros_like(g), g * gg_input)
        : at::Tensor();
    if (per_term.defined()) {
      d_weight = add_defined(
          d_weight,
          at::where(positive, at::zeros_like(y), -(g * y) * per_term / w));
    }
    return {d_grad, d_result, sum_to_weight(d_weight, shape, weight)};
  }
};

// The tangents of prelu_backward_from_bits(g, bits, y, w)'s two outputs.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_tangents(
    PreluBits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const at::Tensor g_t = tangent_of(grad_output);
  const at::Tensor y_t = tangent_of(result);
  const at::Tensor w_t = tangent_of(weight);
  at::Tensor grad_input_t, grad_weight_t;
  if (!g_t.defined() && !y_t.defined() && !w_t.defined()) {
    return {grad_input_t, grad_weight_t};
  }
  const at::Tensor g = primal_of(grad_output);
  const at::Tensor y = primal_of(result);
  const at::Tensor w = primal_of(weight);
  const SymDimVector shape =
      prelu_weight_sym_shape(y, w, "_prelu_backward_from_mask");
  // torch's forward-mode formulas count x == 0 (y == 0) with the positive
  // side, as masked_slope_tangent does.
  const at::Tensor non_negative =
      positive_input(kind, primal_of(bits), y).logical_or(y == 0);
  const at::Tensor wb = w.reshape_symint(shape);
  if (g_t.defined() || w_t.defined()) {
    grad_input_t = masked_slope_tangent(non_negative, g, g_t, w, w_t, shape);
  }
  // d(sum of g * y / w) = sum of (g_t * y + g * y_t) / w - sum of g * y * w_t
  // / w^2, over x < 0.
  at::Tensor term = add_defined(
      g_t.defined() ? g_t * y : at::Tensor(),
      y_t.defined() ? g * y_t : at::Tensor());
  term = term.defined() ? term / wb : term;
  if (w_t.defined()) {
    term = add_defined(term, -(g * y) * w_t.reshape_symint(shape) / (wb * wb));
  }
  grad_weight_t = sum_to_weight(
      at::where(non_negative, at::zeros_like(term), term), shape, w);
  return {grad_input_t, grad_weight_t};
}

// ---- bias_leaky_relu ----
// y = clamp(gain * leaky_relu(x + b, alpha), -c, c) is piecewise linear in x
// and b: dL/dx = g * d, d fixed by each element's branch and saturation, dL/db
// its sum along the bias's dim, and the backward operators are linear in g
// (their derivatives in x and b vanish almost everywhere), so every derivative
// of any order is one of them applied to a gradient.

// The scalars of every bias_leaky_relu node.
struct BiasLeakyReluConstants {
  at::Scalar negative_slope;
  at::Scalar gain;
  std::optional<at::Scalar> clamp;
  int64_t dim = 1;
  ACTX_SLOTS(negative_slope, gain, clamp, dim)
};

// g plus the bias's gradient `g_bias` broadcast along `dim` to `sizes` (either
// undefined: zero), in `dtype`: the gradient of x + b's terms.
inline at::Tensor with_bias_term(
    const at::Tensor& g,
    const at::Tensor& g_bias,
    c10::SymIntArrayRef sizes,
    int64_t dim,
    at::ScalarType dtype) {
  if (!g_bias.defined() || g_bias.sym_numel() == 0) {
    return g;
  }
  const auto nd = static_cast<int64_t>(sizes.size());
  SymDimVector shape(nd, c10::SymInt(1));
  const int64_t d = dim < 0 ? dim + nd : dim;
  shape[d] = sizes[d];
  const at::Tensor b = g_bias.reshape_symint(shape);
  return (g.defined() ? g + b : b.expand_symint(sizes)).to(dtype);
}

// bias_leaky_relu's node when it keeps x (and the bias).
struct BiasLeakyReluFormula {
  static constexpr const char* kName = "actx::BiasLeakyReluBackward";
  template <class T>
  struct Saved {
    T self;
    T bias;
    ACTX_SLOTS(self, bias)
  };
  using Constants = BiasLeakyReluConstants;
  // Inputs: self, bias.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    const std::optional<at::Tensor> bias = saved.bias.defined()
        ? std::optional<at::Tensor>(saved.bias)
        : std::nullopt;
    auto [grad_input, grad_bias] = actx::bias_leaky_relu_backward(
        grads[0], saved.self, bias, c.negative_slope, c.gain, c.clamp, c.dim);
    return {grad_input, bias ? grad_bias : at::Tensor()};
  }
};

// bias_leaky_relu's node when it keeps the branch (and saturation) bits; the
// bits belong to the output's elements in its memory order (its `strides`).
struct BiasLeakyReluFromBitsFormula {
  static constexpr const char* kName = "actx::BiasLeakyReluBackwardFromBits";
  template <class T>
  struct Saved {
    T sign;
    T saturation;
    T bias;
    ACTX_SLOTS(sign, saturation, bias)
  };
  struct Constants {
    at::Scalar negative_slope;
    at::Scalar gain;
    std::optional<at::Scalar> clamp;
    int64_t dim = 1;
    // The output's layout and dtype.
    std::vector<int64_t> sizes;
    std::vector<int64_t> strides;
    int64_t dtype = 0;
    ACTX_SLOTS(negative_slope, gain, clamp, dim, sizes, strides, dtype)
  };
  // The operator's two gradients from g, laid out as the output first.
  static std::tuple<at::Tensor, at::Tensor> grads_of(
      const at::Tensor& g,
      const Saved<at::Tensor>& saved,
      const Constants& c) {
    // new_empty_strided: under vmap (batched gradients) it gives each sample
    // these strides.
    const at::Tensor laid_out = g.strides() == at::IntArrayRef(c.strides)
        ? g
        : g.new_empty_strided(g.sizes(), c.strides).copy_(g);
    const std::optional<at::Tensor> bias = saved.bias.defined()
        ? std::optional<at::Tensor>(saved.bias)
        : std::nullopt;
    return internal::bias_leaky_relu_backward_from_bits(
        laid_out,
        saved.sign,
        saved.saturation,
        bias,
        c.negative_slope,
        c.gain,
        c.clamp,
        c.dim);
  }
  // Inputs: self, bias.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    auto [grad_input, grad_bias] = grads_of(grads[0], saved, c);
    return {grad_input, saved.bias.defined() ? grad_bias : at::Tensor()};
  }
};

// The node of bias_leaky_relu_backward(g, x, b, ...): linear in g.
struct BiasLeakyReluBackwardFormula {
  static constexpr const char* kName = "actx::BiasLeakyReluBackwardBackward";
  template <class T>
  using Saved = BiasLeakyReluFormula::Saved<T>;
  using Constants = BiasLeakyReluConstants;
  // Inputs: grad_output, self, bias.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    const at::Tensor g = with_bias_term(
        grads[0],
        grads[1],
        saved.self.sym_sizes(),
        c.dim,
        saved.self.scalar_type());
    if (!g.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const variable_list d = BiasLeakyReluFormula::backward(saved, c, {g});
    return {d[0], at::Tensor(), at::Tensor()};
  }
};

// The node of _bias_leaky_relu_backward_from_bits(g, bits, ...): linear in g.
struct BiasLeakyReluBackwardFromBitsFormula {
  static constexpr const char* kName =
      "actx::BiasLeakyReluBackwardFromBitsBackward";
  template <class T>
  using Saved = BiasLeakyReluFromBitsFormula::Saved<T>;
  using Constants = BiasLeakyReluFromBitsFormula::Constants;
  // Inputs: grad_output.
  static variable_list backward(
      const Saved<at::Tensor>& saved,
      const Constants& c,
      const variable_list& grads) {
    if (!grads[0].defined() && !grads[1].defined()) {
      return {at::Tensor()};
    }
    const std::vector<c10::SymInt> sizes(c.sizes.begin(), c.sizes.end());
    const at::Tensor g = with_bias_term(
        grads[0], grads[1], sizes, c.dim, static_cast<at::ScalarType>(c.dtype));
    return {std::get<0>(BiasLeakyReluFromBitsFormula::grads_of(g, saved, c))};
  }
};

} // namespace actx::autograd
