// Autograd for every actx operator, in C++ so that LibTorch and TorchScript
// users get gradients too. Each Autograd kernel is written the way PyTorch's
// generated ones (VariableType) are: it records a graph node that holds the
// saved tensors and the backward formula, runs the operator below autograd, and
// computes the forward-mode tangent from the primals. Unlike a
// torch::autograd::Function, this composes with torch.func (grad, vjp, jacrev,
// jvp, jacfwd, vmap over them) and forward-mode AD: a Function runs its forward
// with grad mode off, which nested functorch levels cannot see through, so
// functorch refuses it; and a C++ Function has no forward-mode formula, so a
// tangent passed through it would be dropped without a word. The formulas call
// the actx operators through the dispatcher, and those have Autograd kernels of
// their own: double backward, and forward over reverse (hessians), come from
// the same code.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/dynamo/compiled_autograd.h>
#include <torch/library.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actx/actx.h"
#include "autograd/node_ref.h"
#include "shape.h"

namespace actx {
namespace {

using autograd::new_node;
using autograd::node_created;
using autograd::NodeRef;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;
// The scalar arguments a backward formula needs (a slope, a flag), in the order
// it reads them.
using Constants = std::vector<c10::IValue>;

// ---- Backward formulas, one per operator ----
// backward(saved, constants, grads) returns one gradient per differentiable
// input (undefined: none). `grads` holds one gradient per output; an undefined
// one means zero.

struct LeakyReluFormula {
  static constexpr const char* kName = "actx::LeakyReluBackward";
  // saved: self (or, in place, the result); constants: negative_slope,
  // self_is_result.
  static variable_list backward(
      const variable_list& saved,
      const Constants& constants,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor()};
    }
    return {actx::leaky_relu_backward(
        grads[0], saved[0], constants[0].toScalar(), constants[1].toBool())};
  }
};

// leaky_relu_backward(grad_output, self, ...) is linear in grad_output with the
// same mask; its derivative in self is zero almost everywhere (torch's rule).
struct LeakyReluBackwardFormula {
  static constexpr const char* kName = "actx::LeakyReluBackwardBackward";
  // saved: self; constants: negative_slope, self_is_result. Inputs:
  // grad_output, self.
  static variable_list backward(
      const variable_list& saved,
      const Constants& constants,
      const variable_list& grads) {
    variable_list result =
        LeakyReluFormula::backward(saved, constants, grads); // grad_output's
    result.emplace_back();                                   // self's
    return result;
  }
};

struct PreluFormula {
  static constexpr const char* kName = "actx::PreluBackward";
  // saved: self, weight. Inputs: self, weight.
  static variable_list backward(
      const variable_list& saved,
      const Constants&,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    auto [grad_input, grad_weight] =
        actx::prelu_backward(grads[0], saved[0], saved[1]);
    return {grad_input, grad_weight};
  }
};

// The formulas of the nodes that keep a sign mask (backward_masks_enabled()):
// leaky_relu keeps the mask alone, prelu the mask and its output (shared with
// the layer after it, which usually keeps its input), from which the weight
// gradient recovers x where x <= 0.
struct LeakyReluMaskFormula {
  static constexpr const char* kName = "actx::LeakyReluBackward";
  // saved: mask; constants: negative_slope, the output's strides.
  static variable_list backward(
      const variable_list& saved,
      const Constants& constants,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor()};
    }
    return {actx::leaky_relu_backward_from_mask(
        grads[0],
        saved[0],
        constants[0].toScalar(),
        constants[1].toSymIntVector())};
  }
};

// leaky_relu_backward_from_mask is linear in grad_output with the same mask
// (which is not differentiable).
struct LeakyReluBackwardFromMaskFormula {
  static constexpr const char* kName =
      "actx::LeakyReluBackwardFromMaskBackward";
  // saved and constants as LeakyReluMaskFormula. Inputs: grad_output.
  static variable_list backward(
      const variable_list& saved,
      const Constants& constants,
      const variable_list& grads) {
    return LeakyReluMaskFormula::backward(saved, constants, grads);
  }
};

