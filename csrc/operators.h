#pragma once

// Every operator's body, once for all backends:
// - its Meta kernel (checks, and outputs with the right shapes, dtypes and
//   strides, no data), which fake tensors (torch.compile, torch.export) run;
// - its computing body, templated on a backend (CPU, CUDA): the same checks
//   and outputs, then the layout of the data and the call of the backend's
//   element loops;
// - the registration of both (register_meta, register_operators<Backend>),
//   which each backend's file calls in its TORCH_LIBRARY_IMPL.
// A computing backend is a class with
//   static constexpr bool kBitKernels; // its loops write and read the bits
//                                      // of bits.h (else ATen computes them)
//   static void forward(const ForwardCall&);
//   static void backward(const BackwardCall&);

#include <ATen/ATen.h>
#include <torch/library.h>

#include "bits.h"
#include "checks.h"
#include "layout.h"

#define ACTX_FORMULA_IDS_ONLY
#include "activation_formulas.h"
#undef ACTX_FORMULA_IDS_ONLY

namespace actx {

// ---- What a backend's element loops are asked to compute ----

// The parameter of every element: per channel (element i of a buffer in memory
// order uses per_channel[(i / inner) % channels]: prelu's weight) or, where
// `per_channel` is undefined, one scalar (leaky_relu's slope). A per-channel
// parameter is contiguous, in the buffer's channel order, of the input's dtype
// or (float32, with a float16/bfloat16 input) the compute dtype: the loops
// convert as they read, which spares a call the cast kernels.
struct Params {
  at::Tensor per_channel;
  at::Scalar scalar;
  int64_t channels = 1;
  int64_t inner = 1;
};

// What a forward writes beside its output, and what a backward reads in place
// of x (bits.h).
enum class Bits {
  kNone,   // forward: nothing; backward: x itself
  kSign,   // forward: the branch each element takes (x > 0 for prelu), and the
           // saturation where the formula has one; backward: those, and (prelu)
           // the output for the weight gradient (x = y / w where x <= 0)
  kParity, // forward: x's lowest storage bit, and whether the backward
           // recovers x; backward: x recovered from the prelu output (prelu)
};

// y = f(x, p) of `formula` (activation_formulas.h) over dense tensors laid out
// alike (y may be x: in place).
struct ForwardCall {
  Formula formula = Formula::kPrelu;
  FormulaScalars scalars;
  at::Tensor x;
  at::Tensor y;
  Params params;
  Bits bits = Bits::kNone;
  at::Tensor bits_out;       // kSign, kParity: one bit per element, written
  at::Tensor saturation_out; // kSign: written where defined
  at::Tensor recoverable;    // kParity: a 0-dim bool, set to the verdict
};

// grad_input = dL/dx and, where grad_param is defined, grad_param[c] = the sum
// over channel c of dL/dp, over dense tensors laid out alike.
struct BackwardCall {
  Formula formula = Formula::kPrelu;
  FormulaScalars scalars;
  at::Tensor grad_output;
  at::Tensor grad_input;
  Bits source = Bits::kNone;
  at::Tensor x;          // kNone
  at::Tensor y;          // kSign (prelu's weight gradient only), kParity
  at::Tensor bits;       // kSign, kParity
  at::Tensor saturation; // kSign, where the forward wrote it
  Params params;
  at::Tensor grad_param; // `channels` elements of the parameter's dtype
};

// Whether a weight or weight-gradient buffer holds the compute type (else the
// input's type).
inline bool holds_compute_type(const at::Tensor& weight, const at::Tensor& x) {
  return weight.scalar_type() == compute_dtype(x.scalar_type());
}

namespace detail {

inline at::Tensor empty_output(const at::Tensor& like) {
  return at::empty_like(like, at::MemoryFormat::Preserve);
}

inline void check_leaky_relu_args(
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    const char* op) {
  check_floating_input(self, op, "self");
  check_real(negative_slope, op, "negative_slope");
}

inline void check_self_is_result(
    const at::Scalar& negative_slope,
    bool self_is_result) {
  TORCH_CHECK(
      !self_is_result || negative_slope.toDouble() >= 0.0,
      "actx::leaky_relu_backward: with self_is_result=True the sign of the input is read off the "
      "output, which needs negative_slope >= 0; got negative_slope=",
      negative_slope,
      ". Use the out-of-place leaky_relu when the slope is negative.");
}

inline Params scalar_slope(const at::Scalar& s, int64_t numel) {
  Params params;
  params.scalar = s;
  params.inner = numel;
  return params;
}

// Whether a per-channel parameter's own element order is its order in the
// buffer that `geo` describes (the dims it varies along come outermost first
// there too), so that its memory serves as it is.
inline bool in_param_order(
    at::IntArrayRef param_shape,
    const ChannelGeometry& geo) {
  int64_t previous = -1;
  for (const int64_t d : geo.order) {
    if (param_shape[d] != 1) {
      if (d < previous) {
        return false;
      }
      previous = d;
    }
  }
  return true;
}

// A per-channel parameter as the loops read it: contiguous in the buffer's
// channel order. Usually that is the parameter itself, with no operator called
// at all (a small call is host-bound).
inline Params channel_params(
    const at::Tensor& param,
    at::IntArrayRef param_shape,
    const ChannelGeometry& geo) {
  Params params;
  params.per_channel = in_param_order(param_shape, geo) && param.is_contiguous()
      ? param
      : param.reshape(param_shape).permute(geo.order).contiguous();
  params.channels = geo.channels;
  params.inner = geo.inner;
  return params;
}

// `t` as the buffer that `geo` describes for the output `out`: laid out like
// `out`, or permuted to geo.order and contiguous.
inline at::Tensor in_buffer(
    const at::Tensor& t,
    const ChannelGeometry& geo,
    const at::Tensor& out) {
  return geo.memory_order ? with_layout_of(t, out)
                          : t.permute(geo.order).contiguous();
}

// Runs launch(buffer) with a buffer of the output's values: `out` itself when
// geo walks it in memory order, else a permuted buffer copied into `out` after.
template <class Launch>
void into_output(
    const ChannelGeometry& geo,
    const at::Tensor& out,
    Launch launch) {
  if (geo.memory_order) {
    launch(out);
    return;
  }
  const at::Tensor buffer =
      at::empty_like(out.permute(geo.order), at::MemoryFormat::Contiguous);
  launch(buffer);
  out.permute(geo.order).copy_(buffer);
}

// Runs launch(gradient buffer) for a per-channel parameter's gradient: the
// loops write it in channel order, straight into `grad_param` when that is the
// parameter's own order, else into a buffer permuted back after.
template <class Launch>
void into_param_gradient(
    const at::Tensor& grad_param,
    at::IntArrayRef param_shape,
    const ChannelGeometry& geo,
    Launch launch) {
  if (in_param_order(param_shape, geo)) {
    launch(grad_param);
    return;
  }
  const at::Tensor buffer = at::empty({geo.channels}, grad_param.options());
  launch(buffer);
  DimVector sizes_in_order;
  for (const int64_t d : geo.order) {
    sizes_in_order.push_back(param_shape[d]);
  }
  grad_param.view(param_shape)
      .permute(geo.order)
      .copy_(buffer.view(sizes_in_order));
}

// The forward of a per-channel operator over `out` (empty, laid out as
// empty_output(self)): `base` names the formula and its scalars, `param` is the
// per-channel parameter aligned to self by `param_shape` (undefined: `scalar`
// for all), and `kind` the bits to write beside the output. A backend's bit
// kernels write them when they walk the output in memory order; returns
// whether they did (else the caller computes them with ATen: a permuted buffer,
// a parameter along dims apart in memory, or a backend without bit kernels).
template <class Backend>
bool channel_forward(
    const ForwardCall& base,
    const at::Tensor& self,
    const at::Tensor& out,
    const at::Tensor& param,
    at::IntArrayRef param_shape,
    const at::Scalar& scalar,
    Bits kind,
    const at::Tensor& bits,
    const at::Tensor& saturation,
    const at::Tensor& recoverable) {
  const ChannelGeometry geo = plan_channels(out, param_shape);
  const bool in_loops =
      kind != Bits::kNone && Backend::kBitKernels && geo.memory_order;
  into_output(geo, out, [&](const at::Tensor& buffer) {
    ForwardCall call = base;
    call.x = in_buffer(self, geo, out);
    call.y = buffer;
    call.params = param.defined() ? channel_params(param, param_shape, geo)
                                  : scalar_slope(scalar, out.numel());
    if (in_loops) {
      call.bits = kind;
      call.bits_out = bits;
      call.saturation_out = saturation;
      call.recoverable = recoverable;
    }
    Backend::forward(call);
  });
  return in_loops;
}

// The backward of a per-channel operator from x: grad_input, and the
// parameter's gradient into `grad_param` where it is defined.
template <class Backend>
void channel_backward(
    const BackwardCall& base,
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& grad_input,
    const at::Tensor& param,
    at::IntArrayRef param_shape,
    const at::Scalar& scalar,
    const at::Tensor& grad_param) {
  const ChannelGeometry geo = plan_channels(grad_input, param_shape);
  auto launch = [&](const at::Tensor& param_grad_buffer) {
    into_output(geo, grad_input, [&](const at::Tensor& buffer) {
      BackwardCall call = base;
      call.grad_output = in_buffer(grad_output, geo, grad_input);
      call.grad_input = buffer;
      call.x = in_buffer(self, geo, grad_input);
      call.params = param.defined() ? channel_params(param, param_shape, geo)
                                    : scalar_slope(scalar, grad_input.numel());
      call.grad_param = param_grad_buffer;
      Backend::backward(call);
    });
  };
  if (grad_param.defined()) {
    into_param_gradient(grad_param, param_shape, geo, launch);
  } else {
    launch(at::Tensor());
  }
}

// prelu's forward, writing `kind` bits beside its output (kNone: none).
template <class Backend>
at::Tensor prelu_forward(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op,
    Bits kind,
    at::Tensor& bits,
    at::Tensor& recoverable) {
  check_floating_input(self, op, "self");
  if (kind == Bits::kParity) {
    // The private operator's own limit (autograd asks no float64 of it).
    check_parity_dtype(self, "_prelu_with_parity", "self");
    recoverable = at::empty({}, self.options().dtype(at::kBool));
  }
  const DimVector weight_shape = prelu_weight_shape(self, weight, op);
  at::Tensor out = empty_output(self);
  if (kind != Bits::kNone) {
    bits = empty_bits(out);
  }
  if (out.numel() == 0) {
    if (kind == Bits::kParity) {
      recoverable.fill_(true);
    }
    return out;
  }
  const bool in_loops = channel_forward<Backend>(
      ForwardCall{},
      self,
      out,
      weight,
      weight_shape,
      at::Scalar(),
      kind,
      bits,
      at::Tensor(),
      recoverable);
  if (kind == Bits::kSign && !in_loops) {
    bits.copy_(pack_bits_reference(self.gt(0), out));
  } else if (kind == Bits::kParity && !in_loops) {
    bits.copy_(pack_bits_reference(storage_parity(self), out));
    recoverable.copy_(
        recoverable_reference(self, bits, out, weight.reshape(weight_shape)));
  }
  return out;
}

// prelu_backward_from_mask in ATen operations: for the layouts the kernels do
// not walk in memory order, and for backends without bit kernels. The same
// formulas as the kernels, with the weight gradient summed in ATen's order.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask_reference(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight,
    at::IntArrayRef weight_shape) {
  const at::Tensor positive = unpack_bits_reference(mask, result);
  const at::Tensor w = weight.reshape(weight_shape);
  at::Tensor grad_input = empty_output(result);
  grad_input.copy_(at::where(
      positive, grad_output, (w * grad_output).to(grad_output.scalar_type())));
  const at::ScalarType acc = compute_dtype(result.scalar_type());
  at::Tensor terms = at::where(
      positive,
      at::zeros({}, result.options().dtype(acc)),
      grad_output.to(acc) * result.to(acc));
  const at::Tensor grad_weight =
      (terms.sum_to_size(weight_shape) / w.to(acc)).to(weight.scalar_type());
  return {grad_input, grad_weight.reshape(weight.sizes()).contiguous()};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op = "prelu_backward");

// The checks of the backward from bits but the weight's; returns the
// operator's name.
inline const char* check_backward_from_bits(
    Bits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result) {
  const bool sign = kind == Bits::kSign;
  const char* op =
      sign ? "_prelu_backward_from_mask" : "_prelu_backward_from_parity";
  check_floating_input(result, op, "result");
  if (!sign) {
    check_parity_dtype(result, op, "result");
  }
  check_like_self(grad_output, result, op, "grad_output");
  check_bits(bits, result, op, sign ? "mask" : "parity");
  return op;
}

// The backward from bits: from a sign mask (kSign) or parity bits (kParity).
template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits(
    Bits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const bool sign = kind == Bits::kSign;
  const char* op = check_backward_from_bits(kind, grad_output, bits, result);
  const DimVector weight_shape = prelu_weight_shape(result, weight, op);
  at::Tensor grad_input = empty_output(result);
  at::Tensor grad_weight = at::empty_like(weight, at::MemoryFormat::Contiguous);
  if (grad_input.numel() == 0) {
    grad_weight.zero_();
    return {grad_input, grad_weight};
  }
  const ChannelGeometry geo = plan_channels(grad_input, weight_shape);
  // The bits follow the output's memory: a permuted buffer (the weight along
  // dims apart in memory) goes through ATen, as it did in the forward.
  if (!Backend::kBitKernels || !geo.memory_order) {
    if (sign) {
      return prelu_backward_from_mask_reference(
          grad_output, bits, result, weight, weight_shape);
    }
    // x itself, then prelu's own backward.
    return prelu_backward<Backend>(
        grad_output,
        recover_input_reference(bits, result, weight.reshape(weight_shape)),
        weight,
        op);
  }
  into_param_gradient(
      grad_weight, weight_shape, geo, [&](const at::Tensor& weight_grad) {
        BackwardCall call;
        call.grad_output = with_layout_of(grad_output, grad_input);
        call.grad_input = grad_input;
        call.source = kind;
        call.y = with_layout_of(result, grad_input);
        call.bits = bits;
        call.params = channel_params(weight, weight_shape, geo);
        call.grad_param = weight_grad;
        Backend::backward(call);
      });
  return {grad_input, grad_weight};
}

} // namespace detail

