// actx's operators: every signature, once (TORCH_LIBRARY), and the C++
// functions that call them through the dispatcher (the public ones of actx.h,
// the private ones of private_ops.h), so that C++ callers get the same
// autograd and backend selection as Python's. Kernels for each backend are
// registered in their own files (cpu/, cuda/, meta/, autograd/, batching/,
// functionalize/) with TORCH_LIBRARY_IMPL.

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "actx/actx.h"
#include "cpu/capability.h"
#include "private_ops.h"

TORCH_LIBRARY(actx, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  // Public: torch's own leaky_relu and prelu, and their backward operators.
  m.def("leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor", tags);
  m.def(
      "leaky_relu_(Tensor(a!) self, Scalar negative_slope=0.01) -> Tensor(a!)",
      tags);
  m.def(
      "leaky_relu_backward(Tensor grad_output, Tensor self, Scalar negative_slope, "
      "bool self_is_result) -> Tensor",
      tags);
  m.def("prelu(Tensor self, Tensor weight) -> Tensor", tags);
  m.def(
      "prelu_backward(Tensor grad_output, Tensor self, Tensor weight) -> (Tensor, Tensor)",
      tags);
  // StyleGAN2's fused bias + leaky ReLU + gain, with NVlabs' clamp:
  // clamp(gain * leaky_relu(self + bias, negative_slope), -clamp, clamp), the
  // bias along `dim`. The backward returns (grad_input, grad_bias).
  m.def(
      "bias_leaky_relu(Tensor self, Tensor? bias=None, Scalar negative_slope=0.2, "
      "Scalar gain=1.4142135623730951, Scalar? clamp=None, int dim=1) -> Tensor",
      tags);
  m.def(
      "bias_leaky_relu_backward(Tensor grad_output, Tensor self, Tensor? bias, "
      "Scalar negative_slope, Scalar gain, Scalar? clamp, int dim) -> (Tensor, Tensor)",
      tags);
  // Private (private_ops.h): what the autograd kernels keep for the backward
  // instead of the input, one bit per element: leaky_relu's sign mask alone,
  // prelu's beside its output and weight, bias_leaky_relu's branch (and
  // saturation) bits.
  m.def(
      "_leaky_relu_with_mask(Tensor self, Scalar negative_slope) -> (Tensor, Tensor)",
      tags);
  m.def(
      "_leaky_relu_backward_from_mask(Tensor grad_output, Tensor mask, Scalar negative_slope) "
      "-> Tensor",
      tags);
  m.def(
      "_prelu_with_mask(Tensor self, Tensor weight) -> (Tensor, Tensor)", tags);
  m.def(
      "_prelu_with_parity(Tensor self, Tensor weight) -> (Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "_prelu_backward_from_mask(Tensor grad_output, Tensor mask, Tensor result, "
      "Tensor weight) -> (Tensor, Tensor)",
      tags);
  m.def(
      "_prelu_backward_from_parity(Tensor grad_output, Tensor parity, Tensor result, "
      "Tensor weight) -> (Tensor, Tensor)",
      tags);
  m.def(
      "_bias_leaky_relu_with_bits(Tensor self, Tensor? bias, Scalar negative_slope, "
      "Scalar gain, Scalar? clamp, int dim) -> (Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "_bias_leaky_relu_backward_from_bits(Tensor grad_output, Tensor sign, "
      "Tensor saturation, Tensor? bias, Scalar negative_slope, Scalar gain, "
      "Scalar? clamp, int dim) -> (Tensor, Tensor)",
      tags);
  // Not tensor operators: settings, with one kernel for all keys.
  m.def("_cpu_capability() -> str", &actx::cpu::capability_name);
  m.def(
      "_set_cpu_capability(str capability) -> str", &actx::cpu::set_capability);
  m.def("_backward_masks() -> bool", &actx::backward_masks_enabled);
  m.def("_set_backward_masks(bool enabled) -> bool", &actx::set_backward_masks);
}

namespace actx {
namespace {

// The operator `name`, typed with the C++ signature of the function that
// calls it (decltype of its declaration), so that the signature is written
// only in the header.
template <class Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(name, "")
      .typed<Signature>();
}

} // namespace

at::Tensor leaky_relu(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  static const auto op = find_op<decltype(leaky_relu)>("actx::leaky_relu");
  return op.call(self, negative_slope);
}

at::Tensor& leaky_relu_(at::Tensor& self, const at::Scalar& negative_slope) {
  static const auto op = find_op<decltype(leaky_relu_)>("actx::leaky_relu_");
  return op.call(self, negative_slope);
}

at::Tensor prelu(const at::Tensor& self, const at::Tensor& weight) {
  static const auto op = find_op<decltype(prelu)>("actx::prelu");
  return op.call(self, weight);
}

at::Tensor leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  static const auto op =
      find_op<decltype(leaky_relu_backward)>("actx::leaky_relu_backward");
  return op.call(grad_output, self, negative_slope, self_is_result);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  static const auto op =
      find_op<decltype(prelu_backward)>("actx::prelu_backward");
  return op.call(grad_output, self, weight);
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  static const auto op = find_op<decltype(bias_leaky_relu_backward)>(
      "actx::bias_leaky_relu_backward");
  return op.call(grad_output, self, bias, negative_slope, gain, clamp, dim);
}

at::Tensor bias_leaky_relu(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  static const auto op =
      find_op<decltype(bias_leaky_relu)>("actx::bias_leaky_relu");
  return op.call(self, bias, negative_slope, gain, clamp, dim);
}

namespace internal {

std::tuple<at::Tensor, at::Tensor, at::Tensor> bias_leaky_relu_with_bits(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  static const auto op = find_op<decltype(bias_leaky_relu_with_bits)>(
      "actx::_bias_leaky_relu_with_bits");
  return op.call(self, bias, negative_slope, gain, clamp, dim);
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_from_bits(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  static const auto op = find_op<decltype(bias_leaky_relu_backward_from_bits)>(
      "actx::_bias_leaky_relu_backward_from_bits");
  return op.call(
      grad_output, sign, saturation, bias, negative_slope, gain, clamp, dim);
}

std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  static const auto op =
      find_op<decltype(leaky_relu_with_mask)>("actx::_leaky_relu_with_mask");
  return op.call(self, negative_slope);
}

at::Tensor leaky_relu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope) {
  static const auto op = find_op<decltype(leaky_relu_backward_from_mask)>(
      "actx::_leaky_relu_backward_from_mask");
  return op.call(grad_output, mask, negative_slope);
}

std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight) {
  static const auto op =
      find_op<decltype(prelu_with_mask)>("actx::_prelu_with_mask");
  return op.call(self, weight);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight) {
  static const auto op =
      find_op<decltype(prelu_with_parity)>("actx::_prelu_with_parity");
  return op.call(self, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight) {
  static const auto op = find_op<decltype(prelu_backward_from_mask)>(
      "actx::_prelu_backward_from_mask");
  return op.call(grad_output, mask, result, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_parity(
    const at::Tensor& grad_output,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  static const auto op = find_op<decltype(prelu_backward_from_parity)>(
      "actx::_prelu_backward_from_parity");
  return op.call(grad_output, parity, result, weight);
}

} // namespace internal

namespace {
std::atomic<bool>& backward_masks() {
  static std::atomic<bool> enabled{[] {
    const char* env = std::getenv("ACTX_BACKWARD_MASKS");
    return env == nullptr || std::string(env) != "0";
  }()};
  return enabled;
}
} // namespace

bool backward_masks_enabled() {
  return backward_masks().load();
}

bool set_backward_masks(bool enabled) {
  return backward_masks().exchange(enabled);
}

std::string cpu_capability() {
  return cpu::capability_name();
}

std::string set_cpu_capability(const std::string& capability) {
  return cpu::set_capability(capability);
}

namespace detail {
int link_anchor() {
  return 0;
}
} // namespace detail

} // namespace actx
