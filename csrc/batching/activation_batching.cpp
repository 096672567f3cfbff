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

#include "actx/actx.h"
#include "shape.h"

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

// ---- The operators with sign masks ----
// A batched mask is (batch, bytes per sample): each sample's bits start on a
// whole byte. One call on the physical tensors gives that when the batch dim
// is outermost in memory and a sample has a multiple of 8 elements; otherwise
// the rule calls the operator once per sample.

// The number of elements of one sample.
int64_t sample_numel(const at::Tensor& logical) {
  return logical.sym_numel().guard_int(__FILE__, __LINE__);
}

// Whether `physical` (batch in front) is dense with the batch dim outermost,
// so that each sample is one dense run of memory.
bool is_batch_outermost(const at::Tensor& physical) {
  return physical.is_non_overlapping_and_dense() &&
      (physical.size(0) <= 1 ||
       physical.stride(0) * physical.size(0) == physical.numel());
}

// `physical` laid out that way: itself when it already is.
at::Tensor batch_outermost(const at::Tensor& physical) {
  return is_batch_outermost(physical) ? physical : physical.contiguous();
}

// Bytes of one sample's mask.
int64_t sample_mask_bytes(int64_t sample_numel) {
  return mask_bytes(sample_numel).expect_int();
}

// Sample b of `t` at `level`: its slice when batched there, else t itself.
at::Tensor sample(const at::Tensor& t, int64_t level, int64_t b) {
  auto [value, bdim] = unwrapTensorAtLevel(t, level);
  return bdim ? value.select(*bdim, b) : value;
}

// A forward operator with mask called once per sample of `x` (physical, batch
// in front): call(b) gives sample b's output and mask.
template <class Call>
std::tuple<at::Tensor, at::Tensor> per_sample_with_mask(
    const at::Tensor& x,
    int64_t sample_numel,
    int64_t level,
    Call call) {
  const int64_t batch = x.size(0);
  at::Tensor out = at::empty_like(x);
  at::Tensor mask = at::empty(
      {batch, sample_mask_bytes(sample_numel)}, x.options().dtype(at::kByte));
  for (int64_t b = 0; b < batch; ++b) {
    auto [out_b, mask_b] = call(b);
    out[b].copy_(out_b);
    mask[b].copy_(mask_b);
  }
  return {makeBatched(out, 0, level), makeBatched(mask, 0, level)};
}

std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask_batched(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(self, scope.level)) {
    return actx::leaky_relu_with_mask(self, negative_slope);
  }
  const int64_t batch =
      batch_size({&self}, scope.level).guard_int(__FILE__, __LINE__);
  const int64_t n = sample_numel(self);
  const at::Tensor x =
      batch_outermost(batch_in_front(self, scope.level, batch));
  if (n % 8 == 0 || batch == 0) {
    auto [out, mask] = actx::leaky_relu_with_mask(x, negative_slope);
    return {
        makeBatched(out, 0, scope.level),
        makeBatched(mask.view({batch, sample_mask_bytes(n)}), 0, scope.level)};
  }
  return per_sample_with_mask(x, n, scope.level, [&](int64_t b) {
    return actx::leaky_relu_with_mask(x[b], negative_slope);
  });
}

at::Tensor leaky_relu_backward_from_mask_batched(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope,
    c10::SymIntArrayRef stride) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(grad_output, scope.level) &&
      !isBatchedAtLevel(mask, scope.level)) {
    return actx::leaky_relu_backward_from_mask(
        grad_output, mask, negative_slope, stride);
  }
  const int64_t batch = batch_size({&grad_output, &mask}, scope.level)
                            .guard_int(__FILE__, __LINE__);
  const int64_t n = sample_numel(grad_output);
  const at::Tensor g = batch_in_front(grad_output, scope.level, batch);
  if (n % 8 == 0 || batch == 0) {
    // Sample b's bits are bytes [b n / 8, (b + 1) n / 8) of the flat mask,
    // and its elements the same run of a result strided (n, *stride).
    c10::SymDimVector strides{n};
    strides.append(stride.begin(), stride.end());
    const at::Tensor masks =
        batch_in_front(mask, scope.level, batch).contiguous().view({-1});
    return makeBatched(
        actx::leaky_relu_backward_from_mask(g, masks, negative_slope, strides),
        0,
        scope.level);
  }
  at::Tensor result = at::empty_like(g, at::MemoryFormat::Contiguous);
  for (int64_t b = 0; b < batch; ++b) {
    result[b].copy_(actx::leaky_relu_backward_from_mask(
        g[b], sample(mask, scope.level, b), negative_slope, stride));
  }
  return makeBatched(result, 0, scope.level);
}

std::tuple<at::Tensor, at::Tensor> prelu_with_mask_batched(
    const at::Tensor& self,
    const at::Tensor& weight) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(self, scope.level) &&
      !isBatchedAtLevel(weight, scope.level)) {
    return actx::prelu_with_mask(self, weight);
  }
  const int64_t batch =
      batch_size({&self, &weight}, scope.level).guard_int(__FILE__, __LINE__);
  const int64_t n = sample_numel(self);
  const at::Tensor x =
      batch_outermost(batch_in_front(self, scope.level, batch));
  if ((n % 8 == 0 && self.dim() > 0) || batch == 0) {
    const at::Tensor w = physical_weight(
        self,
        weight,
        scope.level,
        batch,
        /*per_sample=*/false,
        "prelu_with_mask");
    auto [out, mask] = actx::prelu_with_mask(x, w);
    return {
        makeBatched(out, 0, scope.level),
        makeBatched(mask.view({batch, sample_mask_bytes(n)}), 0, scope.level)};
  }
  return per_sample_with_mask(x, n, scope.level, [&](int64_t b) {
    return actx::prelu_with_mask(x[b], sample(weight, scope.level, b));
  });
}