// ---- The public operators ----

inline at::Tensor leaky_relu_meta(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu");
  return detail::empty_output(self);
}

template <class Backend>
at::Tensor leaky_relu(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  at::Tensor out = leaky_relu_meta(self, negative_slope);
  if (out.numel() > 0) {
    ForwardCall call;
    call.x = with_layout_of(self, out);
    call.y = out;
    call.params = detail::scalar_slope(negative_slope, out.numel());
    Backend::forward(call);
  }
  return out;
}

inline at::Tensor& leaky_relu__meta(
    at::Tensor& self,
    const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu_");
  check_no_internal_overlap(self, "leaky_relu_");
  return self;
}

template <class Backend>
at::Tensor& leaky_relu_(at::Tensor& self, const at::Scalar& negative_slope) {
  leaky_relu__meta(self, negative_slope);
  if (self.numel() > 0) {
    // A dense tensor is computed where it lies; any other goes through a dense
    // copy.
    const at::Tensor dense =
        self.is_non_overlapping_and_dense() ? self : self.contiguous();
    ForwardCall call;
    call.x = dense;
    call.y = dense;
    call.params = detail::scalar_slope(negative_slope, self.numel());
    Backend::forward(call);
    if (!dense.is_same(self)) {
      self.copy_(dense);
    }
  }
  return self;
}

