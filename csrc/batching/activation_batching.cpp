// Batching rules for vmap (torch.func.vmap and what is built on it: jacrev,
// jacfwd, hessian, per-sample gradients): a vmapped actx call is one call on
// the whole batch. Without them functorch falls back to one call per sample,
// with a performance warning. Each rule unwraps the tensors batched at the
// current vmap level, puts their batch dim in front (an unbatched tensor is
// expanded to the batch, a view), calls the operator on those physical tensors
// and wraps its result, batched along dim 0. The prelu weight becomes a weight
// of the physical input's rank, per sample, which actx's numpy-style weight
// broadcasting takes as it is.
//
// torch's functorch headers include <nlohmann/json.hpp>, which the torch wheel
// does not ship (Debian: nlohmann-json3-dev, installed by
// scripts/bootstrap.sh). Without it the build stops here with a message that
// says so, rather than leaving the rules out (vmap would fall back to one call
// per sample, and its tests would skip).

#if !__has_include(<nlohmann/json.hpp>)
#error \
    "actx: <nlohmann/json.hpp> not found. torch's functorch headers, which actx's vmap batching rules include, need it and the torch wheel does not ship it: install it (Debian/Ubuntu: apt-get install nlohmann-json3-dev), or add the folder that holds nlohmann/json.hpp to CPLUS_INCLUDE_PATH"
#endif

#include <ATen/ATen.h>
#include <ATen/functorch/DynamicLayer.h>
#include <ATen/functorch/PlumbingHelper.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "actx/actx.h"
#include "checks.h"
#include "private_ops.h"

namespace actx {
namespace {

using at::functorch::isBatchedAtLevel;
using at::functorch::makeBatched;
using at::functorch::unwrapTensorAtLevel;

// Runs a rule below the batching key, at the current vmap level.
struct BatchRuleScope {
  c10::impl::ExcludeDispatchKeyGuard below_batching{
      c10::DispatchKey::FuncTorchBatched};
  int64_t level;

