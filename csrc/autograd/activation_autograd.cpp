// Autograd for every actx operator, in C++ so that LibTorch and TorchScript
// users get gradients too. Each Autograd kernel is written the way PyTorch's
// generated ones (VariableType) are: it records a graph node (node.h) that
// keeps what the backward formula (derivatives.h) reads, runs the operator
// below autograd, and sets the forward-mode tangent from the primals. Unlike a
// torch::autograd::Function, this composes with torch.func (grad, vjp, jacrev,
// jvp, jacfwd, vmap over them) and forward-mode AD: a Function runs its forward
// with grad mode off, which nested functorch levels cannot see through, so
// functorch refuses it; and a C++ Function has no forward-mode formula, so a
// tangent passed through it would be dropped without a word.
//
// What each node keeps is decided in one place, keep_for_backward.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/library.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "actx/actx.h"
#define ACTX_FORMULA_IDS_ONLY
#include "activation_formulas.h"
#undef ACTX_FORMULA_IDS_ONLY
#include "autograd/derivatives.h"
#include "autograd/node.h"
#include "checks.h"
#include "private_ops.h"

namespace actx::autograd {
namespace {

// ---- The save policy (docs/memory.md) ----

// What the node of a leaky_relu or prelu call keeps for the backward.
enum class Keep {
  kInput,      // x (and the weight), as torch's operators do
  kSignMask,   // the sign mask of x: alone (leaky_relu), or beside prelu's
               // output and weight, from which x = y / w where x <= 0
  kParityBits, // prelu's output, weight and parity bits, which recover x
};

// Whether `t` is being traced (torch.compile, torch.export: fake or functional
// tensors). Traced graphs keep the input: Inductor's partitioner chooses what a
// compiled graph saves by itself, so the setting does not change what is
// compiled.
bool traced(const at::Tensor& t) {
  return t.key_set().has_any(c10::DispatchKeySet(
      {c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
}

// Whether the bits may be kept on CUDA, where they are packed by ATen
// operations around actx's kernels (and prelu reads its weight on the host: a
// synchronization per call): off until a fused kernel has been measured on a
// GPU; ACTX_CUDA_BACKWARD_BITS=1 at load turns it on, for that measurement.
bool bits_on_cuda() {
  static const bool enabled = [] {
    const char* env = std::getenv("ACTX_CUDA_BACKWARD_BITS");
    return env != nullptr && std::string(env) == "1";
  }();
  return enabled;
}

// Whether the values of `t` are there to compute bits from, and to read: a
// plain CPU tensor (or a CUDA one, with bits_on_cuda), not a traced one and
// not functorch's (whose values are not the ones to read here).
bool plain(const at::Tensor& t) {
  const c10::DispatchKeySet functorch(
      {c10::DispatchKey::FuncTorchGradWrapper,
       c10::DispatchKey::FuncTorchBatched});
  const bool device_ok =
      t.device().is_cpu() || (t.device().is_cuda() && bits_on_cuda());
  return device_ok && !traced(t) && !t.key_set().has_any(functorch);
}

// prelu's choice, from its weight's values:
// - kParityBits: float32, float16, bfloat16 with every weight positive and
//   finite (the forward may still find an x it cannot recover, such as a
//   subnormal output: that call keeps x);
// - kSignMask: float32/float64 with weight magnitudes in [2^-20, 2^20]: x <= 0
//   is taken as y / w, within rounding;
// - kInput otherwise.
Keep prelu_keeps(const at::Tensor& self, const at::Tensor& weight) {
  at::Tensor w;
  {
    // A copy: below autograd an operator must not return its input, which
    // to() does for a float64 weight.
    at::AutoDispatchBelowADInplaceOrView guard;
    w = weight.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true);
    w = (w.is_cpu() ? w : w.cpu()).contiguous();
  }
  const double* data = w.const_data_ptr<double>();
  bool positive = true;
  bool moderate = true;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double magnitude = std::fabs(data[i]);
    positive = positive && data[i] > 0 && std::isfinite(data[i]);
    moderate = moderate && magnitude >= std::ldexp(1.0, -20) &&
        magnitude <= std::ldexp(1.0, 20);
  }
  const auto dtype = self.scalar_type();
  if (positive && dtype != at::kDouble) {
    return Keep::kParityBits;
  }
  if (moderate && (dtype == at::kFloat || dtype == at::kDouble)) {
    return Keep::kSignMask;
  }
  return Keep::kInput;
}

// The one decision: what a call of leaky_relu (formula kPrelu, `param`
// undefined), prelu (kPrelu with its weight) or bias_leaky_relu
// (kBiasLeakyRelu, `param` its bias or undefined) keeps for its backward. Only
// asked when a gradient will be computed. leaky_relu keeps the sign mask rather
// than its output, which would be smaller still where the next layer keeps it
// anyway, but would make modifying the output in place before the backward an
// error, where torch's leaky_relu (which keeps its input) allows it
// (docs/memory.md has both measured).
Keep keep_for_backward(
    Formula formula,
    const at::Tensor& self,
    const at::Tensor& param) {
  if (!backward_masks_enabled() || !plain(self) ||
      (param.defined() && !plain(param))) {
    return Keep::kInput;
  }
  if (formula == Formula::kPrelu && param.defined()) {
    return prelu_keeps(self, param);
  }
  // leaky_relu's sign mask; bias_leaky_relu's branch (and saturation) bits.
  return Keep::kSignMask;
}

// ---- leaky_relu ----

void set_leaky_relu_tangent(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  if (const at::Tensor t = tangent_of(self); t.defined()) {
    result._set_fw_grad(leaky_relu_tangent(t, self, negative_slope), 0, false);
  }
}

// leaky_relu keeping its sign mask: the output, the mask, and (when self
// requires grad) the node that keeps the mask for the backward.
std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask_autograd(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  auto node = make_node<LeakyReluFromMaskFormula>(self);
  at::Tensor result, mask;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, mask) =
        internal::leaky_relu_with_mask(self, negative_slope);
  }
  if (node) {
    node->set_constants({negative_slope, result.strides().vec()});
    node->keep(node->saved.mask, mask);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_leaky_relu_tangent(result, self, negative_slope);
  return {result, mask};
}

at::Tensor leaky_relu_autograd(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  // The mask only when a backward will read it: inference computes none.
  if (torch::autograd::compute_requires_grad(self) &&
      keep_for_backward(Formula::kPrelu, self, at::Tensor()) ==
          Keep::kSignMask) {
    return std::get<0>(leaky_relu_with_mask_autograd(self, negative_slope));
  }
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::leaky_relu(self, negative_slope);
  }
  if (auto node = make_node<LeakyReluFormula<false>>(self)) {
    node->set_constants({negative_slope, /*self_is_result=*/false});
    node->keep(node->saved.self, self);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_leaky_relu_tangent(result, self, negative_slope);
  return result;
}

at::Tensor& leaky_relu__autograd(
    at::Tensor& self,
    const at::Scalar& negative_slope) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  // Checked before anything is written, so that a refused call leaves `self` as
  // it was.
  TORCH_CHECK(
      !requires_grad || !self.is_leaf(),
      "actx::leaky_relu_: a leaf tensor that requires grad cannot be modified in place; use "
      "actx::leaky_relu, or call it under torch.no_grad()");
  // The input is overwritten, so backward reads the sign of x off the output:
  // with a slope >= 0, out > 0 exactly where x > 0.
  TORCH_CHECK(
      !requires_grad ||
          (!negative_slope.isComplex() && negative_slope.toDouble() >= 0.0),
      "actx::leaky_relu_: the backward pass of the in-place leaky_relu reads the sign of the input "
      "off the output, which needs negative_slope >= 0; got negative_slope=",
      negative_slope,
      ". Use the out-of-place actx::leaky_relu when the slope is negative.");
  torch::autograd::check_inplace(self, requires_grad);
  auto node = make_node<LeakyReluFormula<true>>(self);
  // The new tangent comes from the input, before it is overwritten (so any
  // slope will do).
  const at::Tensor self_t = tangent_of(self);
  const at::Tensor new_t = self_t.defined()
      ? leaky_relu_tangent(self_t, self, negative_slope)
      : at::Tensor();
  {
    // Below autograd only: the ADInplaceOrView kernel bumps the version
    // counter.
    at::AutoDispatchBelowAutograd guard;
    actx::leaky_relu_(self, negative_slope);
  }
  if (node) {
    torch::autograd::rebase_history(self, node);
    node->set_constants({negative_slope, /*self_is_result=*/true});
    node->keep(
        node->saved.self,
        self,
        /*is_output=*/true,
        /*is_inplace_on_view=*/self.is_view());
    node_created(node);
  }
  if (new_t.defined()) {
    // An in-place op updates the tangent in place too (views of it see the
    // change).
    self._set_fw_grad(self_t.copy_(new_t), 0, /*is_inplace_op=*/true);
  }
  return self;
}

// The in-place op bypasses ADInplaceOrView's fallthrough: bump the version
// counter here, as ATen's in-place operators do, so that autograd sees saved
// tensors that were overwritten.
at::Tensor& leaky_relu__inplace_or_view(
    at::Tensor& self,
    const at::Scalar& negative_slope) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    actx::leaky_relu_(self, negative_slope);
  }
  torch::autograd::impl::bump_version(self);
  return self;
}