inline at::Tensor leaky_relu_backward_meta(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu_backward");
  check_like_self(grad_output, self, "leaky_relu_backward", "grad_output");
  detail::check_self_is_result(negative_slope, self_is_result);
  return detail::empty_output(self);
}

template <class Backend>
at::Tensor leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  at::Tensor grad_input = leaky_relu_backward_meta(
      grad_output, self, negative_slope, self_is_result);
  if (grad_input.numel() > 0) {
    BackwardCall call;
    call.grad_output = with_layout_of(grad_output, grad_input);
    call.grad_input = grad_input;
    call.x = with_layout_of(self, grad_input);
    call.params = detail::scalar_slope(negative_slope, grad_input.numel());
    Backend::backward(call);
  }
  return grad_input;
}

inline at::Tensor prelu_meta(const at::Tensor& self, const at::Tensor& weight) {
  check_floating_input(self, "prelu", "self");
  prelu_weight_sym_shape(self, weight, "prelu");
  return detail::empty_output(self);
}

template <class Backend>
at::Tensor prelu(const at::Tensor& self, const at::Tensor& weight) {
  at::Tensor no_bits, no_verdict;
  return detail::prelu_forward<Backend>(
      self, weight, "prelu", Bits::kNone, no_bits, no_verdict);
}

