#pragma once

// The private operators, which only the autograd kernels and the backward
// formulas of their graph nodes call (docs/memory.md): what leaky_relu and
// prelu keep for the backward instead of their input. Their schemas are in
// api.cpp, their kernels in operators.h; they are not part of actx's API.

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>

#include <optional>
#include <tuple>

namespace actx::internal {

// (y, mask): leaky_relu and the sign mask of x (bits.h).
std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask(
    const at::Tensor& self,
    const at::Scalar& negative_slope);
// leaky_relu_backward from the mask, whose bits belong to grad_output's
// elements in its memory order (grad_output dense, laid out as the output).
at::Tensor leaky_relu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope);

// (y, mask): prelu and the sign mask of x (bits.h).
std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight);
// (y, parity, recoverable): prelu and the lowest storage bit of each x
// (bits.h); recoverable, a 0-dim bool tensor, says whether
// prelu_backward_from_parity recovers every x of this call.
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight);
// prelu_backward from the output and the bits, instead of x.
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight);
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_parity(
    const at::Tensor& grad_output,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight);

// (y, sign, saturation): bias_leaky_relu and the branch of each element
// (bit set where x + b > 0), and with a clamp whether it was clamped (else 0
// bytes).
std::tuple<at::Tensor, at::Tensor, at::Tensor> bias_leaky_relu_with_bits(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim);
// bias_leaky_relu_backward from those bits, which belong to grad_output's
// elements in its memory order.
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_from_bits(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim);

} // namespace actx::internal