// What a prelu node keeps beside its output and weight: a sign mask, or parity
// bits (prelu_with_parity: x itself is recovered from the output).
enum class PreluBits { kSign, kParity };

// prelu_backward_from_mask or prelu_backward_from_parity.
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits(
    PreluBits kind,
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  return kind == PreluBits::kSign
      ? actx::prelu_backward_from_mask(grad_output, bits, result, weight)
      : actx::prelu_backward_from_parity(grad_output, bits, result, weight);
}

template <PreluBits kKind>
struct PreluBitsFormula {
  static constexpr const char* kName = "actx::PreluBackward";
  // saved: result, mask or parity, weight. Inputs: self, weight.
  static variable_list backward(
      const variable_list& saved,
      const Constants&,
      const variable_list& grads) {
    if (!grads[0].defined()) {
      return {at::Tensor(), at::Tensor()};
    }
    auto [grad_input, grad_weight] =
        prelu_backward_from_bits(kKind, grads[0], saved[1], saved[0], saved[2]);
    return {grad_input, grad_weight};
  }
};

// a + b where an undefined tensor stands for zero (a tangent or gradient that
// does not exist).
at::Tensor add_defined(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined()) {
    return b;
  }
  return b.defined() ? a + b : a;
}

// `shape`: the weight's shape aligned to the input (prelu_weight_sym_shape),
// computed once per formula. A weight (or its gradient or tangent) reshaped to
// it broadcasts against the input.

// Sums a term of the weight gradient to the weight's shape and dtype.
at::Tensor sum_to_weight(
    const at::Tensor& term,
    const SymDimVector& shape,
    const at::Tensor& weight) {
  return term.sum_to_size_symint(shape)
      .reshape_symint(weight.sym_sizes())
      .to(weight.scalar_type());
}

