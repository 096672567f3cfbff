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

namespace actx {

// ---- What a backend's element loops are asked to compute ----

// The slope of every element: a per-channel weight (element i of a buffer in
// memory order uses weight[(i / inner) % channels]) or, where `weight` is
// undefined, one scalar. The weight is contiguous, in the buffer's channel
// order, of the input's dtype or (float32 weight, float16/bfloat16 input) the
// compute dtype: the loops convert as they read, which spares a call the cast
// kernels.
struct Slopes {
  at::Tensor weight;
  at::Scalar scalar;
  int64_t channels = 1;
  int64_t inner = 1;
};

// What a forward writes beside its output, and what a backward reads in place
// of x (bits.h).
enum class Bits {
  kNone,   // forward: nothing; backward: x itself
  kSign,   // forward: x > 0; backward: that, and (prelu) the output for the
           // weight gradient (x = y / w where x <= 0)
  kParity, // forward: x's lowest storage bit, and whether the backward
           // recovers x; backward: x recovered from the prelu output
};

// y = x > 0 ? x : slope * x over dense tensors laid out alike (y may be x: in
// place).
struct ForwardCall {
  at::Tensor x;
  at::Tensor y;
  Slopes slopes;
  Bits bits = Bits::kNone;
  at::Tensor bits_out;    // kSign, kParity: one bit per element, written
  at::Tensor recoverable; // kParity: a 0-dim bool, set to the verdict
};

// grad_input = x > 0 ? grad : slope * grad and, where grad_weight is defined,
// grad_weight[c] = the sum over channel c of (x > 0 ? 0 : x * grad), over
// dense tensors laid out alike.
struct BackwardCall {
  at::Tensor grad_output;
  at::Tensor grad_input;
  Bits source = Bits::kNone;
  at::Tensor x;    // kNone
  at::Tensor y;    // kSign (undefined for leaky_relu), kParity
  at::Tensor bits; // kSign, kParity
  Slopes slopes;
  at::Tensor grad_weight; // `channels` elements of the weight's dtype
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

inline Slopes scalar_slope(const at::Scalar& s, int64_t numel) {
  Slopes slopes;
  slopes.scalar = s;
  slopes.inner = numel;
  return slopes;
}

// Whether the weight's own element order is its order in the buffer that `geo`
// describes (the dims it varies along come outermost first there too), so that
// its memory serves as it is.
inline bool in_weight_order(
    at::IntArrayRef weight_shape,
    const ChannelGeometry& geo) {
  int64_t previous = -1;
  for (const int64_t d : geo.order) {
    if (weight_shape[d] != 1) {
      if (d < previous) {
        return false;
      }
      previous = d;
    }
  }
  return true;
}

// The weight as the loops read it: contiguous in the buffer's channel order.
// Usually that is the weight itself, with no operator called at all (a small
// call is host-bound).
inline Slopes weight_slopes(
    const at::Tensor& weight,
    at::IntArrayRef weight_shape,
    const ChannelGeometry& geo) {
  Slopes slopes;
  slopes.weight = in_weight_order(weight_shape, geo) && weight.is_contiguous()
      ? weight
      : weight.reshape(weight_shape).permute(geo.order).contiguous();
  slopes.channels = geo.channels;
  slopes.inner = geo.inner;
  return slopes;
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

// Runs launch(grad_weight buffer): the loops write the gradient in channel
// order, straight into grad_weight when that is the weight's own order, else
// into a buffer permuted back after.
template <class Launch>
void into_weight_gradient(
    const at::Tensor& grad_weight,
    at::IntArrayRef weight_shape,
    const ChannelGeometry& geo,
    Launch launch) {
  if (in_weight_order(weight_shape, geo)) {
    launch(grad_weight);
    return;
  }
  const at::Tensor buffer = at::empty({geo.channels}, grad_weight.options());
  launch(buffer);
  DimVector sizes_in_order;
  for (const int64_t d : geo.order) {
    sizes_in_order.push_back(weight_shape[d]);
  }
  grad_weight.view(weight_shape)
      .permute(geo.order)
      .copy_(buffer.view(sizes_in_order));
}

// prelu's forward, writing `kind` bits beside its output (kNone: none). A
// backend's bit kernels write them when they walk the output in memory order;
// a permuted buffer (a weight along dims apart in memory), or a backend without
// them, gets them from ATen after.
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
    check_parity_dtype(self, op, "self");
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
  const ChannelGeometry geo = plan_channels(out, weight_shape);
  const bool in_loops =
      kind != Bits::kNone && Backend::kBitKernels && geo.memory_order;
  into_output(geo, out, [&](const at::Tensor& buffer) {
    ForwardCall call;
    call.x = in_buffer(self, geo, out);
    call.y = buffer;
    call.slopes = weight_slopes(weight, weight_shape, geo);
    if (in_loops) {
      call.bits = kind;
      call.bits_out = bits;
      call.recoverable = recoverable;
    }
    Backend::forward(call);
  });
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
  into_weight_gradient(
      grad_weight, weight_shape, geo, [&](const at::Tensor& weight_grad) {
        BackwardCall call;
        call.grad_output = with_layout_of(grad_output, grad_input);
        call.grad_input = grad_input;
        call.source = kind;
        call.y = with_layout_of(result, grad_input);
        call.bits = bits;
        call.slopes = weight_slopes(weight, weight_shape, geo);
        call.grad_weight = weight_grad;
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
    call.slopes = detail::scalar_slope(negative_slope, out.numel());
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
    call.slopes = detail::scalar_slope(negative_slope, self.numel());
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
    call.slopes = detail::scalar_slope(negative_slope, grad_input.numel());
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
  const ChannelGeometry geo = plan_channels(grad_input, weight_shape);
  into_weight_gradient(
      grad_weight, weight_shape, geo, [&](const at::Tensor& weight_grad) {
        into_output(geo, grad_input, [&](const at::Tensor& buffer) {
          BackwardCall call;
          call.grad_output = in_buffer(grad_output, geo, grad_input);
          call.grad_input = buffer;
          call.x = in_buffer(self, geo, grad_input);
          call.slopes = weight_slopes(weight, weight_shape, geo);
          call.grad_weight = weight_grad;
          Backend::backward(call);
        });
      });
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

// ---- The private operators: what the autograd kernels keep ----
// (docs/memory.md). Their schemas are in api.cpp.

inline std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask_meta(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "_leaky_relu_with_mask");
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
    call.slopes = detail::scalar_slope(negative_slope, out.numel());
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
  call.slopes = detail::scalar_slope(negative_slope, grad_input.numel());
  Backend::backward(call);
  return grad_input;
}

inline std::tuple<at::Tensor, at::Tensor> prelu_with_mask_meta(
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "_prelu_with_mask", "self");
  prelu_weight_sym_shape(self, weight, "_prelu_with_mask");
  at::Tensor out = detail::empty_output(self);
  return {out, empty_bits(out)};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor mask, no_verdict;
  at::Tensor out = detail::prelu_forward<Backend>(
      self, weight, "_prelu_with_mask", Bits::kSign, mask, no_verdict);
  return {out, mask};
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity_meta(
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "_prelu_with_parity", "self");
  check_parity_dtype(self, "_prelu_with_parity", "self");
  prelu_weight_sym_shape(self, weight, "_prelu_with_parity");
  at::Tensor out = detail::empty_output(self);
  return {out, empty_bits(out), at::empty({}, self.options().dtype(at::kBool))};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor parity, recoverable;
  at::Tensor out = detail::prelu_forward<Backend>(
      self, weight, "_prelu_with_parity", Bits::kParity, parity, recoverable);
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
}

template <class Backend>
void register_operators(torch::Library& m) {
  m.impl("leaky_relu", TORCH_FN(leaky_relu<Backend>));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu_<Backend>));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward<Backend>));
  m.impl("prelu", TORCH_FN(prelu<Backend>));
  m.impl("prelu_backward", TORCH_FN(prelu_backward<Backend>));
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
}

} // namespace actx