// leaky_relu_backward is linear in grad_output: its tangent is the operator on
// grad_output's tangent (self's contributes zero almost everywhere).
at::Tensor leaky_relu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  auto node = make_node<LeakyReluBackwardFormula>(grad_output, self);
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::leaky_relu_backward(
        grad_output, self, negative_slope, self_is_result);
  }
  if (node) {
    node->set_constants({negative_slope, self_is_result});
    node->keep(node->saved.self, self);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    result._set_fw_grad(
        actx::leaky_relu_backward(
            t, primal_of(self), negative_slope, self_is_result),
        0,
        false);
  }
  return result;
}

at::Tensor leaky_relu_backward_from_mask_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope) {
  auto node = make_node<LeakyReluBackwardFromMaskFormula>(grad_output);
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = internal::leaky_relu_backward_from_mask(
        grad_output, mask, negative_slope);
  }
  if (node) {
    node->set_constants({negative_slope, result.strides().vec()});
    node->keep(node->saved.mask, mask);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    const at::Tensor laid_out = t.strides() == grad_output.strides()
        ? t
        : at::empty_like(grad_output).copy_(t);
    result._set_fw_grad(
        internal::leaky_relu_backward_from_mask(
            laid_out, primal_of(mask), negative_slope),
        0,
        false);
  }
  return result;
}