// The derivatives of prelu_backward(g, x, w) (prelu's second derivatives), in
// ATen operations, themselves differentiable. prelu_backward computes
//   grad_input  = x > 0 ? g : w * g
//   grad_weight = sum over the broadcast dims of (x > 0 ? 0 : x * g)
// Either incoming gradient may be undefined (zero); its terms are then left
// out.
struct PreluBackwardFormula {
  static constexpr const char* kName = "actx::PreluBackwardBackward";
  // saved: grad_output, self, weight. Inputs: grad_output, self, weight.
  static variable_list backward(
      const variable_list& saved,
      const Constants&,
      const variable_list& grads) {
    const at::Tensor& g = saved[0];
    const at::Tensor& x = saved[1];
    const at::Tensor& weight = saved[2];
    const at::Tensor& gg_input = grads[0];  // d loss / d grad_input
    const at::Tensor& gg_weight = grads[1]; // d loss / d grad_weight
    if (!gg_input.defined() && !gg_weight.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const SymDimVector shape =
        prelu_weight_sym_shape(x, weight, "prelu_backward");
    const at::Tensor w = weight.reshape_symint(shape);
    const at::Tensor gg_w =
        gg_weight.defined() ? gg_weight.reshape_symint(shape) : at::Tensor();
    const at::Tensor positive = x > 0;
    // d/dg: grad_input gives (x > 0 ? gg_input : w * gg_input); grad_weight
    // gives x * gg_w on x <= 0.
    const at::Tensor on_negative = add_defined(
        gg_input.defined() ? w * gg_input : at::Tensor(),
        gg_w.defined() ? x * gg_w : at::Tensor());
    const at::Tensor d_grad =
        at::where(
            positive,
            gg_input.defined() ? gg_input : at::zeros_like(g),
            on_negative)
            .to(g.scalar_type());
    // d/dx: only grad_weight depends on x (away from 0): g * gg_w on x <= 0.
    const at::Tensor d_self = gg_w.defined()
        ? at::where(positive, at::zeros_like(x), g * gg_w).to(x.scalar_type())
        : at::Tensor();
    // d/dw: only grad_input depends on w: g * gg_input on x <= 0, summed to the
    // weight's shape.
    const at::Tensor d_weight = gg_input.defined()
        ? sum_to_weight(
              at::where(positive, at::zeros_like(x), g * gg_input),
              shape,
              weight)
        : at::Tensor();
    return {d_grad, d_self, d_weight};
  }
};

// x > 0 as a backward from bits knows it: from the mask, or (a positive
// weight) y > 0.
at::Tensor positive_input(
    PreluBits kind,
    const at::Tensor& bits,
    const at::Tensor& y) {
  return kind == PreluBits::kSign ? unpack_mask_reference(bits, y) : y.gt(0);
}

// The derivatives of prelu_backward_from_mask(g, mask, y, w) and
// prelu_backward_from_parity(g, parity, y, w), where y = w * x is prelu's
// output and m is x > 0:
//   grad_input  = m ? g : w * g
//   grad_weight = (sum over the broadcast dims of (m ? 0 : g * y)) / w
// (from parity bits the kernels sum g * x with x recovered exactly; its
// derivatives are these).
template <PreluBits kKind>
struct PreluBackwardFromBitsFormula {
  static constexpr const char* kName = kKind == PreluBits::kSign
      ? "actx::PreluBackwardFromMaskBackward"
      : "actx::PreluBackwardFromParityBackward";
  // saved: grad_output, mask or parity, result, weight. Inputs: grad_output,
  // result, weight.
  static variable_list backward(
      const variable_list& saved,
      const Constants&,
      const variable_list& grads) {
    const at::Tensor& g = saved[0];
    const at::Tensor& y = saved[2];
    const at::Tensor& weight = saved[3];
    const at::Tensor& gg_input = grads[0];
    const at::Tensor& gg_weight = grads[1];
    if (!gg_input.defined() && !gg_weight.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const SymDimVector shape =
        prelu_weight_sym_shape(y, weight, "prelu_backward_from_mask");
    const at::Tensor w = weight.reshape_symint(shape);
    const at::Tensor positive = positive_input(kKind, saved[1], y);
    // gg_weight / w, broadcast: the weight gradient's derivative per g * y.
    const at::Tensor per_term = gg_weight.defined()
        ? gg_weight.reshape_symint(shape) / w
        : at::Tensor();
    const at::Tensor on_negative = add_defined(
        gg_input.defined() ? w * gg_input : at::Tensor(),
        per_term.defined() ? y * per_term : at::Tensor());
    const at::Tensor d_grad =
        at::where(
            positive,
            gg_input.defined() ? gg_input : at::zeros_like(g),
            on_negative)
            .to(g.scalar_type());
    const at::Tensor d_result = per_term.defined()
        ? at::where(positive, at::zeros_like(y), g * per_term)
              .to(y.scalar_type())
        : at::Tensor();
    // d/dw: g * gg_input where x <= 0 (from grad_input), and -gg_weight *
    // grad_weight / w (grad_weight is a sum divided by w).
    at::Tensor d_weight = gg_input.defined()
        ? at::where(positive, at::zeros_like(g), g * gg_input)
        : at::Tensor();
    if (per_term.defined()) {
      d_weight = add_defined(
          d_weight,
          at::where(positive, at::zeros_like(y), -(g * y) * per_term / w));
    }
    return {d_grad, d_result, sum_to_weight(d_weight, shape, weight)};
  }
};

// ---- The graph node ----

// One call of an actx operator in the autograd graph: the tensors its formula
// reads, saved as autograd saves them (checked against later in-place changes,
// saved-tensor hooks, freed after backward unless retain_graph), and the scalar
// arguments it needs.
template <class Formula>
class ActxNode final : public torch::autograd::TraceableFunction {
 public:
  std::string name() const override {
    return Formula::kName;
  }

