#pragma once

// The device-independent half of every operator: argument checks, output
// allocation and the layout of the data. A backend (CPU, CUDA, Meta) supplies
// only the element loops, as a class with
//   static constexpr bool kComputes;  // false: shapes and dtypes only (Meta)
//   static constexpr bool kMaskKernels;  // false: ATen computes sign masks
//   static void forward(const ElementwiseCall&);
//   static void backward(const ElementwiseCall&);
// and registers all operators with register_backend<Backend>(m) in its
// TORCH_LIBRARY_IMPL.

#include <ATen/ATen.h>
#include <torch/library.h>

#include "shape.h"

namespace actx {

// One call of a backend. All tensors are dense and laid out alike, so a kernel
// walks them as flat arrays in memory order: element i uses weight[(i / inner)
// % channels], or the scalar slope. The prelu weight and its gradient keep the
// weight's own dtype, the input's or (float32 weight, float16/bfloat16 input)
// the compute dtype: the kernels convert as they read and write, which spares a
// call the cast kernels.
struct ElementwiseCall {
  at::Tensor grad_output; // backward only
  at::Tensor self;
  at::Tensor out; // forward: result (may alias self); backward: grad_input
  at::Tensor
      weight; // contiguous, `channels` elements; undefined: `slope` for all
  at::Scalar slope;
  int64_t channels = 1;
  int64_t inner = 1;
  at::Tensor grad_weight; // backward of prelu: `channels` elements of weight's
                          // dtype to write
  // The sign mask, one bit per element of the buffer in memory order (see
  // shape.h). Forward: written beside `out`. Backward: read instead of the
  // sign of `self`; `self` is then the prelu output (the weight gradient sums
  // grad * result and the backend divides each channel's sum by its weight),
  // or undefined for leaky_relu.
  at::Tensor mask;
  // The parity bits of prelu_with_parity, laid out as the mask. Forward:
  // written beside `out`, and `recoverable` (a 0-dim bool tensor on the CPU)
  // set to whether the backward recovers every x. Backward: `self` is the
  // prelu output, from which the backend recovers x.
  at::Tensor parity;
  at::Tensor recoverable;
};

// Whether a weight or weight-gradient buffer holds the compute type (else the
// input's type).
inline bool holds_compute_type(
    const at::Tensor& weight,
    const at::Tensor& self) {
  return weight.scalar_type() == compute_dtype(self.scalar_type());
}

namespace detail {

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

// The weight as the kernels read it: contiguous in the buffer's channel order.
// Usually that is the weight itself, with no operator called at all (a small
// call is host-bound). in_order: in_weight_order(weight_shape, geo).
inline at::Tensor weight_in_channel_order(
    const at::Tensor& weight,
    at::IntArrayRef weight_shape,
    const ChannelGeometry& geo,
    bool in_order) {
  if (in_order && weight.is_contiguous()) {
    return weight;
  }
  return weight.reshape(weight_shape).permute(geo.order).contiguous();
}

// Runs `launch(call)` for prelu and its backward on a buffer laid out as `geo`
// says: the output's own memory when possible, else permuted copies of the
// inputs, copied back into `out` after.
template <class Launch>
void run_in_channel_order(
    ElementwiseCall& call,
    const ChannelGeometry& geo,
    const at::Tensor& out,
    Launch launch) {
  if (geo.memory_order) {
    call.self = with_layout_of(call.self, out);
    if (call.grad_output.defined()) {
      call.grad_output = with_layout_of(call.grad_output, out);
    }
    call.out = out;
    launch(call);
    return;
  }
  call.self = call.self.permute(geo.order).contiguous();
  if (call.grad_output.defined()) {
    call.grad_output = call.grad_output.permute(geo.order).contiguous();
  }
  call.out = at::empty_like(call.self);
  launch(call);
  out.permute(geo.order).copy_(call.out);
}

// Sets the weight, channels and weight-gradient buffer of a prelu backward
// call and runs launch(): the kernels write the gradient in channel order,
// straight into grad_weight when that is the weight's own order, else into a
// buffer permuted back after.
template <class Launch>
void weight_gradient_in_channel_order(
    ElementwiseCall& call,
    const at::Tensor& weight,
    const at::Tensor& grad_weight,
    at::IntArrayRef weight_shape,
    const ChannelGeometry& geo,
    Launch launch) {
  const bool direct = in_weight_order(weight_shape, geo);
  call.weight = weight_in_channel_order(weight, weight_shape, geo, direct);
  call.channels = geo.channels;
  call.inner = geo.inner;
  call.grad_weight =
      direct ? grad_weight : at::empty({geo.channels}, grad_weight.options());
  launch();
  if (!direct) {
    DimVector sizes_in_order;
    for (const int64_t d : geo.order) {
      sizes_in_order.push_back(weight_shape[d]);
    }
    grad_weight.view(weight_shape)
        .permute(geo.order)
        .copy_(call.grad_weight.view(sizes_in_order));
  }
}

inline void check_leaky_relu_args(
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    const char* op) {
  check_floating_input(self, op, "self");
  check_slope(negative_slope, op);
}

// The forward operators, with the sign mask (with_mask: `mask` is set to it)
// or without. Mask kernels write the mask beside the output when they walk it
// in memory order; a permuted buffer (a prelu weight along dims apart in
// memory), or a backend without them, gets its mask from ATen after.
template <class Backend>
at::Tensor leaky_relu_forward(
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    const char* op,
    bool with_mask,
    at::Tensor& mask) {
  check_leaky_relu_args(self, negative_slope, op);
  at::Tensor out = at::empty_like(self, at::MemoryFormat::Preserve);
  if (with_mask) {
    mask = empty_mask(out);
  }
  if constexpr (Backend::kComputes) {
    if (out.numel() > 0) {
      ElementwiseCall call;
      call.self = with_layout_of(self, out);
      call.out = out;
      call.slope = negative_slope;
      call.inner = out.numel();
      if (with_mask && Backend::kMaskKernels) {
        call.mask = mask;
      }
      Backend::forward(call);
      if (with_mask && !Backend::kMaskKernels) {
        mask.copy_(pack_mask_reference(call.self, out));
      }
    }
  }
  return out;
}

// What prelu_forward computes beside the output: nothing, the sign mask, or
// the parity bits and whether they recover x.
enum class PreluBits { kNone, kSign, kParity };

template <class Backend>
at::Tensor prelu_forward(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op,
    PreluBits kind,
    at::Tensor& bits,
    at::Tensor& recoverable) {
  check_floating_input(self, op, "self");
  if (kind == PreluBits::kParity) {
    check_parity_dtype(self, op, "self");
    recoverable = at::empty({}, self.options().dtype(at::kBool));
  }
  at::Tensor out = at::empty_like(self, at::MemoryFormat::Preserve);
  if (kind != PreluBits::kNone) {
    bits = empty_mask(out);
  }
  if constexpr (!Backend::kComputes) {
    prelu_weight_sym_shape(self, weight, op);
  } else {
    const DimVector weight_shape = prelu_weight_shape(self, weight, op);
    if (out.numel() == 0) {
      if (kind == PreluBits::kParity) {
        recoverable.fill_(true);
      }
      return out;
    }
    const ChannelGeometry geo = plan_channels(out, weight_shape);
    ElementwiseCall call;
    call.self = self;
    call.weight = weight_in_channel_order(
        weight, weight_shape, geo, in_weight_order(weight_shape, geo));
    call.channels = geo.channels;
    call.inner = geo.inner;
    const bool in_kernel =
        kind != PreluBits::kNone && Backend::kMaskKernels && geo.memory_order;
    if (in_kernel && kind == PreluBits::kSign) {
      call.mask = bits;
    } else if (in_kernel) {
      call.parity = bits;
      call.recoverable = recoverable;
    }
    run_in_channel_order(
        call, geo, out, [](const ElementwiseCall& c) { Backend::forward(c); });
    if (in_kernel || kind == PreluBits::kNone) {
      return out;
    }
    if (kind == PreluBits::kSign) {
      bits.copy_(pack_mask_reference(self, out));
    } else {
      bits.copy_(pack_bits_reference(storage_parity(self), out));
      recoverable.copy_(
          recoverable_reference(self, bits, out, weight.reshape(weight_shape)));
    }
  }
  return out;
}

} // namespace detail

template <class Backend>
at::Tensor leaky_relu(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  at::Tensor no_mask;
  return detail::leaky_relu_forward<Backend>(
      self, negative_slope, "leaky_relu", false, no_mask);
}

template <class Backend>
at::Tensor prelu(const at::Tensor& self, const at::Tensor& weight) {
  at::Tensor no_bits, no_flag;
  return detail::prelu_forward<Backend>(
      self, weight, "prelu", detail::PreluBits::kNone, no_bits, no_flag);
}

template <class Backend>
at::Tensor& leaky_relu_(at::Tensor& self, const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu_");
  check_no_internal_overlap(self, "leaky_relu_");
  if constexpr (Backend::kComputes) {
    if (self.numel() > 0) {
      ElementwiseCall call;
      call.slope = negative_slope;
      call.inner = self.numel();
      // A dense tensor is computed where it lies; any other goes through a
      // dense copy.
      call.self =
          self.is_non_overlapping_and_dense() ? self : self.contiguous();
      call.out = call.self;
      Backend::forward(call);
      if (!call.out.is_same(self)) {
        self.copy_(call.out);
      }
    }
  }
  return self;
}

template <class Backend>
at::Tensor leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu_backward");
  check_like_self(grad_output, self, "leaky_relu_backward", "grad_output");
  TORCH_CHECK(
      !self_is_result || negative_slope.toDouble() >= 0.0,
      "actx::leaky_relu_backward: with self_is_result=True the sign of the input is read off the "
      "output, which needs negative_slope >= 0; got negative_slope=",
      negative_slope,
      ". Use the out-of-place leaky_relu when the slope is negative.");
  at::Tensor grad_input = at::empty_like(self, at::MemoryFormat::Preserve);
  if constexpr (Backend::kComputes) {
    if (grad_input.numel() > 0) {
      ElementwiseCall call;
      call.grad_output = with_layout_of(grad_output, grad_input);
      call.self = with_layout_of(self, grad_input);
      call.out = grad_input;
      call.slope = negative_slope;
      call.inner = grad_input.numel();
      Backend::backward(call);
    }
  }
  return grad_input;
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  check_floating_input(self, "prelu_backward", "self");
  check_like_self(grad_output, self, "prelu_backward", "grad_output");
  at::Tensor grad_input = at::empty_like(self, at::MemoryFormat::Preserve);
  at::Tensor grad_weight = at::empty_like(weight, at::MemoryFormat::Contiguous);
  if constexpr (!Backend::kComputes) {
    prelu_weight_sym_shape(self, weight, "prelu_backward");
  } else {
    const DimVector weight_shape =
        prelu_weight_shape(self, weight, "prelu_backward");
    if (grad_input.numel() == 0) {
      grad_weight.zero_();
      return {grad_input, grad_weight};
    }
    const ChannelGeometry geo = plan_channels(grad_input, weight_shape);
    ElementwiseCall call;
    call.grad_output = grad_output;
    call.self = self;
    detail::weight_gradient_in_channel_order(
        call, weight, grad_weight, weight_shape, geo, [&] {
          detail::run_in_channel_order(
              call, geo, grad_input, [](const ElementwiseCall& c) {
                Backend::backward(c);
              });
        });
  }
  return {grad_input, grad_weight};
}