inline std::tuple<at::Tensor, at::Tensor> prelu_backward_meta(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "prelu_backward", "self");
  check_like_self(grad_output, self, "prelu_backward", "grad_output");
  prelu_weight_sym_shape(self, weight, "prelu_backward");
  return {
      detail::empty_output(self),
      at::empty_like(weight, at::MemoryFormat::Contiguous)};
}

namespace detail {
template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op) {
  check_floating_input(self, op, "self");
  check_like_self(grad_output, self, op, "grad_output");
  const DimVector weight_shape = prelu_weight_shape(self, weight, op);
  at::Tensor grad_input = empty_output(self);
  at::Tensor grad_weight = at::empty_like(weight, at::MemoryFormat::Contiguous);
  if (grad_input.numel() == 0) {
    grad_weight.zero_();
    return {grad_input, grad_weight};
  }
  channel_backward<Backend>(
      BackwardCall{},
      grad_output,
      self,
      grad_input,
      weight,
      weight_shape,
      at::Scalar(),
      grad_weight);
  return {grad_input, grad_weight};
}
} // namespace detail

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  return detail::prelu_backward<Backend>(grad_output, self, weight);
}

// ---- bias_leaky_relu: y = clamp(gain * leaky_relu(x + bias, alpha), -c, c)
// ---- (activation_formulas.h, BiasLeakyReluFormula). The bias (optional) is
// 1-d, along `dim`; the backward operators return (grad_input, grad_bias),
// grad_bias of the bias's shape and dtype, or of 0 elements without a bias.