  void save_constants(Constants constants) {
    constants_ = std::move(constants);
  }

  void save(
      const at::Tensor& t,
      bool is_output = false,
      bool is_inplace_on_view = false) {
    saved_.emplace_back(t, is_output, is_inplace_on_view);
    is_output_.push_back(is_output);
  }

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return Formula::backward(unpack_saved(), constants_, grads);
  }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : saved_) {
      s.reset_data();
    }
  }

  // Compiled autograd (torch._dynamo.config.compiled_autograd): what identifies
  // this node for its cache, and the call of the formula that goes into its
  // graph, as PyTorch's own nodes do it.
  void compiled_args(
      torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    args.collect(std::string(Formula::kName));
    for (size_t k = 0; k < saved_.size(); ++k) {
      args.collect(saved_[k], is_output_[k]);
    }
    for (const auto& c : constants_) {
      args.collect(c);
    }
  }

  variable_list apply_with_saved(
      const variable_list& grads,
      torch::dynamo::autograd::SwapSavedVariables& saved) override {
    // Saved tensors and lifted scalars become the graph's inputs for the call.
    for (auto& s : saved_) {
      saved.before(s);
    }
    for (auto& c : constants_) {
      saved.before(c);
    }
    // The formula's arguments: the saved tensors, then the constants.
    std::vector<c10::IValue> args;
    std::vector<at::TypePtr> schema;
    for (const auto& t : unpack_saved()) {
      args.emplace_back(t);
      schema.emplace_back(at::TensorType::get());
    }
    for (const auto& c : constants_) {
      args.push_back(c);
      schema.push_back(c.type());
    }
    const auto& python = torch::dynamo::autograd::getPyCompilerInterface();
    const std::string fn_name = python->bind_function(
        saved.get_py_compiler(),
        Formula::kName,
        &apply_functional,
        schema,
        /*is_custom_function=*/true,
        /*is_traceable=*/true);
    const auto output_metadata = torch::dynamo::autograd::IValuePacker<
        std::vector<std::optional<torch::autograd::InputMetadata>>>::
        pack(torch::dynamo::autograd::get_input_metadata(next_edges()));
    auto results = python->call_function(
        saved.get_py_compiler(),
        "apply_functional",
        fn_name,
        grads,
        args,
        output_metadata);
    for (auto& s : saved_) {
      saved.after(s);
    }
    for (auto& c : constants_) {
      saved.after(c);
    }
    return results;
  }

 private:
  static variable_list apply_functional(
      const variable_list& grads,
      const std::vector<c10::IValue>& args) {
    variable_list tensors;
    Constants constants;
    for (const auto& a : args) {
      if (a.isTensor()) {
        tensors.push_back(a.toTensor());
      } else {
        constants.push_back(a);
      }
    }
    return Formula::backward(tensors, constants, grads);
  }

  variable_list unpack_saved() {
    variable_list tensors;
    for (const auto& s : saved_) {
      tensors.push_back(s.unpack(this->getptr()));
    }
    return tensors;
  }

  std::mutex mutex_;
  std::vector<SavedVariable> saved_;
  std::vector<bool> is_output_;
  Constants constants_;
};

// The node of a call whose differentiable inputs are `inputs`, or null when
// none needs a gradient (the usual case in inference: no allocation then).
template <class Formula, class... Inputs>
NodeRef<ActxNode<Formula>> make_node(const Inputs&... inputs) {
  if (!torch::autograd::compute_requires_grad(inputs...)) {
    return nullptr;
  }
  auto node = new_node<ActxNode<Formula>>();
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  return node;
}

// ---- Forward-mode AD ----
// Forward-mode formulas are linear in the tangents; a tangent that does not
// exist contributes nothing. torch's forward-mode formulas for prelu count x ==
// 0 with the positive side (x >= 0) where its backward formulas do not (x > 0);
// actx follows both, so that its tangents equal torch's at 0 as well.