// ---- The operators that keep a sign mask for the backward ----

template <class Backend>
std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  at::Tensor mask;
  at::Tensor out = detail::leaky_relu_forward<Backend>(
      self, negative_slope, "leaky_relu_with_mask", true, mask);
  return {out, mask};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor mask, no_flag;
  at::Tensor out = detail::prelu_forward<Backend>(
      self, weight, "prelu_with_mask", detail::PreluBits::kSign, mask, no_flag);
  return {out, mask};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor parity, recoverable;
  at::Tensor out = detail::prelu_forward<Backend>(
      self,
      weight,
      "prelu_with_parity",
      detail::PreluBits::kParity,
      parity,
      recoverable);
  return {out, parity, recoverable};
}

template <class Backend>
at::Tensor leaky_relu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope,
    c10::SymIntArrayRef stride) {
  const char* op = "leaky_relu_backward_from_mask";
  check_floating_input(grad_output, op, "grad_output");
  check_slope(negative_slope, op);
  TORCH_CHECK(
      stride.size() == static_cast<size_t>(grad_output.dim()),
      "actx::",
      op,
      ": expected `stride` to have one entry per dim of `grad_output` (",
      grad_output.dim(),
      "), got ",
      stride.size());
  at::Tensor grad_input = at::empty_strided_symint(
      grad_output.sym_sizes(), stride, grad_output.options());
  check_mask(mask, grad_input, op);
  if constexpr (Backend::kComputes) {
    TORCH_CHECK(
        grad_input.is_non_overlapping_and_dense(),
        "actx::",
        op,
        ": expected `stride` to lay out `grad_output`'s shape ",
        grad_output.sizes(),
        " densely (the strides of the forward output), got ",
        stride);
    if (grad_input.numel() > 0 && !Backend::kMaskKernels) {
      grad_input.copy_(at::where(
          unpack_mask_reference(mask, grad_input),
          grad_output,
          grad_output * negative_slope));
    } else if (grad_input.numel() > 0) {
      ElementwiseCall call;
      call.grad_output = with_layout_of(grad_output, grad_input);
      call.out = grad_input;
      call.mask = mask;
      call.slope = negative_slope;
      call.inner = grad_input.numel();
      Backend::backward(call);
    }
  }
  return grad_input;
}

