// The public C++ functions: each looks its operator up in the dispatcher once
// and calls it, so that C++ users get the same autograd and backend selection
// as Python users.

#include <ATen/core/dispatch/Dispatcher.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "actx/actx.h"
#include "cpu/capability.h"

namespace actx {
namespace {

// The C++ signature comes from the declaration in actx.h (decltype), so it is
// written only there.
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

std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  static const auto op =
      find_op<decltype(leaky_relu_with_mask)>("actx::leaky_relu_with_mask");
  return op.call(self, negative_slope);
}

at::Tensor leaky_relu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope,
    c10::SymIntArrayRef stride) {
  static const auto op = find_op<decltype(leaky_relu_backward_from_mask)>(
      "actx::leaky_relu_backward_from_mask");
  return op.call(grad_output, mask, negative_slope, stride);
}

std::tuple<at::Tensor, at::Tensor> prelu_with_mask(
    const at::Tensor& self,
    const at::Tensor& weight) {
  static const auto op =
      find_op<decltype(prelu_with_mask)>("actx::prelu_with_mask");
  return op.call(self, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight) {
  static const auto op = find_op<decltype(prelu_backward_from_mask)>(
      "actx::prelu_backward_from_mask");
  return op.call(grad_output, mask, result, weight);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity(
    const at::Tensor& self,
    const at::Tensor& weight) {
  static const auto op =
      find_op<decltype(prelu_with_parity)>("actx::prelu_with_parity");
  return op.call(self, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_parity(
    const at::Tensor& grad_output,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  static const auto op = find_op<decltype(prelu_backward_from_parity)>(
      "actx::prelu_backward_from_parity");
  return op.call(grad_output, parity, result, weight);
}

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
