#pragma once

// The device-independent half of every operator: argument checks, output
// allocation and the layout of the data. A backend (CPU, CUDA, Meta) supplies
// only the element loops, as a class with
//   static constexpr bool kComputes;                   // false: shapes and
//   dtypes only (Meta) static void forward(const ElementwiseCall&); static void
//   backward(const ElementwiseCall&);
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

inline void check_leaky_relu_args(
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    const char* op) {
  check_floating_input(self, op, "self");
  check_slope(negative_slope, op);
}

} // namespace detail

template <class Backend>
at::Tensor leaky_relu(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  detail::check_leaky_relu_args(self, negative_slope, "leaky_relu");
  at::Tensor out = at::empty_like(self, at::MemoryFormat::Preserve);
  if constexpr (Backend::kComputes) {
    if (out.numel() > 0) {
      ElementwiseCall call;
      call.self = with_layout_of(self, out);
      call.out = out;
      call.slope = negative_slope;
      call.inner = out.numel();
      Backend::forward(call);
    }
  }
  return out;
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
at::Tensor prelu(const at::Tensor& self, const at::Tensor& weight) {
  check_floating_input(self, "prelu", "self");
  at::Tensor out = at::empty_like(self, at::MemoryFormat::Preserve);
  if constexpr (!Backend::kComputes) {
    prelu_weight_sym_shape(self, weight, "prelu");
  } else {
    const DimVector weight_shape = prelu_weight_shape(self, weight, "prelu");
    if (out.numel() > 0) {
      const ChannelGeometry geo = plan_channels(out, weight_shape);
      ElementwiseCall call;
      call.self = self;
      call.weight = detail::weight_in_channel_order(
          weight,
          weight_shape,
          geo,
          detail::in_weight_order(weight_shape, geo));
      call.channels = geo.channels;
      call.inner = geo.inner;
      detail::run_in_channel_order(
          call, geo, out, [](const ElementwiseCall& c) {
            Backend::forward(c);
          });
    }
  }
  return out;
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
    // The kernels write the gradient in channel order: straight into the result
    // when that is the weight's own order, else into a buffer permuted back
    // after.
    const bool direct = detail::in_weight_order(weight_shape, geo);
    ElementwiseCall call;
    call.grad_output = grad_output;
    call.self = self;
    call.weight =
        detail::weight_in_channel_order(weight, weight_shape, geo, direct);
    call.channels = geo.channels;
    call.inner = geo.inner;
    call.grad_weight =
        direct ? grad_weight : at::empty({geo.channels}, grad_weight.options());
    detail::run_in_channel_order(
        call, geo, grad_input, [](const ElementwiseCall& c) {
          Backend::backward(c);
        });
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
  return {grad_input, grad_weight};
}

template <class Backend>
void register_backend(torch::Library& m) {
  m.impl("leaky_relu", TORCH_FN(leaky_relu<Backend>));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu_<Backend>));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward<Backend>));
  m.impl("prelu", TORCH_FN(prelu<Backend>));
  m.impl("prelu_backward", TORCH_FN(prelu_backward<Backend>));
}

} // namespace actx