// The tangent of t at the forward-AD level (undefined: none), and t's primal
// value.
at::Tensor tangent_of(const at::Tensor& t) {
  return t.defined() ? t._fw_grad(/*level=*/0) : at::Tensor();
}
at::Tensor primal_of(const at::Tensor& t) {
  return t._fw_primal(/*level=*/0);
}

// The tangent of x > 0 ? a : w * a (prelu's output with a = x, its grad_input
// with a = grad_output), given the tangents a_t and w_t (either may be
// undefined): x >= 0 ? a_t : w * a_t + w_t * a, with non_negative = (x >= 0).
// a, w are primals, w in the broadcast `shape`.
at::Tensor masked_slope_tangent(
    const at::Tensor& non_negative,
    const at::Tensor& a,
    const at::Tensor& a_t,
    const at::Tensor& w,
    const at::Tensor& w_t,
    const SymDimVector& shape) {
  const at::Tensor on_negative = add_defined(
      a_t.defined() ? w.reshape_symint(shape) * a_t : at::Tensor(),
      w_t.defined() ? w_t.reshape_symint(shape) * a : at::Tensor());
  return at::where(
      non_negative, a_t.defined() ? a_t : at::zeros_like(a), on_negative);
}

// ---- Autograd kernels ----

// Whether `t` is being traced (torch.compile, torch.export: fake or functional
// tensors). Traced graphs keep the input: Inductor's partitioner chooses what a
// compiled graph saves by itself, and the mask operators there cost time
// (docs/memory.md) for no bytes it would not save anyway.
bool traced(const at::Tensor& t) {
  return t.key_set().has_any(c10::DispatchKeySet(
      {c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
}

void set_leaky_relu_tangent(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  if (const at::Tensor t = tangent_of(self); t.defined()) {
    result._set_fw_grad(
        actx::leaky_relu_backward(t, primal_of(self), negative_slope, false),
        0,
        false);
  }
}

// leaky_relu keeping its sign mask: the output, the mask, and (when self
// requires grad) the node that keeps the mask for the backward.
std::tuple<at::Tensor, at::Tensor> leaky_relu_with_mask_autograd(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
  auto node = make_node<LeakyReluMaskFormula>(self);
  at::Tensor result, mask;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, mask) = actx::leaky_relu_with_mask(self, negative_slope);
  }
  if (node) {
    node->save_constants(
        {negative_slope, c10::IValue(result.sym_strides().vec())});
    node->save(mask);
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
  if (backward_masks_enabled() && !traced(self) &&
      torch::autograd::compute_requires_grad(self)) {
    return std::get<0>(leaky_relu_with_mask_autograd(self, negative_slope));
  }
  auto node = make_node<LeakyReluFormula>(self);
  if (node) {
    node->save_constants({negative_slope, /*self_is_result=*/false});
    node->save(self);
  }
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::leaky_relu(self, negative_slope);
  }
  if (node) {
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
  auto node = make_node<LeakyReluFormula>(self);
  // The new tangent comes from the input, before it is overwritten (so any
  // slope will do).
  const at::Tensor self_t = tangent_of(self);
  const at::Tensor new_t = self_t.defined()
      ? actx::leaky_relu_backward(
            self_t, primal_of(self), negative_slope, false)
      : at::Tensor();
  {
    // Below autograd only: the ADInplaceOrView kernel bumps the version
    // counter.
    at::AutoDispatchBelowAutograd guard;
    actx::leaky_relu_(self, negative_slope);
  }
  if (node) {
    torch::autograd::rebase_history(self, node);
    node->save_constants({negative_slope, /*self_is_result=*/true});
    node->save(self, /*is_output=*/true, /*is_inplace_on_view=*/self.is_view());
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

// The autograd kernel of a backward operator, linear in grad_output:
// call(g, primal) runs it on g below autograd (its other tensors as primals
// when `primal`), the node goes on the result, and the result's tangent is the
// operator on grad_output's tangent (the other inputs' tangents contribute zero
// almost everywhere).
template <class Node, class Call>
at::Tensor run_linear_in_grad(
    const at::Tensor& grad_output,
    const Node& node,
    Call call) {
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = call(grad_output, false);
  }
  if (node) {
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    result._set_fw_grad(call(t, true), 0, false);
  }
  return result;
}

at::Tensor leaky_relu_backward_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& self,
    const at::Scalar& negative_slope,
    bool self_is_result) {
  auto node = make_node<LeakyReluBackwardFormula>(grad_output, self);
  if (node) {
    node->save_constants({negative_slope, self_is_result});
    node->save(self);
  }
  return run_linear_in_grad(
      grad_output, node, [&](const at::Tensor& g, bool primal) {
        return actx::leaky_relu_backward(
            g, primal ? primal_of(self) : self, negative_slope, self_is_result);
      });
}

void set_prelu_tangent(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Tensor& weight) {
  const at::Tensor self_t = tangent_of(self);
  const at::Tensor weight_t = tangent_of(weight);
  if (self_t.defined() || weight_t.defined()) {
    const at::Tensor x = primal_of(self);
    const at::Tensor w = primal_of(weight);
    const at::Tensor t = masked_slope_tangent(
        x >= 0, x, self_t, w, weight_t, prelu_weight_sym_shape(x, w, "prelu"));
    result._set_fw_grad(t.to(result.scalar_type()), 0, false);
  }
}

// A prelu call that keeps its output, its weight and `bits` for the backward:
// the node of the formula, with the tangent set first (a saved output keeps the
// tangent it has when saved; forward over reverse reads it).
template <PreluBits kKind>
void record_prelu_with_bits(
    at::Tensor& result,
    const at::Tensor& bits,
    const at::Tensor& self,
    const at::Tensor& weight) {
  auto node = make_node<PreluBitsFormula<kKind>>(self, weight);
  set_prelu_tangent(result, self, weight);
  if (node) {
    torch::autograd::set_history(result, node);
    node->save(result, /*is_output=*/true);
    node->save(bits);
    node->save(weight);
    node_created(node);
  }
}

// A prelu call that keeps its input, as torch's does.
void record_prelu_with_input(
    at::Tensor& result,
    const at::Tensor& self,
    const at::Tensor& weight) {
  auto node = make_node<PreluFormula>(self, weight);
  if (node) {
    node->save(self);
    node->save(weight);
    torch::autograd::set_history(result, node);
    node_created(node);
  }
  set_prelu_tangent(result, self, weight);
}

std::tuple<at::Tensor, at::Tensor> prelu_with_mask_autograd(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor result, mask;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, mask) = actx::prelu_with_mask(self, weight);
  }
  record_prelu_with_bits<PreluBits::kSign>(result, mask, self, weight);
  return {result, mask};
}

