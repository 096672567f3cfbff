// Autograd for every actx operator, in C++ so that LibTorch and TorchScript users get gradients
// too. Each Function runs its operator below autograd and calls the backward operators through the
// dispatcher; the backward operators have Functions of their own, which gives double backward.

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "actx/actx.h"
#include "shape.h"

namespace actx {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool any_requires_grad(std::initializer_list<at::Tensor> tensors) {
  if (!at::GradMode::is_enabled()) {
    return false;
  }
  for (const auto& t : tensors) {
    if (t.defined() && t.requires_grad()) {
      return true;
    }
  }
  return false;
}

class LeakyReluBackwardFunction : public torch::autograd::Function<LeakyReluBackwardFunction> {
 public:
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& grad_output,
      const at::Tensor& self,
      const at::Scalar& negative_slope,
      bool self_is_result) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({self});
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["self_is_result"] = self_is_result;
    return actx::leaky_relu_backward(grad_output, self, negative_slope, self_is_result);
  }

  // grad_input is linear in grad_output with the same mask; its derivative in self is zero almost
  // everywhere (torch's rule).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto self = ctx->get_saved_variables()[0];
    const auto slope = ctx->saved_data["negative_slope"].toScalar();
    const bool self_is_result = ctx->saved_data["self_is_result"].toBool();
    return {actx::leaky_relu_backward(grads[0], self, slope, self_is_result), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class LeakyReluFunction : public torch::autograd::Function<LeakyReluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& self, const at::Scalar& negative_slope) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({self});
    ctx->saved_data["negative_slope"] = negative_slope;
    return actx::leaky_relu(self, negative_slope);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto self = ctx->get_saved_variables()[0];
    const auto slope = ctx->saved_data["negative_slope"].toScalar();
    return {actx::leaky_relu_backward(grads[0], self, slope, /*self_is_result=*/false), at::Tensor()};
  }
};

// The input is overwritten, so backward reads the sign of x off the output: with a slope >= 0,
// out > 0 exactly where x > 0.
class LeakyReluInplaceFunction : public torch::autograd::Function<LeakyReluInplaceFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::Tensor self, const at::Scalar& negative_slope) {
    {
      // Below autograd only: the ADInplaceOrView kernel bumps the version counter.
      at::AutoDispatchBelowAutograd guard;
      actx::leaky_relu_(self, negative_slope);
    }
    ctx->mark_dirty({self});
    ctx->save_for_backward({self});
    ctx->saved_data["negative_slope"] = negative_slope;
    return self;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto result = ctx->get_saved_variables()[0];
    const auto slope = ctx->saved_data["negative_slope"].toScalar();
    return {actx::leaky_relu_backward(grads[0], result, slope, /*self_is_result=*/true), at::Tensor()};
  }
};

// Second derivatives of prelu_backward, in ATen operations (themselves differentiable):
//   grad_input  = x > 0 ? g : w * g
//   grad_weight = sum over the broadcast dims of (x > 0 ? 0 : x * g)
class PreluBackwardFunction : public torch::autograd::Function<PreluBackwardFunction> {
 public:
  static variable_list forward(
      AutogradContext* ctx,
      const at::Tensor& grad_output,
      const at::Tensor& self,
      const at::Tensor& weight) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({grad_output, self, weight});
    auto [grad_input, grad_weight] = actx::prelu_backward(grad_output, self, weight);
    return {grad_input, grad_weight};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = saved[0];
    const at::Tensor& x = saved[1];
    const at::Tensor& weight = saved[2];
    const at::Tensor& gg_input = grads[0];  // d loss / d grad_input
    const at::Tensor& gg_weight = grads[1]; // d loss / d grad_weight
    const SymDimVector shape = prelu_weight_sym_shape(x, weight, "prelu_backward");
    const at::Tensor w = weight.reshape_symint(shape);
    const at::Tensor positive = x > 0;
    const at::Tensor gg_w = gg_weight.reshape_symint(shape);