  BatchRuleScope() {
    const auto layer = at::functorch::maybeCurrentDynamicLayer();
    TORCH_INTERNAL_ASSERT(
        layer.has_value(), "actx: a batching rule ran outside vmap");
    level = layer->layerId();
  }
};

// The batch size at `level` of the first of `tensors` batched there.
c10::SymInt batch_size(
    std::initializer_list<const at::Tensor*> tensors,
    int64_t level) {
  for (const at::Tensor* t : tensors) {
    auto [value, bdim] = unwrapTensorAtLevel(*t, level);
    if (bdim) {
      return value.sym_size(*bdim);
    }
  }
  TORCH_INTERNAL_ASSERT(false, "actx: no batched argument");
}

// (leading, *sizes): the sizes of a physical tensor with a batch dim (or a dim
// of 1) in front.
c10::SymDimVector with_leading(
    const c10::SymInt& leading,
    c10::SymIntArrayRef sizes) {
  c10::SymDimVector result{leading};
  result.append(sizes.begin(), sizes.end());
  return result;
}

// `t` at `level` as a physical tensor (batch, *logical shape); an unbatched one
// expanded.
at::Tensor batch_in_front(
    const at::Tensor& t,
    int64_t level,
    const c10::SymInt& batch) {
  auto [value, bdim] = unwrapTensorAtLevel(t, level);
  if (bdim) {
    return value.movedim(*bdim, 0);
  }
  return value.unsqueeze(0).expand_symint(
      with_leading(batch, value.sym_sizes()));
}

// The prelu weight as a physical weight for the physical input (batch, *self's
// logical shape): (batch or 1, *weight's broadcast shape); one per sample
// (expanded) when per_sample.
at::Tensor physical_weight(
    const at::Tensor& self,
    const at::Tensor& weight,
    int64_t level,
    const c10::SymInt& batch,
    bool per_sample,
    const char* op) {
  const SymDimVector shape =
      prelu_weight_sym_shape(self, weight, op); // logical, checked
  if (isBatchedAtLevel(weight, level)) {
    return batch_in_front(weight, level, batch)
        .reshape_symint(with_leading(batch, shape));
  }
  const at::Tensor value = std::get<0>(unwrapTensorAtLevel(weight, level));
  const at::Tensor one = value.reshape_symint(with_leading(1, shape));
  return per_sample ? one.expand_symint(with_leading(batch, shape)) : one;
}

// A sample of rank 0 becomes (batch, 1), so that its weight has the two dims of
// a broadcast weight; undone on the result.
at::Tensor at_least_2d(const at::Tensor& t) {
  return t.dim() == 1 ? t.unsqueeze(-1) : t;
}
at::Tensor like_logical(const at::Tensor& result, int64_t logical_rank) {
  return logical_rank == 0 ? result.squeeze(-1) : result;
}

at::Tensor leaky_relu_batched(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(self, scope.level)) {
    return actx::leaky_relu(self, negative_slope);
  }
  // Elementwise: the batch dim stays where it is.
  auto [value, bdim] = unwrapTensorAtLevel(self, scope.level);
  return makeBatched(
      actx::leaky_relu(value, negative_slope), bdim, scope.level);
}

at::Tensor& leaky_relu__batched(
    at::Tensor& self,
    const at::Scalar& negative_slope) {
  const BatchRuleScope scope;
  at::Tensor value = std::get<0>(unwrapTensorAtLevel(self, scope.level));
  actx::leaky_relu_(value, negative_slope);
  return self;
}

at::Tensor leaky_relu_backward_batched(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(grad_output, scope.level) &&
      !isBatchedAtLevel(self, scope.level)) {
    return actx::leaky_relu_backward(
        grad_output, self, negative_slope, self_is_result);
  }
  const c10::SymInt batch = batch_size({&grad_output, &self}, scope.level);
  const at::Tensor result = actx::leaky_relu_backward(
      batch_in_front(grad_output, scope.level, batch),
      batch_in_front(self, scope.level, batch),
      negative_slope,
      self_is_result);
  return makeBatched(result, 0, scope.level);
}

at::Tensor prelu_batched(const at::Tensor& self, const at::Tensor& weight) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(self, scope.level) &&
      !isBatchedAtLevel(weight, scope.level)) {
    return actx::prelu(self, weight);
  }
  const c10::SymInt batch = batch_size({&self, &weight}, scope.level);
  const at::Tensor w = physical_weight(
      self, weight, scope.level, batch, /*per_sample=*/false, "prelu");
  const at::Tensor x = batch_in_front(self, scope.level, batch);
  const at::Tensor result = actx::prelu(at_least_2d(x), at_least_2d(w));
  return makeBatched(like_logical(result, self.dim()), 0, scope.level);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_batched(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(grad_output, scope.level) &&
      !isBatchedAtLevel(self, scope.level) &&
      !isBatchedAtLevel(weight, scope.level)) {
    return actx::prelu_backward(grad_output, self, weight);
  }
  const c10::SymInt batch =
      batch_size({&grad_output, &self, &weight}, scope.level);
  // One weight per sample, so that the weight gradient is summed per sample.
  const at::Tensor w = physical_weight(
      self, weight, scope.level, batch, /*per_sample=*/true, "prelu_backward");
  const at::Tensor g = batch_in_front(grad_output, scope.level, batch);
  const at::Tensor x = batch_in_front(self, scope.level, batch);
  auto [grad_input, grad_weight] =
      actx::prelu_backward(at_least_2d(g), at_least_2d(x), at_least_2d(w));
  return {
      makeBatched(like_logical(grad_input, self.dim()), 0, scope.level),
      makeBatched(
          grad_weight.reshape_symint(with_leading(batch, weight.sym_sizes())),
          0,
          scope.level)};
}

// ---- One call per sample ----