// prelu's forward keeping parity bits, one call per sample: each sample's
// `recoverable` is its own.
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity_batched(
    const at::Tensor& self,
    const at::Tensor& weight) {
  const BatchRuleScope scope;
  if (!isBatchedAtLevel(self, scope.level) &&
      !isBatchedAtLevel(weight, scope.level)) {
    return actx::prelu_with_parity(self, weight);
  }
  const int64_t batch =
      batch_size({&self, &weight}, scope.level).guard_int(__FILE__, __LINE__);
  const int64_t n = sample_numel(self);
  const at::Tensor x =
      batch_outermost(batch_in_front(self, scope.level, batch));
  at::Tensor recoverable = at::empty({batch}, x.options().dtype(at::kBool));
  auto [out, parity] = per_sample_with_mask(x, n, scope.level, [&](int64_t b) {
    auto [out_b, parity_b, recoverable_b] =
        actx::prelu_with_parity(x[b], sample(weight, scope.level, b));
    recoverable[b].copy_(recoverable_b);
    return std::make_tuple(out_b, parity_b);
  });
  return {out, parity, makeBatched(recoverable, 0, scope.level)};
}

using PreluBackwardFromBits = std::tuple<at::Tensor, at::Tensor> (*)(
    const at::Tensor&,
    const at::Tensor&,
    const at::Tensor&,
    const at::Tensor&);
constexpr char kFromMask[] = "prelu_backward_from_mask";
constexpr char kFromParity[] = "prelu_backward_from_parity";

// prelu_backward_from_mask and prelu_backward_from_parity (kOp, named kName):
// one call when every sample's result is a dense run of the physical result,
// its bits a run of whole bytes of the mask; else one call per sample.
template <PreluBackwardFromBits kOp, const char* kName>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_batched(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const BatchRuleScope scope;
  const int64_t level = scope.level;
  if (!isBatchedAtLevel(grad_output, level) && !isBatchedAtLevel(mask, level) &&
      !isBatchedAtLevel(result, level) && !isBatchedAtLevel(weight, level)) {
    return kOp(grad_output, mask, result, weight);
  }
  const int64_t batch =
      batch_size({&grad_output, &mask, &result, &weight}, level)
          .guard_int(__FILE__, __LINE__);
  const int64_t n = sample_numel(result);
  if (isBatchedAtLevel(result, level) && isBatchedAtLevel(mask, level) &&
      n % 8 == 0 && result.dim() > 0) {
    const at::Tensor y = batch_in_front(result, level, batch);
    if (is_batch_outermost(y)) {
      const at::Tensor w = physical_weight(
          result,
          weight,
          level,
          batch,
          /*per_sample=*/true,
          kName);
      auto [grad_input, grad_weight] =
          kOp(batch_in_front(grad_output, level, batch),
              batch_in_front(mask, level, batch).contiguous().view({-1}),
              y,
              w);
      return {
          makeBatched(grad_input, 0, level),
          makeBatched(
              grad_weight.reshape_symint(
                  with_leading(batch, weight.sym_sizes())),
              0,
              level)};
    }
  }
  std::vector<at::Tensor> grad_inputs;
  std::vector<at::Tensor> grad_weights;
  for (int64_t b = 0; b < batch; ++b) {
    auto [grad_input, grad_weight] =
        kOp(sample(grad_output, level, b),
            sample(mask, level, b),
            sample(result, level, b),
            sample(weight, level, b));
    grad_inputs.push_back(grad_input);
    grad_weights.push_back(grad_weight);
  }
  return {
      makeBatched(at::stack(grad_inputs), 0, level),
      makeBatched(at::stack(grad_weights), 0, level)};
}

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, FuncTorchBatched, m) {
  m.impl("leaky_relu_with_mask", TORCH_FN(actx::leaky_relu_with_mask_batched));
  m.impl(
      "leaky_relu_backward_from_mask",
      TORCH_FN(actx::leaky_relu_backward_from_mask_batched));
  m.impl("prelu_with_mask", TORCH_FN(actx::prelu_with_mask_batched));
  m.impl(
      "prelu_backward_from_mask",
      TORCH_FN((actx::prelu_backward_from_bits_batched<
                &actx::prelu_backward_from_mask,
                actx::kFromMask>)));
  m.impl("prelu_with_parity", TORCH_FN(actx::prelu_with_parity_batched));
  m.impl(
      "prelu_backward_from_parity",
      TORCH_FN((actx::prelu_backward_from_bits_batched<
                &actx::prelu_backward_from_parity,
                actx::kFromParity>)));
  m.impl("leaky_relu", TORCH_FN(actx::leaky_relu_batched));
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__batched));
  m.impl("leaky_relu_backward", TORCH_FN(actx::leaky_relu_backward_batched));
  m.impl("prelu", TORCH_FN(actx::prelu_batched));
  m.impl("prelu_backward", TORCH_FN(actx::prelu_backward_batched));
}