    // d/dg: grad_input gives (x > 0 ? gg_input : w * gg_input); grad_weight gives x * gg_w on x <= 0.
    const at::Tensor d_grad = at::where(positive, gg_input, w * gg_input + x * gg_w).to(g.scalar_type());
    // d/dx: only grad_weight depends on x (away from 0): g * gg_w on x <= 0.
    const at::Tensor d_self = at::where(positive, at::zeros_like(x), g * gg_w).to(x.scalar_type());
    // d/dw: only grad_input depends on w: g * gg_input on x <= 0, summed to the weight's shape.
    const at::Tensor d_weight = at::where(positive, at::zeros_like(x), g * gg_input)
                                    .sum_to_size_symint(shape)
                                    .reshape_symint(weight.sym_sizes())
                                    .to(weight.scalar_type());
    return {d_grad, d_self, d_weight};
  }
};

class PreluFunction : public torch::autograd::Function<PreluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& self, const at::Tensor& weight) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({self, weight});
    return actx::prelu(self, weight);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_input, grad_weight] = actx::prelu_backward(grads[0], saved[0], saved[1]);
    return {grad_input, grad_weight};
  }
};

// ---- Autograd kernels: skip the graph when no input needs a gradient ----

at::Tensor leaky_relu_autograd(const at::Tensor& self, const at::Scalar& negative_slope) {
  if (!any_requires_grad({self})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return actx::leaky_relu(self, negative_slope);
  }
  return LeakyReluFunction::apply(self, negative_slope);
}

at::Tensor& leaky_relu__autograd(at::Tensor& self, const at::Scalar& negative_slope) {
  if (!any_requires_grad({self})) {
    at::AutoDispatchBelowAutograd guard;
    return actx::leaky_relu_(self, negative_slope);
  }
  // Checked before anything is written, so that a refused call leaves `self` as it was.
  TORCH_CHECK(
      !self.is_leaf(),
      "actx::leaky_relu_: a leaf tensor that requires grad cannot be modified in place; use "
      "actx::leaky_relu, or call it under torch.no_grad()");
  TORCH_CHECK(
      !negative_slope.isComplex() && negative_slope.toDouble() >= 0.0,
      "actx::leaky_relu_: the backward pass of the in-place leaky_relu reads the sign of the input "
      "off the output, which needs negative_slope >= 0; got negative_slope=", negative_slope,
      ". Use the out-of-place actx::leaky_relu when the slope is negative.");
  LeakyReluInplaceFunction::apply(self, negative_slope);
  return self;
}

// The in-place op bypasses ADInplaceOrView's fallthrough: bump the version counter here, as
// ATen's in-place operators do, so that autograd sees saved tensors that were overwritten.
at::Tensor& leaky_relu__inplace_or_view(at::Tensor& self, const at::Scalar& negative_slope) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    actx::leaky_relu_(self, negative_slope);
  }
  torch::autograd::impl::bump_version(self);
  return self;
}

at::Tensor leaky_relu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  if (!any_requires_grad({grad_output, self})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return actx::leaky_relu_backward(grad_output, self, negative_slope, self_is_result);
  }
  return LeakyReluBackwardFunction::apply(grad_output, self, negative_slope, self_is_result);
}

at::Tensor prelu_autograd(const at::Tensor& self, const at::Tensor& weight) {
  if (!any_requires_grad({self, weight})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return actx::prelu(self, weight);
  }
  return PreluFunction::apply(self, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  if (!any_requires_grad({grad_output, self, weight})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return actx::prelu_backward(grad_output, self, weight);
  }
  auto grads = PreluBackwardFunction::apply(grad_output, self, weight);
  return {grads[0], grads[1]};
}

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, Autograd, m) {
  m.impl("leaky_relu", TORCH_FN(actx::leaky_relu_autograd));
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__autograd));
  m.impl("leaky_relu_backward", TORCH_FN(actx::leaky_relu_backward_autograd));
  m.impl("prelu", TORCH_FN(actx::prelu_autograd));
  m.impl("prelu_backward", TORCH_FN(actx::prelu_backward_autograd));
}

TORCH_LIBRARY_IMPL(actx, ADInplaceOrView, m) {
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__inplace_or_view));
}