// The node keeps the parity bits where they recover every x, else x itself.
// `recoverable` is read on the host: free for a CPU tensor (prelu_autograd
// calls this for plain CPU tensors only); elsewhere it synchronizes.
std::tuple<at::Tensor, at::Tensor, at::Tensor> prelu_with_parity_autograd(
    const at::Tensor& self,
    const at::Tensor& weight) {
  at::Tensor result, parity, recoverable;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(result, parity, recoverable) =
        actx::prelu_with_parity(self, weight);
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

// What prelu's node keeps beside the weight, decided from the weight's values
// (read here: a plain CPU tensor; a GPU weight would cost a synchronization, a
// traced one has no values):
// - kParity: float32, float16, bfloat16 with every weight positive and finite:
//   the output and the parity bits, from which the backward recovers x exactly
//   (x itself where the forward finds it cannot, as for subnormal outputs);
// - kSign: float32/float64 with weight magnitudes in [2^-20, 2^20]: the output
//   and the sign mask, x <= 0 taken as y / w (within rounding: docs/memory.md);
// - kInput: x itself.
enum class PreluSaves { kInput, kSign, kParity };

PreluSaves prelu_saves(const at::Tensor& self, const at::Tensor& weight) {
  // functorch's tensors have values, but not ones to read here.
  const c10::DispatchKeySet functorch(
      {c10::DispatchKey::FuncTorchGradWrapper,
       c10::DispatchKey::FuncTorchBatched});
  for (const at::Tensor* t : {&self, &weight}) {
    if (!t->device().is_cpu() || traced(*t) ||
        t->key_set().has_any(functorch)) {
      return PreluSaves::kInput;
    }
  }
  at::Tensor w;
  {
    // A copy: below autograd an operator must not return its input, which
    // to() does for a float64 weight.
    at::AutoDispatchBelowADInplaceOrView guard;
    w = weight.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true)
            .contiguous();
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
    return PreluSaves::kParity;
  }
  if (moderate && (dtype == at::kFloat || dtype == at::kDouble)) {
    return PreluSaves::kSign;
  }
  return PreluSaves::kInput;
}