// ---- prelu ----

void set_prelu_tangent(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Tensor& weight) {
  const at::Tensor self_t = tangent_of(self);
  const at::Tensor weight_t = tangent_of(weight);
  if (self_t.defined() || weight_t.defined()) {
    result._set_fw_grad(
        prelu_tangent(self, weight, self_t, weight_t).to(result.scalar_type()),
        0,
        false);
  }
}

// A prelu call that keeps its input, as torch's does.
void record_prelu_with_input(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Tensor& weight) {
  if (auto node = make_node<PreluFormula>(self, weight)) {
    node->keep(node->saved.self, self);
    node->keep(node->saved.weight, weight);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_prelu_tangent(result, self, weight);
}

// A prelu call that keeps its output, its weight and `bits`. The tangent is
// set first: a saved output keeps the tangent it has when saved, which forward
// over reverse reads.
template <PreluBits kKind>
void record_prelu_with_bits(
    at::Tensor& result,
    const at::Tensor& bits,
    const at::Tensor& self,
    const at::Tensor& weight) {
  auto node = make_node<PreluFromBitsFormula<kKind>>(self, weight);
  set_prelu_tangent(result, self, weight);
  if (node) {
    torch::autograd::set_history(result, node);
    node->keep(node->saved.result, result, /*is_output=*/true);
    node->keep(node->saved.bits, bits);
    node->keep(node->saved.weight, weight);
    node_created(node);
  }
}

std::tuple<at::Tensor, at::Tensor> prelu_with_mask_autograd(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor result, mask;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, mask) = internal::prelu_with_mask(self, weight);
  }
  record_prelu_with_bits<PreluBits::kSign>(result, mask, self, weight);
  return {result, mask};
}