namespace detail {

// Checks the bias against self and returns its shape aligned to self (1 but
// along dim; all 1 without a bias).
inline SymDimVector bias_sym_shape(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    int64_t dim,
    const char* op) {
  SymDimVector shape(self.dim(), c10::SymInt(1));
  if (!bias.has_value() || !bias->defined()) {
    return shape;
  }
  check_parameter(*bias, self, op, "bias");
  TORCH_CHECK(
      bias->dim() == 1,
      "actx::",
      op,
      ": expected `bias` to be 1-D, got shape ",
      bias->sym_sizes());
  const int64_t nd = self.dim();
  TORCH_CHECK(
      nd > 0 && dim >= -nd && dim < nd,
      "actx::",
      op,
      ": expected `dim` to name a dim of `self` of shape ",
      self.sym_sizes(),
      ", got ",
      dim);
  const int64_t d = dim < 0 ? dim + nd : dim;
  TORCH_CHECK(
      bias->sym_numel() == self.sym_size(d),
      "actx::",
      op,
      ": expected `bias` to have self.size(dim) = ",
      self.sym_size(d),
      " elements, got ",
      bias->sym_numel());
  shape[d] = self.sym_size(d);
  return shape;
}

// The formula's scalars (activation_formulas.h); a clamp must be >= 0.
inline FormulaScalars bias_scalars(
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    const char* op) {
  check_real(negative_slope, op, "negative_slope");
  check_real(gain, op, "gain");
  double c = -1.0;
  if (clamp.has_value()) {
    check_real(*clamp, op, "clamp");
    c = clamp->toDouble();
    TORCH_CHECK(
        c >= 0.0,
        "actx::",
        op,
        ": expected `clamp` to be None or a number >= 0, got ",
        *clamp);
  }
  return {{negative_slope.toDouble(), gain.toDouble(), c}};
}

// What the kernels add without a bias: -0.0, the one number that leaves every
// x as it is (+0.0 would turn -0.0 into +0.0).
inline const at::Scalar kNoBias(-0.0);

// What the checks of a bias_leaky_relu operator return: the bias's shape
// aligned to the data (symbolic) and the formula's scalars.
struct BiasArgs {
  SymDimVector bias_shape;
  FormulaScalars scalars;
};

// bias_leaky_relu's and _bias_leaky_relu_with_bits's argument checks, for Meta
// and the kernels alike.
inline BiasArgs check_bias_forward(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim,
    const char* op) {
  check_floating_input(self, op, "self");
  SymDimVector bias_shape = bias_sym_shape(self, bias, dim, op);
  return {std::move(bias_shape), bias_scalars(negative_slope, gain, clamp, op)};
}

// The bias as the kernels read it (undefined without one).
inline at::Tensor bias_or_none(const std::optional<at::Tensor>& bias) {
  return bias.has_value() ? *bias : at::Tensor();
}

// The gradient of the bias: its shape and dtype, or 0 elements.
inline at::Tensor empty_bias_grad(
    const std::optional<at::Tensor>& bias,
    const at::Tensor& self) {
  return bias.has_value() && bias->defined()
      ? at::empty_like(*bias, at::MemoryFormat::Contiguous)
      : at::empty({0}, self.options());
}

// The branch and the saturation of every element, in ATen operations computed
// as the kernels compute them: t = x + b, v = gain * (t > 0 ? t : alpha * t) in
// the compute type.
inline std::pair<at::Tensor, at::Tensor> bias_leaky_relu_branches(
    const at::Tensor& self,
    const at::Tensor& bias_view,
    const FormulaScalars& scalars) {
  const at::ScalarType acc = compute_dtype(self.scalar_type());
  at::Tensor t = self.to(acc);
  if (bias_view.defined()) {
    t = t + bias_view.to(acc);
  }
  const at::Tensor positive = t.gt(0);
  const at::Tensor v =
      at::where(positive, t, t * scalars.values[0]) * scalars.values[1];
  const double c = scalars.values[2];
  return {positive, v.gt(c).logical_or(v.lt(-c))};
}

// The backward from the branch and saturation masks (bool, laid out as
// grad_output), in ATen operations: grad_input, and the bias's gradient summed
// in the compute type (undefined without a bias).
inline std::pair<at::Tensor, at::Tensor> bias_leaky_relu_grads_reference(
    const at::Tensor& grad_output,
    const at::Tensor& positive,
    const at::Tensor& saturated,
    at::IntArrayRef bias_shape,
    bool with_bias,
    const FormulaScalars& scalars) {
  const at::Tensor through_gain =
      grad_output.to(compute_dtype(grad_output.scalar_type())) *
      scalars.values[1];
  at::Tensor d =
      at::where(positive, through_gain, through_gain * scalars.values[0]);
  if (saturated.defined()) {
    d = at::where(saturated, at::zeros({}, d.options()), d);
  }
  at::Tensor grad_bias;
  if (with_bias) {
    grad_bias = d.sum_to_size(bias_shape).reshape({-1});
  }
  return {d, grad_bias};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> bias_leaky_relu_forward(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim,
    const char* op,
    bool with_bits) {
  const BiasArgs args =
      check_bias_forward(self, bias, negative_slope, gain, clamp, dim, op);
  const DimVector bias_shape = concrete(args.bias_shape);
  const FormulaScalars& scalars = args.scalars;
  at::Tensor out = empty_output(self);
  at::Tensor sign, saturation;
  if (with_bits) {
    sign = empty_bits(out);
    saturation =
        clamp.has_value() ? empty_bits(out) : at::empty({0}, sign.options());
  }
  if (out.numel() == 0) {
    return {out, sign, saturation};
  }
  ForwardCall base;
  base.formula = Formula::kBiasLeakyRelu;
  base.scalars = scalars;
  const at::Tensor b = bias_or_none(bias);
  const bool in_loops = channel_forward<Backend>(
      base,
      self,
      out,
      b,
      bias_shape,
      detail::kNoBias,
      with_bits ? Bits::kSign : Bits::kNone,
      sign,
      clamp.has_value() ? saturation : at::Tensor(),
      at::Tensor());
  if (with_bits && !in_loops) {
    const auto [positive, saturated] = bias_leaky_relu_branches(
        self, b.defined() ? b.reshape(bias_shape) : b, scalars);
    sign.copy_(pack_bits_reference(positive, out));
    if (clamp.has_value()) {
      saturation.copy_(pack_bits_reference(saturated, out));
    }
  }
  return {out, sign, saturation};
}

} // namespace detail

inline at::Tensor bias_leaky_relu_meta(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  detail::check_bias_forward(
      self, bias, negative_slope, gain, clamp, dim, "bias_leaky_relu");
  return detail::empty_output(self);
}

template <class Backend>
at::Tensor bias_leaky_relu(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  return std::get<0>(detail::bias_leaky_relu_forward<Backend>(
      self, bias, negative_slope, gain, clamp, dim, "bias_leaky_relu", false));
}

namespace detail {
// bias_leaky_relu_backward's argument checks, for Meta and the kernels alike.
inline BiasArgs check_bias_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const char* op = "bias_leaky_relu_backward";
  check_floating_input(self, op, "self");
  check_like_self(grad_output, self, op, "grad_output");
  SymDimVector bias_shape = bias_sym_shape(self, bias, dim, op);
  return {std::move(bias_shape), bias_scalars(negative_slope, gain, clamp, op)};
}
} // namespace detail

