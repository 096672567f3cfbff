// Functionalization of the in-place operator: torch.compile and torch.export
// trace programs without mutation, and cannot functionalize a custom operator
// that returns an alias of its input by themselves. As ATen's generated kernels
// do for its own in-place operators, leaky_relu_ on a functional tensor becomes
// the out-of-place leaky_relu, whose result replaces the tensor's value.

#include <ATen/FunctionalTensorWrapper.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include "actx/actx.h"
#include "checks.h"

namespace actx {
namespace {

at::Tensor& leaky_relu__functionalize(
    at::Tensor& self,
    const at::Scalar& negative_slope) {
  if (!at::functionalization::impl::isFunctionalTensor(self)) {
    at::AutoDispatchSkipFunctionalize guard;
    return actx::leaky_relu_(self, negative_slope);
  }
  at::functionalization::impl::sync(self);
  const at::Tensor value =
      at::functionalization::impl::from_functional_tensor(self);
  at::Tensor result;
  {
    at::AutoDispatchSkipFunctionalize guard;
    // The in-place call's own check first, so that both paths refuse alike.
    check_no_internal_overlap(value, "leaky_relu_");
    result = actx::leaky_relu(value, negative_slope);
  }
  at::functionalization::impl::replace_(self, result);
  at::functionalization::impl::commit_update(self);
  at::functionalization::impl::sync(self);
  return self;
}

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, Functionalize, m) {
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__functionalize));
}