// The node keeps the parity bits where they recover every x, else x itself.
// The verdict is read on the host: free for a CPU tensor (the policy asks for
// parity bits on the CPU only, unless ACTX_CUDA_BACKWARD_BITS=1).
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity_autograd(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor result, parity, recoverable;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, parity, recoverable) =
        internal::prelu_with_parity(self, weight);
  }
  // Without a gradient to compute, record_prelu_with_input sets the tangent
  // alone (no node), and the verdict is not read.
  if (torch::autograd::compute_requires_grad(self, weight) &&
      recoverable.item<bool>()) {
    record_prelu_with_bits<PreluBits::kParity>(result, parity, self, weight);
  } else {
    record_prelu_with_input(result, self, weight);
  }
  return {result, parity, recoverable};
}

at::Tensor prelu_autograd(const at::Tensor& self, const at::Tensor& weight) {
  if (torch::autograd::compute_requires_grad(self, weight)) {
    switch (keep_for_backward(Formula::kPrelu, self, weight)) {
      case Keep::kParityBits:
        return std::get<0>(prelu_with_parity_autograd(self, weight));
      case Keep::kSignMask:
        return std::get<0>(prelu_with_mask_autograd(self, weight));
      case Keep::kInput:
        break;
    }
  }
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::prelu(self, weight);
  }
  record_prelu_with_input(result, self, weight);
  return result;
}

std::tuple<at::Tensor, at::Tensor> prelu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Tensor& weight) {
  auto node = make_node<PreluBackwardFormula>(grad_output, self, weight);
  at::Tensor grad_input, grad_weight;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_weight) =
        actx::prelu_backward(grad_output, self, weight);
  }
  if (node) {
    node->keep(node->saved.grad_output, grad_output);
    node->keep(node->saved.self, self);
    node->keep(node->saved.weight, weight);
    torch::autograd::set_history({grad_input, grad_weight}, node);
    node_created(node);
  }
  const auto [grad_input_t, grad_weight_t] =
      prelu_backward_tangents(grad_output, self, weight);
  if (grad_input_t.defined()) {
    grad_input._set_fw_grad(
        grad_input_t.to(grad_input.scalar_type()), 0, false);
  }
  if (grad_weight_t.defined()) {
    grad_weight._set_fw_grad(grad_weight_t, 0, false);
  }
  return {grad_input, grad_weight};
}

// _prelu_backward_from_mask (kSign) and _prelu_backward_from_parity (kParity).
template <PreluBits kKind>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  auto node = make_node<PreluBackwardFromBitsFormula<kKind>>(
      grad_output, result, weight);
  at::Tensor grad_input, grad_weight;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_weight) =
        prelu_backward_from_bits(kKind, grad_output, bits, result, weight);
  }
  if (node) {
    node->keep(node->saved.grad_output, grad_output);
    node->keep(node->saved.bits, bits);
    node->keep(node->saved.result, result);
    node->keep(node->saved.weight, weight);
    torch::autograd::set_history({grad_input, grad_weight}, node);
    node_created(node);
  }
  const auto [grad_input_t, grad_weight_t] = prelu_backward_from_bits_tangents(
      kKind, grad_output, bits, result, weight);
  if (grad_input_t.defined()) {
    grad_input._set_fw_grad(
        grad_input_t.to(grad_input.scalar_type()), 0, false);
  }
  if (grad_weight_t.defined()) {
    grad_weight._set_fw_grad(grad_weight_t, 0, false);
  }
  return {grad_input, grad_weight};
}