inline std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_meta(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  detail::check_bias_backward(
      grad_output, self, bias, negative_slope, gain, clamp, dim);
  return {detail::empty_output(self), detail::empty_bias_grad(bias, self)};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const detail::BiasArgs args = detail::check_bias_backward(
      grad_output, self, bias, negative_slope, gain, clamp, dim);
  const DimVector bias_shape = concrete(args.bias_shape);
  BackwardCall base;
  base.formula = Formula::kBiasLeakyRelu;
  base.scalars = args.scalars;
  at::Tensor grad_input = detail::empty_output(self);
  at::Tensor grad_bias = detail::empty_bias_grad(bias, self);
  const at::Tensor b = detail::bias_or_none(bias);
  if (grad_input.numel() == 0) {
    grad_bias.zero_();
    return {grad_input, grad_bias};
  }
  detail::channel_backward<Backend>(
      base,
      grad_output,
      self,
      grad_input,
      b,
      bias_shape,
      detail::kNoBias,
      b.defined() ? grad_bias : at::Tensor());
  return {grad_input, grad_bias};
}

// ---- The private operators: what the autograd kernels keep ----
// (docs/memory.md). Their schemas are in api.cpp. The forward ones run in
// place of a public operator on the user's arguments, so their checks name
// that operator (an error names what the user called).

inline std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask_meta(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu");
  at::Tensor out = detail::empty_output(self);
  return {out, empty_bits(out)};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  auto [out, mask] = leaky_relu_with_mask_meta(self, negative_slope);
  if (out.numel() > 0) {
    ForwardCall call;
    call.x = with_layout_of(self, out);
    call.y = out;
    call.params = detail::scalar_slope(negative_slope, out.numel());
    if (Backend::kBitKernels) {
      call.bits = Bits::kSign;
      call.bits_out = mask;
    }
    Backend::forward(call);
    if (!Backend::kBitKernels) {
      mask.copy_(pack_bits_reference(self.gt(0), out));
    }
  }
  return {out, mask};
}

// The mask's bits belong to the elements of grad_output in its memory order
// (the autograd formula passes a gradient laid out as the forward's output).
inline at::Tensor leaky_relu_backward_from_mask_meta(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope) {
  const char* op = "_leaky_relu_backward_from_mask";
  check_floating_input(grad_output, op, "grad_output");
  check_real(negative_slope, op, "negative_slope");
  check_bits(mask, grad_output, op, "mask");
  TORCH_CHECK(
      grad_output.is_non_overlapping_and_dense(),
      "actx::",
      op,
      ": expected `grad_output` to be dense (laid out as the forward's output), got strides ",
      grad_output.sym_strides());
  return detail::empty_output(grad_output);
}