bool is_batched(const at::Tensor& t, int64_t level) {
  return isBatchedAtLevel(t, level);
}
bool is_batched(const std::optional<at::Tensor>& t, int64_t level) {
  return t.has_value() && isBatchedAtLevel(*t, level);
}
template <class Other>
bool is_batched(const Other&, int64_t) {
  return false;
}

// Sample b of an argument at `level`: a tensor's slice when batched there,
// else the argument itself.
at::Tensor sample_of(const at::Tensor& t, int64_t level, int64_t b) {
  auto [value, bdim] = unwrapTensorAtLevel(t, level);
  return bdim ? value.select(*bdim, b) : value;
}
std::optional<at::Tensor> sample_of(
    const std::optional<at::Tensor>& t,
    int64_t level,
    int64_t b) {
  return t.has_value() ? std::optional<at::Tensor>(sample_of(*t, level, b))
                       : std::nullopt;
}
template <class Other>
const Other& sample_of(const Other& value, int64_t, int64_t) {
  return value;
}

// op(args...) once per sample of the batch at `level`, the results (a tensor,
// or a pair of tensors) stacked along a batch dim in front.
template <class Op, class... Args>
auto per_sample(Op op, int64_t level, int64_t batch, const Args&... args) {
  using Result = decltype(op(args...));
  std::vector<Result> samples;
  for (int64_t b = 0; b < batch; ++b) {
    samples.push_back(op(sample_of(args, level, b)...));
  }
  auto stacked = [&](auto get) {
    std::vector<at::Tensor> parts;
    for (const auto& one : samples) {
      parts.push_back(get(one));
    }
    return makeBatched(at::stack(parts), 0, level);
  };
  if constexpr (std::is_same_v<Result, at::Tensor>) {
    return stacked([](const at::Tensor& t) { return t; });
  } else {
    return Result{
        stacked([](const Result& r) { return std::get<0>(r); }),
        stacked([](const Result& r) { return std::get<1>(r); })};
  }
}

// ---- bias_leaky_relu ----

at::Tensor bias_leaky_relu_batched(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const BatchRuleScope scope;
  const int64_t level = scope.level;
  if (!isBatchedAtLevel(self, level) && !is_batched(bias, level)) {
    return actx::bias_leaky_relu(self, bias, negative_slope, gain, clamp, dim);
  }
  const int64_t nd = self.dim();
  const bool dim_ok = dim >= -nd && dim < nd;
  if (is_batched(bias, level) || !isBatchedAtLevel(self, level) ||
      (bias.has_value() && !dim_ok)) {
    // A bias per sample (or a call the checks refuse, with the logical shapes
    // in their message): one call each.
    const at::Tensor& batched = isBatchedAtLevel(self, level) ? self : *bias;
    return per_sample(
        &actx::bias_leaky_relu,
        level,
        batch_size({&batched}, level).guard_int(__FILE__, __LINE__),
        self,
        bias,
        negative_slope,
        gain,
        clamp,
        dim);
  }
  // One bias for the batch: one call, with the batch dim in front and `dim`
  // past it.
  const int64_t batch =
      batch_size({&self}, level).guard_int(__FILE__, __LINE__);
  const int64_t physical_dim =
      bias.has_value() ? (dim < 0 ? dim + nd : dim) + 1 : dim;
  const std::optional<at::Tensor> b = bias.has_value()
      ? std::optional<at::Tensor>(
            std::get<0>(unwrapTensorAtLevel(*bias, level)))
      : std::nullopt;
  return makeBatched(
      actx::bias_leaky_relu(
          batch_in_front(self, level, batch),
          b,
          negative_slope,
          gain,
          clamp,
          physical_dim),
      0,
      level);
}