at::Tensor prelu_autograd(const at::Tensor& self, const at::Tensor& weight) {
  if (backward_masks_enabled() &&
      torch::autograd::compute_requires_grad(self, weight)) {
    switch (prelu_saves(self, weight)) {
      case PreluSaves::kParity:
        return std::get<0>(prelu_with_parity_autograd(self, weight));
      case PreluSaves::kSign:
        return std::get<0>(prelu_with_mask_autograd(self, weight));
      case PreluSaves::kInput:
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
  if (node) {
    node->save(grad_output);
    node->save(self);
    node->save(weight);
  }
  at::Tensor grad_input, grad_weight;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_weight) =
        actx::prelu_backward(grad_output, self, weight);
  }
  if (node) {
    torch::autograd::set_history({grad_input, grad_weight}, node);
    node_created(node);
  }
  const at::Tensor g_t = tangent_of(grad_output);
  const at::Tensor x_t = tangent_of(self);
  const at::Tensor w_t = tangent_of(weight);
  if (g_t.defined() || x_t.defined() || w_t.defined()) {
    const at::Tensor g = primal_of(grad_output);
    const at::Tensor x = primal_of(self);
    const at::Tensor w = primal_of(weight);
    const SymDimVector shape = prelu_weight_sym_shape(x, w, "prelu_backward");
    // grad_input = x > 0 ? g : w * g (x's tangent contributes zero almost
    // everywhere).
    if (g_t.defined() || w_t.defined()) {
      const at::Tensor t = masked_slope_tangent(x >= 0, g, g_t, w, w_t, shape);
      grad_input._set_fw_grad(t.to(grad_input.scalar_type()), 0, false);
    }
    // grad_weight = sum of (x > 0 ? 0 : x * g), whose tangent is the sum of x_t
    // * g + x * g_t on x < 0.
    if (g_t.defined() || x_t.defined()) {
      const at::Tensor term = add_defined(
          x_t.defined() ? x_t * g : at::Tensor(),
          g_t.defined() ? x * g_t : at::Tensor());
      grad_weight._set_fw_grad(
          sum_to_weight(
              at::where(x >= 0, at::zeros_like(term), term), shape, w),
          0,
          false);
    }
  }
  return {grad_input, grad_weight};
}

at::Tensor leaky_relu_backward_from_mask_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Scalar& negative_slope,
    c10::SymIntArrayRef stride) {
  auto node = make_node<LeakyReluBackwardFromMaskFormula>(grad_output);
  if (node) {
    node->save_constants({negative_slope, c10::IValue(stride.vec())});
    node->save(mask);
  }
  return run_linear_in_grad(
      grad_output, node, [&](const at::Tensor& g, bool primal) {
        return actx::leaky_relu_backward_from_mask(
            g, primal ? primal_of(mask) : mask, negative_slope, stride);
      });
}