template <class Backend>
at::Tensor leaky_relu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope) {
  at::Tensor grad_input =
      leaky_relu_backward_from_mask_meta(grad_output, mask, negative_slope);
  if (grad_input.numel() == 0) {
    return grad_input;
  }
  if (!Backend::kBitKernels) {
    return grad_input.copy_(at::where(
        unpack_bits_reference(mask, grad_input),
        grad_output,
        grad_output * negative_slope));
  }
  BackwardCall call;
  call.grad_output = with_layout_of(grad_output, grad_input);
  call.grad_input = grad_input;
  call.source = Bits::kSign;
  call.bits = mask;
  call.params = detail::scalar_slope(negative_slope, grad_input.numel());
  Backend::backward(call);
  return grad_input;
}

inline std::tuple<at::Tensor, at::Tensor> prelu_with_mask_meta(
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "prelu", "self");
  prelu_weight_sym_shape(self, weight, "prelu");
  at::Tensor out = detail::empty_output(self);
  return {out, empty_bits(out)};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor mask, no_verdict;
  at::Tensor out = detail::prelu_forward<Backend>(
      self, weight, "prelu", Bits::kSign, mask, no_verdict);
  return {out, mask};
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity_meta(
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "prelu", "self");
  // The private operator's own limit (autograd asks no float64 of it).
  check_parity_dtype(self, "_prelu_with_parity", "self");
  prelu_weight_sym_shape(self, weight, "prelu");
  at::Tensor out = detail::empty_output(self);
  return {out, empty_bits(out), at::empty({}, self.options().dtype(at::kBool))};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor parity, recoverable;
  at::Tensor out = detail::prelu_forward<Backend>(
      self, weight, "prelu", Bits::kParity, parity, recoverable);
  return {out, parity, recoverable};
}

// prelu_backward_from_mask's and prelu_backward_from_parity's.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_meta(
    Bits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const char* op =
      detail::check_backward_from_bits(kind, grad_output, bits, result);
  prelu_weight_sym_shape(result, weight, op);
  return {
      detail::empty_output(result),
      at::empty_like(weight, at::MemoryFormat::Contiguous)};
}

template <Bits kKind>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_meta(
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return prelu_backward_from_bits_meta(
      kKind, grad_output, bits, result, weight);
}

template <class Backend, Bits kKind>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits(
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return detail::prelu_backward_from_bits<Backend>(
      kKind, grad_output, bits, result, weight);
}