namespace detail {

// prelu_backward_from_mask in ATen operations: for the layouts the kernels do
// not walk in memory order, and for backends without mask kernels. The same
// formulas as the kernels, with the weight gradient summed in ATen's order.
inline std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask_reference(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight,
    at::IntArrayRef weight_shape) {
  const at::Tensor positive = unpack_mask_reference(mask, result);
  const at::Tensor w = weight.reshape(weight_shape);
  at::Tensor grad_input = at::empty_like(result, at::MemoryFormat::Preserve);
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

// prelu_backward_from_mask (kSign) and prelu_backward_from_parity (kParity).
template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits(
    PreluBits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const bool sign = kind == PreluBits::kSign;
  const char* op =
      sign ? "prelu_backward_from_mask" : "prelu_backward_from_parity";
  check_floating_input(result, op, "result");
  if (!sign) {
    check_parity_dtype(result, op, "result");
  }
  check_like_self(grad_output, result, op, "grad_output");
  at::Tensor grad_input = at::empty_like(result, at::MemoryFormat::Preserve);
  at::Tensor grad_weight = at::empty_like(weight, at::MemoryFormat::Contiguous);
  check_mask(bits, grad_input, op, sign ? "mask" : "parity");
  if constexpr (!Backend::kComputes) {
    prelu_weight_sym_shape(result, weight, op);
  } else {
    const DimVector weight_shape = prelu_weight_shape(result, weight, op);
    if (grad_input.numel() == 0) {
      grad_weight.zero_();
      return {grad_input, grad_weight};
    }
    const ChannelGeometry geo = plan_channels(grad_input, weight_shape);
    // The bits follow the output's memory: a permuted buffer (the weight along
    // dims apart in memory) goes through ATen, as it did in the forward.
    if (!Backend::kMaskKernels || !geo.memory_order) {
      if (sign) {
        return prelu_backward_from_mask_reference(
            grad_output, bits, result, weight, weight_shape);
      }
      // x itself, then prelu's own backward.
      return prelu_backward<Backend>(
          grad_output,
          recover_input_reference(bits, result, weight.reshape(weight_shape)),
          weight);
    }
    ElementwiseCall call;
    call.grad_output = with_layout_of(grad_output, grad_input);
    call.self = with_layout_of(result, grad_input);
    call.out = grad_input;
    (sign ? call.mask : call.parity) = bits;
    weight_gradient_in_channel_order(
        call, weight, grad_weight, weight_shape, geo, [&] {
          Backend::backward(call);
        });
  }
  return {grad_input, grad_weight};
}

} // namespace detail

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return detail::prelu_backward_from_bits<Backend>(
      detail::PreluBits::kSign, grad_output, mask, result, weight);
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_parity(
    const at::Tensor& grad_output,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return detail::prelu_backward_from_bits<Backend>(
      detail::PreluBits::kParity, grad_output, parity, result, weight);
}

template <class Backend>
void register_backend(torch::Library& m) {
  m.impl("leaky_relu", TORCH_FN(leaky_relu<Backend>));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu_<Backend>));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward<Backend>));
  m.impl("prelu", TORCH_FN(prelu<Backend>));
  m.impl("prelu_backward", TORCH_FN(prelu_backward<Backend>));
  m.impl("leaky_relu_with_mask", TORCH_FN(leaky_relu_with_mask<Backend>));
  m.impl(
      "leaky_relu_backward_from_mask",
      TORCH_FN(leaky_relu_backward_from_mask<Backend>));
  m.impl("prelu_with_mask", TORCH_FN(prelu_with_mask<Backend>));
  m.impl(
      "prelu_backward_from_mask", TORCH_FN(prelu_backward_from_mask<Backend>));
  m.impl("prelu_with_parity", TORCH_FN(prelu_with_parity<Backend>));
  m.impl(
      "prelu_backward_from_parity",
      TORCH_FN(prelu_backward_from_parity<Backend>));
}

} // namespace actx
