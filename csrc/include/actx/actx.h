#pragma once

// Public C++ API of actx. Every function calls its operator through the PyTorch
// dispatcher, so autograd, device selection (CPU, CUDA) and tracing apply
// exactly as they do from Python.

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>

#include <optional>
#include <string>
#include <tuple>

#include "actx/macros.h"

namespace actx {

// f(x) = x > 0 ? x : negative_slope * x, with the slope a fixed hyperparameter.
ACTX_API at::Tensor leaky_relu(
    const at::Tensor& self,
    const at::Scalar& negative_slope = 0.01);

// In-place leaky_relu. Under autograd it needs negative_slope >= 0, since the
// backward pass reads the sign of x off the output.
ACTX_API at::Tensor& leaky_relu_(
    at::Tensor& self,
    const at::Scalar& negative_slope = 0.01);

// f(x) = x > 0 ? x : weight * x with a learned weight: one element,
// self.size(1) elements, or (two or more dims) a weight that broadcasts to self
// numpy-style.
ACTX_API at::Tensor prelu(const at::Tensor& self, const at::Tensor& weight);

// The backward operators, exposed for C++ users, TorchScript and double
// backward. self_is_result: `self` holds the output of an in-place call rather
// than its input.
ACTX_API at::Tensor leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result);
// Returns (grad_input, grad_weight); grad_weight has weight's shape and dtype.
ACTX_API std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight);

// StyleGAN2's fused bias + leaky ReLU + gain (rosinality's fused_leaky_relu,
// NVlabs' bias_act with act='lrelu'): clamp(gain * leaky_relu(self + bias,
// negative_slope), -clamp, clamp), computed in float (double for float64) and
// rounded once. bias (optional) is 1-d with self.size(dim) elements, of self's
// dtype or float32 with a float16/bfloat16 self; clamp (optional) >= 0.
ACTX_API at::Tensor bias_leaky_relu(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias = std::nullopt,
    const at::Scalar& negative_slope = 0.2,
    const at::Scalar& gain = 1.4142135623730951,
    const std::optional<at::Scalar>& clamp = std::nullopt,
    int64_t dim = 1);
// Returns (grad_input, grad_bias): grad_bias has the bias's shape and dtype, or
// 0 elements without a bias. The gradient is 0 where the output was clamped.
ACTX_API std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim);

// Whether autograd keeps bits instead of the input for the backward on the CPU
// (true, the default: one bit per element for leaky_relu and bias_leaky_relu,
// two with a clamp; prelu's output and one bit per element; docs/memory.md) or
// the input, as torch does (false; also when the environment variable
// ACTX_BACKWARD_MASKS is 0 at load). set_backward_masks returns the setting
// before; it applies to calls made after it.
ACTX_API bool backward_masks_enabled();
ACTX_API bool set_backward_masks(bool enabled);

// The CPU instruction set the kernels use: "scalar", "avx2", "avx512" or
// "zen4" (AMD Zen 4: avx512's instructions, avx2's loops where Zen 4 runs them
// faster). The default is the best this CPU supports, or the environment
// variable ACTX_CPU_CAPABILITY when set.
ACTX_API std::string cpu_capability();
// Chooses the instruction set (tests use it to cover every level); returns the
// one in force.
ACTX_API std::string set_cpu_capability(const std::string& capability);

} // namespace actx