// bias_leaky_relu keeping the branch of every element (the sign bits of x + b)
// and, with a clamp, whether it was clamped (else 0 bytes).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor>
bias_leaky_relu_with_bits_meta(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  detail::check_bias_forward(
      self, bias, negative_slope, gain, clamp, dim, "bias_leaky_relu");
  at::Tensor out = detail::empty_output(self);
  at::Tensor sign = empty_bits(out);
  return {
      out,
      sign,
      clamp.has_value() ? empty_bits(out) : at::empty({0}, sign.options())};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> bias_leaky_relu_with_bits(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  return detail::bias_leaky_relu_forward<Backend>(
      self, bias, negative_slope, gain, clamp, dim, "bias_leaky_relu", true);
}

namespace detail {
// The checks of _bias_leaky_relu_backward_from_bits (the bias's shape aligned
// to grad_output).
inline BiasArgs check_bias_backward_from_bits(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const char* op = "_bias_leaky_relu_backward_from_bits";
  check_floating_input(grad_output, op, "grad_output");
  check_bits(sign, grad_output, op, "sign");
  if (clamp.has_value()) {
    check_bits(saturation, grad_output, op, "saturation");
  } else {
    TORCH_CHECK(
        saturation.defined() && saturation.sym_numel() == 0,
        "actx::",
        op,
        ": expected `saturation` to have 0 elements without a clamp");
  }
  TORCH_CHECK(
      grad_output.is_non_overlapping_and_dense(),
      "actx::",
      op,
      ": expected `grad_output` to be dense (laid out as the forward's output), got strides ",
      grad_output.sym_strides());
  const FormulaScalars scalars = bias_scalars(negative_slope, gain, clamp, op);
  return {bias_sym_shape(grad_output, bias, dim, op), scalars};
}
} // namespace detail

inline std::tuple<at::Tensor, at::Tensor>
bias_leaky_relu_backward_from_bits_meta(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  detail::check_bias_backward_from_bits(
      grad_output, sign, saturation, bias, negative_slope, gain, clamp, dim);
  return {
      detail::empty_output(grad_output),
      detail::empty_bias_grad(bias, grad_output)};
}

// The backward from the bits, which belong to grad_output's elements in its
// memory order.
template <class Backend>
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_from_bits(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const detail::BiasArgs args = detail::check_bias_backward_from_bits(
      grad_output, sign, saturation, bias, negative_slope, gain, clamp, dim);
  const DimVector bias_shape = concrete(args.bias_shape);
  const FormulaScalars& scalars = args.scalars;
  at::Tensor grad_input = detail::empty_output(grad_output);
  at::Tensor grad_bias = detail::empty_bias_grad(bias, grad_output);
  const at::Tensor b = detail::bias_or_none(bias);
  if (grad_input.numel() == 0) {
    grad_bias.zero_();
    return {grad_input, grad_bias};
  }
  const ChannelGeometry geo = plan_channels(grad_input, bias_shape);
  if (!Backend::kBitKernels || !geo.memory_order) {
    const auto [d, bias_grad] = detail::bias_leaky_relu_grads_reference(
        grad_output,
        unpack_bits_reference(sign, grad_input),
        clamp.has_value() ? unpack_bits_reference(saturation, grad_input)
                          : at::Tensor(),
        bias_shape,
        b.defined(),
        scalars);
    grad_input.copy_(d);
    if (b.defined()) {
      grad_bias.copy_(bias_grad);
    }
    return {grad_input, grad_bias};
  }
  auto launch = [&](const at::Tensor& bias_grad) {
    BackwardCall call;
    call.formula = Formula::kBiasLeakyRelu;
    call.scalars = scalars;
    call.grad_output = grad_output;
    call.grad_input = grad_input;
    call.source = Bits::kSign;
    call.bits = sign;
    call.saturation = clamp.has_value() ? saturation : at::Tensor();
    call.params = b.defined()
        ? detail::channel_params(b, bias_shape, geo)
        : detail::scalar_slope(detail::kNoBias, grad_input.numel());
    call.grad_param = bias_grad;
    Backend::backward(call);
  };
  if (b.defined()) {
    detail::into_param_gradient(grad_bias, bias_shape, geo, launch);
  } else {
    launch(at::Tensor());
  }
  return {grad_input, grad_bias};
}

// ---- Registration ----

// The Meta kernels, also registered for sparse and quantized tensors: the
// checks then refuse them with the error that names the argument and the
// expected layout (the dispatcher's own message would not).
inline void register_meta(torch::Library& m) {
  m.impl("leaky_relu", TORCH_FN(leaky_relu_meta));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu__meta));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward_meta));
  m.impl("prelu", TORCH_FN(prelu_meta));
  m.impl("prelu_backward", TORCH_FN(prelu_backward_meta));
  m.impl("bias_leaky_relu", TORCH_FN(bias_leaky_relu_meta));
  m.impl("bias_leaky_relu_backward", TORCH_FN(bias_leaky_relu_backward_meta));
  m.impl("_leaky_relu_with_mask", TORCH_FN(leaky_relu_with_mask_meta));
  m.impl(
      "_leaky_relu_backward_from_mask",
      TORCH_FN(leaky_relu_backward_from_mask_meta));
  m.impl("_prelu_with_mask", TORCH_FN(prelu_with_mask_meta));
  m.impl("_prelu_with_parity", TORCH_FN(prelu_with_parity_meta));
  m.impl(
      "_prelu_backward_from_mask",
      TORCH_FN(prelu_backward_from_bits_meta<Bits::kSign>));
  m.impl(
      "_prelu_backward_from_parity",
      TORCH_FN(prelu_backward_from_bits_meta<Bits::kParity>));
  m.impl(
      "_bias_leaky_relu_with_bits", TORCH_FN(bias_leaky_relu_with_bits_meta));
  m.impl(
      "_bias_leaky_relu_backward_from_bits",
      TORCH_FN(bias_leaky_relu_backward_from_bits_meta));
}

template <class Backend>
void register_operators(torch::Library& m) {
  m.impl("leaky_relu", TORCH_FN(leaky_relu<Backend>));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu_<Backend>));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward<Backend>));
  m.impl("prelu", TORCH_FN(prelu<Backend>));
  m.impl("prelu_backward", TORCH_FN(prelu_backward<Backend>));
  m.impl("bias_leaky_relu", TORCH_FN(bias_leaky_relu<Backend>));
  m.impl(
      "bias_leaky_relu_backward", TORCH_FN(bias_leaky_relu_backward<Backend>));
  m.impl("_leaky_relu_with_mask", TORCH_FN(leaky_relu_with_mask<Backend>));
  m.impl(
      "_leaky_relu_backward_from_mask",
      TORCH_FN(leaky_relu_backward_from_mask<Backend>));
  m.impl("_prelu_with_mask", TORCH_FN(prelu_with_mask<Backend>));
  m.impl("_prelu_with_parity", TORCH_FN(prelu_with_parity<Backend>));
  m.impl(
      "_prelu_backward_from_mask",
      TORCH_FN((prelu_backward_from_bits<Backend, Bits::kSign>)));
  m.impl(
      "_prelu_backward_from_parity",
      TORCH_FN((prelu_backward_from_bits<Backend, Bits::kParity>)));
  m.impl(
      "_bias_leaky_relu_with_bits",
      TORCH_FN(bias_leaky_relu_with_bits<Backend>));
  m.impl(
      "_bias_leaky_relu_backward_from_bits",
      TORCH_FN(bias_leaky_relu_backward_from_bits<Backend>));
}

} // namespace actx