// ---- bias_leaky_relu ----

at::Tensor bias_of(const std::optional<at::Tensor>& bias) {
  return bias.has_value() ? *bias : at::Tensor();
}

std::optional<at::Tensor> primal_bias(const std::optional<at::Tensor>& bias) {
  return bias.has_value() && bias->defined()
      ? std::optional<at::Tensor>(primal_of(*bias))
      : std::nullopt;
}

// The tangent of bias_leaky_relu(x, b, ...): the backward operator applied to
// x's tangent plus b's broadcast.
void set_bias_leaky_relu_tangent(
    at::Tensor& result,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const BiasLeakyReluConstants& c) {
  const at::Tensor b = bias_of(bias);
  const at::Tensor g = with_bias_term(
      tangent_of(self),
      tangent_of(b),
      self.sym_sizes(),
      c.dim,
      self.scalar_type());
  if (g.defined()) {
    result._set_fw_grad(
        std::get<0>(actx::bias_leaky_relu_backward(
            g,
            primal_of(self),
            primal_bias(bias),
            c.negative_slope,
            c.gain,
            c.clamp,
            c.dim)),
        0,
        false);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor>
bias_leaky_relu_with_bits_autograd(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const at::Tensor b = bias_of(bias);
  auto node = make_node<BiasLeakyReluFromBitsFormula>(self, b);
  at::Tensor result, sign, saturation;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, sign, saturation) = internal::bias_leaky_relu_with_bits(
        self, bias, negative_slope, gain, clamp, dim);
  }
  if (node) {
    node->set_constants(
        {negative_slope,
         gain,
         clamp,
         dim,
         result.sizes().vec(),
         result.strides().vec(),
         static_cast<int64_t>(result.scalar_type())});
    node->keep(node->saved.sign, sign);
    node->keep(node->saved.saturation, saturation);
    node->keep(node->saved.bias, b);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_bias_leaky_relu_tangent(
      result, self, bias, {negative_slope, gain, clamp, dim});
  return {result, sign, saturation};
}

at::Tensor bias_leaky_relu_autograd(
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const at::Tensor b = bias_of(bias);
  if (torch::autograd::compute_requires_grad(self, b) &&
      keep_for_backward(Formula::kBiasLeakyRelu, self, b) == Keep::kSignMask) {
    return std::get<0>(bias_leaky_relu_with_bits_autograd(
        self, bias, negative_slope, gain, clamp, dim));
  }
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result =
        actx::bias_leaky_relu(self, bias, negative_slope, gain, clamp, dim);
  }
  const BiasLeakyReluConstants constants{negative_slope, gain, clamp, dim};
  if (auto node = make_node<BiasLeakyReluFormula>(self, b)) {
    node->set_constants(constants);
    node->keep(node->saved.self, self);
    node->keep(node->saved.bias, b);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_bias_leaky_relu_tangent(result, self, bias, constants);
  return result;
}

// The two backward operators are linear in grad_output: their tangents are
// the operator on grad_output's tangent.
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  const at::Tensor b = bias_of(bias);
  auto node = make_node<BiasLeakyReluBackwardFormula>(grad_output, self, b);
  at::Tensor grad_input, grad_bias;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_bias) = actx::bias_leaky_relu_backward(
        grad_output, self, bias, negative_slope, gain, clamp, dim);
  }
  if (node) {
    node->set_constants({negative_slope, gain, clamp, dim});
    node->keep(node->saved.self, self);
    node->keep(node->saved.bias, b);
    torch::autograd::set_history({grad_input, grad_bias}, node);
    node_created(node);
  }
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    auto [input_t, bias_t] = actx::bias_leaky_relu_backward(
        t,
        primal_of(self),
        primal_bias(bias),
        negative_slope,
        gain,
        clamp,
        dim);
    grad_input._set_fw_grad(input_t, 0, false);
    grad_bias._set_fw_grad(bias_t, 0, false);
  }
  return {grad_input, grad_bias};
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_from_bits_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& sign,
    const at::Tensor& saturation,
    const std::optional<at::Tensor>& bias,
    const at::Scalar& negative_slope,
    const at::Scalar& gain,
    const std::optional<at::Scalar>& clamp,
    int64_t dim) {
  auto node = make_node<BiasLeakyReluBackwardFromBitsFormula>(grad_output);
  at::Tensor grad_input, grad_bias;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_bias) =
        internal::bias_leaky_relu_backward_from_bits(
            grad_output,
            sign,
            saturation,
            bias,
            negative_slope,
            gain,
            clamp,
            dim);
  }
  if (node) {
    node->set_constants(
        {negative_slope,
         gain,
         clamp,
         dim,
         grad_input.sizes().vec(),
         grad_input.strides().vec(),
         static_cast<int64_t>(grad_input.scalar_type())});
    node->keep(node->saved.sign, sign);
    node->keep(node->saved.saturation, saturation);
    node->keep(node->saved.bias, bias_of(bias));
    torch::autograd::set_history({grad_input, grad_bias}, node);
    node_created(node);
  }
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    const at::Tensor laid_out = t.strides() == grad_output.strides()
        ? t
        : at::empty_like(grad_output).copy_(t);
    auto [input_t, bias_t] = internal::bias_leaky_relu_backward_from_bits(
        laid_out,
        primal_of(sign),
        primal_of(saturation),
        primal_bias(bias),
        negative_slope,
        gain,
        clamp,
        dim);
    grad_input._set_fw_grad(input_t, 0, false);
    grad_bias._set_fw_grad(bias_t, 0, false);
  }
  return {grad_input, grad_bias};
}

} // namespace
} // namespace actx::autograd