// Per sample: the bias's gradient is each sample's own sum.
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_batched(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const BatchRuleScope scope;
  const int64_t level = scope.level;
  if (!isBatchedAtLevel(grad_output, level) && !isBatchedAtLevel(self, level) &&
      !is_batched(bias, level)) {
    return actx::bias_leaky_relu_backward(
        grad_output, self, bias, negative_slope, gain, clamp, dim);
  }
  std::vector<const at::Tensor*> tensors{&grad_output, &self};
  if (bias.has_value()) {
    tensors.push_back(&*bias);
  }
  int64_t batch = 0;
  for (const at::Tensor* t : tensors) {
    auto [value, bdim] = unwrapTensorAtLevel(*t, level);
    if (bdim) {
      batch = value.size(*bdim);
      break;
    }
  }
  return per_sample(
      &actx::bias_leaky_relu_backward,
      level,
      batch,
      grad_output,
      self,
      bias,
      negative_slope,
      gain,
      clamp,
      dim);
}

// ---- The private operators ----
// A vmapped program meets only their backward operators, and only with a
// batched grad_output (torch.autograd.grad(..., is_grads_batched=True), which
// jacobians and gradcheck's batched checks use): the autograd kernels keep the
// input under functorch's transforms, so the bits, output and weight a node
// keeps come from a call outside vmap. One call per sample then, each reading
// the same bits; the node's formula has laid the gradient out as the forward's
// output, so each sample's slice is too.

template <class Op, class... Rest>
auto private_backward_batched(
    Op op,
    const char* name,
    const at::Tensor& grad_output,
    const Rest&... rest) {
  const BatchRuleScope scope;
  const int64_t level = scope.level;
  TORCH_CHECK(
      !(is_batched(rest, level) || ...),
      "actx::",
      name,
      ": under vmap only `grad_output` may be batched (this private operator is "
      "called by the backward of an operator computed outside vmap)");
  if (!isBatchedAtLevel(grad_output, level)) {
    return op(grad_output, rest...);
  }
  const int64_t batch =
      batch_size({&grad_output}, level).guard_int(__FILE__, __LINE__);
  return per_sample(op, level, batch, grad_output, rest...);
}

at::Tensor leaky_relu_backward_from_mask_batched(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope) {
  return private_backward_batched(
      &internal::leaky_relu_backward_from_mask,
      "_leaky_relu_backward_from_mask",
      grad_output,
      mask,
      negative_slope);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_mask_batched(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return private_backward_batched(
      &internal::prelu_backward_from_mask,
      "_prelu_backward_from_mask",
      grad_output,
      mask,
      result,
      weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_from_parity_batched(
    const at::Tensor& grad_output,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return private_backward_batched(
      &internal::prelu_backward_from_parity,
      "_prelu_backward_from_parity",
      grad_output,
      parity,
      result,
      weight);
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_from_bits_batched(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  return private_backward_batched(
      &internal::bias_leaky_relu_backward_from_bits,
      "_bias_leaky_relu_backward_from_bits",
      grad_output,
      sign,
      saturation,
      bias,
      negative_slope,
      gain,
      clamp,
      dim);
}

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, FuncTorchBatched, m) {
  m.impl("leaky_relu", TORCH_FN(actx::leaky_relu_batched));
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__batched));
  m.impl("leaky_relu_backward", TORCH_FN(actx::leaky_relu_backward_batched));
  m.impl("prelu", TORCH_FN(actx::prelu_batched));
  m.impl("prelu_backward", TORCH_FN(actx::prelu_backward_batched));
  m.impl("bias_leaky_relu", TORCH_FN(actx::bias_leaky_relu_batched));
  m.impl(
      "bias_leaky_relu_backward",
      TORCH_FN(actx::bias_leaky_relu_backward_batched));
  m.impl(
      "_leaky_relu_backward_from_mask",
      TORCH_FN(actx::leaky_relu_backward_from_mask_batched));
  m.impl(
      "_prelu_backward_from_mask",
      TORCH_FN(actx::prelu_backward_from_mask_batched));
  m.impl(
      "_prelu_backward_from_parity",
      TORCH_FN(actx::prelu_backward_from_parity_batched));
  m.impl(
      "_bias_leaky_relu_backward_from_bits",
      TORCH_FN(actx::bias_leaky_relu_backward_from_bits_batched));
}
