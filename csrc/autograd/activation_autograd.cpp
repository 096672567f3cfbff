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

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actx/actx.h"
#include "shape.h"

namespace actx {
namespace {

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
      tensors.push_back(s.unpack(shared_from_this()));
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
std::shared_ptr<ActxNode<Formula>> make_node(const Inputs&... inputs) {
  if (!torch::autograd::compute_requires_grad(inputs...)) {
    return nullptr;
  }
  auto node = std::shared_ptr<ActxNode<Formula>>(
      new ActxNode<Formula>(), torch::autograd::deleteNode);
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
// undefined): x >= 0 ? a_t : w * a_t + w_t * a. x, a, w are primals, w in the
// broadcast `shape`.
at::Tensor masked_slope_tangent(
    const at::Tensor& x,
    const at::Tensor& a,
    const at::Tensor& a_t,
    const at::Tensor& w,
    const at::Tensor& w_t,
    const SymDimVector& shape) {
  const at::Tensor on_negative = add_defined(
      a_t.defined() ? w.reshape_symint(shape) * a_t : at::Tensor(),
      w_t.defined() ? w_t.reshape_symint(shape) * a : at::Tensor());
  return at::where(
      x >= 0, a_t.defined() ? a_t : at::zeros_like(a), on_negative);
}

// ---- Autograd kernels ----

at::Tensor leaky_relu_autograd(
    const at::Tensor& self,
    const at::Scalar& negative_slope) {
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
  }
  if (const at::Tensor t = tangent_of(self); t.defined()) {
    result._set_fw_grad(
        actx::leaky_relu_backward(t, primal_of(self), negative_slope, false),
        0,
        false);
  }
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
  auto node = requires_grad ? make_node<LeakyReluFormula>(self) : nullptr;
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
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::leaky_relu_backward(
        grad_output, self, negative_slope, self_is_result);
  }
  if (node) {
    torch::autograd::set_history(result, node);
  }
  // Linear in grad_output; self's tangent contributes zero almost everywhere.
  if (const at::Tensor t = tangent_of(grad_output); t.defined()) {
    result._set_fw_grad(
        actx::leaky_relu_backward(
            t, primal_of(self), negative_slope, self_is_result),
        0,
        false);
  }
  return result;
}

at::Tensor prelu_autograd(const at::Tensor& self, const at::Tensor& weight) {
  auto node = make_node<PreluFormula>(self, weight);
  if (node) {
    node->save(self);
    node->save(weight);
  }
  at::Tensor result;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    result = actx::prelu(self, weight);
  }
  if (node) {
    torch::autograd::set_history(result, node);
  }
  const at::Tensor self_t = tangent_of(self);
  const at::Tensor weight_t = tangent_of(weight);
  if (self_t.defined() || weight_t.defined()) {
    const at::Tensor x = primal_of(self);
    const at::Tensor w = primal_of(weight);
    const at::Tensor t = masked_slope_tangent(
        x, x, self_t, w, weight_t, prelu_weight_sym_shape(x, w, "prelu"));
    result._set_fw_grad(t.to(result.scalar_type()), 0, false);
  }
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
      const at::Tensor t = masked_slope_tangent(x, g, g_t, w, w_t, shape);
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