TORCH_LIBRARY_IMPL(actx, Autograd, m) {
  using namespace actx::autograd;
  m.impl("leaky_relu", TORCH_FN(leaky_relu_autograd));
  m.impl("leaky_relu_", TORCH_FN(leaky_relu__autograd));
  m.impl("leaky_relu_backward", TORCH_FN(leaky_relu_backward_autograd));
  m.impl("prelu", TORCH_FN(prelu_autograd));
  m.impl("prelu_backward", TORCH_FN(prelu_backward_autograd));
  m.impl("bias_leaky_relu", TORCH_FN(bias_leaky_relu_autograd));
  m.impl(
      "bias_leaky_relu_backward", TORCH_FN(bias_leaky_relu_backward_autograd));
  m.impl("_leaky_relu_with_mask", TORCH_FN(leaky_relu_with_mask_autograd));
  m.impl(
      "_leaky_relu_backward_from_mask",
      TORCH_FN(leaky_relu_backward_from_mask_autograd));
  m.impl("_prelu_with_mask", TORCH_FN(prelu_with_mask_autograd));
  m.impl("_prelu_with_parity", TORCH_FN(prelu_with_parity_autograd));
  m.impl(
      "_prelu_backward_from_mask",
      TORCH_FN(prelu_backward_from_bits_autograd<PreluBits::kSign>));
  m.impl(
      "_prelu_backward_from_parity",
      TORCH_FN(prelu_backward_from_bits_autograd<PreluBits::kParity>));
  m.impl(
      "_bias_leaky_relu_with_bits",
      TORCH_FN(bias_leaky_relu_with_bits_autograd));
  m.impl(
      "_bias_leaky_relu_backward_from_bits",
      TORCH_FN(bias_leaky_relu_backward_from_bits_autograd));
}

TORCH_LIBRARY_IMPL(actx, ADInplaceOrView, m) {
  m.impl("leaky_relu_", TORCH_FN(actx::autograd::leaky_relu__inplace_or_view));
}