// prelu_backward_from_mask (kSign) and prelu_backward_from_parity (kParity).
template <PreluBits kKind>
std::tuple<at::Tensor, at::Tensor> prelu_backward_from_bits_autograd(
    const at::Tensor& grad_output,
    const at::Tensor& bits,
    const at::Tensor& result,
    const at::Tensor& weight) {
  auto node = make_node<PreluBackwardFromBitsFormula<kKind>>(
      grad_output, result, weight);
  if (node) {
    node->save(grad_output);
    node->save(bits);
    node->save(result);
    node->save(weight);
  }
  at::Tensor grad_input, grad_weight;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(grad_input, grad_weight) =
        prelu_backward_from_bits(kKind, grad_output, bits, result, weight);
  }
  if (node) {
    torch::autograd::set_history({grad_input, grad_weight}, node);
    node_created(node);
  }
  const at::Tensor g_t = tangent_of(grad_output);
  const at::Tensor y_t = tangent_of(result);
  const at::Tensor w_t = tangent_of(weight);
  if (g_t.defined() || y_t.defined() || w_t.defined()) {
    const at::Tensor g = primal_of(grad_output);
    const at::Tensor y = primal_of(result);
    const at::Tensor w = primal_of(weight);
    const SymDimVector shape =
        prelu_weight_sym_shape(y, w, "prelu_backward_from_mask");
    // torch's forward-mode formulas count x == 0 (y == 0) with the positive
    // side, as masked_slope_tangent does.
    const at::Tensor non_negative =
        positive_input(kKind, primal_of(bits), y).logical_or(y == 0);
    const at::Tensor wb = w.reshape_symint(shape);
    if (g_t.defined() || w_t.defined()) {
      const at::Tensor t =
          masked_slope_tangent(non_negative, g, g_t, w, w_t, shape);
      grad_input._set_fw_grad(t.to(grad_input.scalar_type()), 0, false);
    }
    // d(sum of g * y / w) = sum of (g_t * y + g * y_t) / w - sum of g * y *
    // w_t / w^2, over x < 0.
    at::Tensor term = add_defined(
        g_t.defined() ? g_t * y : at::Tensor(),
        y_t.defined() ? g * y_t : at::Tensor());
    term = term.defined() ? term / wb : term;
    if (w_t.defined()) {
      term =
          add_defined(term, -(g * y) * w_t.reshape_symint(shape) / (wb * wb));
    }
    grad_weight._set_fw_grad(
        sum_to_weight(
            at::where(non_negative, at::zeros_like(term), term), shape, w),
        0,
        false);
  }
  return {grad_input, grad_weight};
}

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, Autograd, m) {
  m.impl("leaky_relu_with_mask", TORCH_FN(actx::leaky_relu_with_mask_autograd));
  m.impl(
      "leaky_relu_backward_from_mask",
      TORCH_FN(actx::leaky_relu_backward_from_mask_autograd));
  m.impl("prelu_with_mask", TORCH_FN(actx::prelu_with_mask_autograd));
  m.impl(
      "prelu_backward_from_mask",
      TORCH_FN(
          actx::prelu_backward_from_bits_autograd<actx::PreluBits::kSign>));
  m.impl("prelu_with_parity", TORCH_FN(actx::prelu_with_parity_autograd));
  m.impl(
      "prelu_backward_from_parity",
      TORCH_FN(
          actx::prelu_backward_from_bits_autograd<actx::PreluBits::kParity>));
  m.impl("leaky_relu", TORCH_FN(actx::leaky_relu_autograd));
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__autograd));
  m.impl("leaky_relu_backward", TORCH_FN(actx::leaky_relu_backward_autograd));
  m.impl("prelu", TORCH_FN(actx::prelu_autograd));
  m.impl("prelu_backward", TORCH_FN(actx::prelu_backward_autograd));
}

TORCH_LIBRARY_IMPL(actx, ADInplaceOrView, m) {
  m.impl("leaky_relu_", TORCH_FN(actx::leaky_relu__inplace_or_view));
}
