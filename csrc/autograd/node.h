#pragma once

// The autograd graph node of an actx operator call, written the way PyTorch's
// generated nodes (torch/csrc/autograd/generated/Functions.h) are: it keeps
// the tensors and scalars its backward formula reads, runs the formula, and
// takes part in compiled autograd. The formulas are in derivatives.h; which
// node a call records, and what it keeps, in activation_autograd.cpp.
//
// A formula F is a struct with
//   static constexpr const char* kName;  // the node's name()
//   template <class T> struct Saved;     // its saved tensors, one named member
//                                        // of type T each (ACTX_SLOTS below)
//   struct Constants;                    // its scalars (ACTX_SLOTS)
//   static variable_list backward(const Saved<at::Tensor>&, const Constants&,
//                                 const variable_list& grads);
// backward returns one gradient per differentiable input (undefined: none);
// `grads` holds one gradient per output, an undefined one meaning zero.
//
// How torch holds nodes is detected from its headers, not its version number
// (docs/torch-internals.md):
// - the pointer type: std::shared_ptr<Node> up to torch 2.12 (a node is
//   created with torch::autograd::deleteNode as its deleter, which frees long
//   chains of nodes without deep recursion), c10::intrusive_ptr<Node> from
//   2.13 on;
// - node-creation hooks (torch.autograd.graph.node_creation_hook, torch 2.14):
//   torch fires them for each node once it is complete (next edges, output
//   metadata and saved tensors set); so do actx's nodes (node_created).

#include <ATen/core/ivalue.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/autograd/edge.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/csrc/dynamo/compiled_autograd.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// The members of a Saved or Constants struct, in order: tie() gives references
// to them (a tuple), for the node to visit.
#define ACTX_SLOTS(...)           \
  auto tie() {                    \
    return std::tie(__VA_ARGS__); \
  }                               \
  auto tie() const {              \
    return std::tie(__VA_ARGS__); \
  }

namespace actx::autograd {

using torch::autograd::variable_list;

// A formula without scalars.
struct NoConstants {
  auto tie() {
    return std::tie();
  }
  auto tie() const {
    return std::tie();
  }
};

// ---- How torch holds nodes ----

// torch's own reference to a node (Edge::function's type).
using TorchNodeRef = decltype(torch::autograd::Edge::function);

inline constexpr bool kIntrusiveNodes =
    !std::is_same_v<TorchNodeRef, std::shared_ptr<torch::autograd::Node>>;

// A reference to a node of type T, of the kind torch's functions take.
template <class T>
using NodeRef = std::
    conditional_t<kIntrusiveNodes, c10::intrusive_ptr<T>, std::shared_ptr<T>>;

// A new node of type T (a torch::autograd::Node).
template <class T>
NodeRef<T> new_node() {
  if constexpr (kIntrusiveNodes) {
    return c10::make_intrusive<T>();
  } else {
    // deleteNode, which torch 2.13 removed, is found by argument-dependent
    // lookup (T derives from torch::autograd::Node) when this branch is
    // instantiated, so that the file compiles against torch without it.
    return std::shared_ptr<T>(new T(), [](T* node) { deleteNode(node); });
  }
}

namespace detail {
template <class Ref, class = void>
struct HasCreationHooks : std::false_type {};
template <class Ref>
struct HasCreationHooks<
    Ref,
    std::void_t<decltype(fire_node_creation_hooks(std::declval<const Ref&>()))>>
    : std::true_type {};

// Ref is torch's node reference type, a template parameter so that the call is
// looked up (by argument-dependent lookup) only where torch declares it.
template <class Ref>
void fire_creation_hooks(const Ref& node) {
  if constexpr (HasCreationHooks<Ref>::value) {
    fire_node_creation_hooks(node);
  }
}

inline void from_ivalue(const c10::IValue& v, at::Scalar& out) {
  out = v.toScalar();
}
inline void from_ivalue(const c10::IValue& v, bool& out) {
  out = v.toBool();
}
inline void from_ivalue(const c10::IValue& v, std::vector<int64_t>& out) {
  out = v.toIntVector();
}
inline void from_ivalue(const c10::IValue& v, int64_t& out) {
  out = v.toInt();
}
inline void from_ivalue(const c10::IValue& v, std::optional<at::Scalar>& out) {
  out = v.isNone() ? std::nullopt : std::optional<at::Scalar>(v.toScalar());
}
} // namespace detail

// Runs the node-creation hooks on `node` where torch has them: call it once the
// node is complete (outputs attached, tensors saved), as torch's kernels do.
template <class Ref>
void node_created(const Ref& node) {
  if (node) {
    detail::fire_creation_hooks<TorchNodeRef>(TorchNodeRef(node));
  }
}

// ---- The node ----

// A saved tensor as the node keeps it: checked against later in-place changes,
// passed through saved-tensor hooks, freed after the backward unless
// retain_graph.
struct Slot {
  torch::autograd::SavedVariable variable;
  bool is_output = false;
};

template <class Formula>
class ActxNode final : public torch::autograd::TraceableFunction {
 public:
  using Tensors = typename Formula::template Saved<at::Tensor>;
  using Slots = typename Formula::template Saved<Slot>;
  using Constants = typename Formula::Constants;

  std::string name() const override {
    return Formula::kName;
  }

  // Keeps `t` in `slot` (a member of `saved`). An output of this node's call
  // (is_output) must have its history set first.
  void keep(
      Slot& slot,
      const at::Tensor& t,
      bool is_output = false,
      bool is_inplace_on_view = false) {
    slot.variable =
        torch::autograd::SavedVariable(t, is_output, is_inplace_on_view);
    slot.is_output = is_output;
  }

  void set_constants(const Constants& constants) {
    constants_.clear();
    std::apply(
        [&](const auto&... c) { (constants_.emplace_back(c), ...); },
        constants.tie());
  }

  Slots saved;

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return Formula::backward(unpack(), typed_constants(constants_), grads);
  }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::apply(
        [](auto&... slot) { (slot.variable.reset_data(), ...); }, saved.tie());
  }

  // Compiled autograd (torch._dynamo.config.compiled_autograd): what identifies
  // this node for its cache, and the call of the formula that goes into its
  // graph, as PyTorch's own nodes do it.
  void compiled_args(
      torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    args.collect(std::string(Formula::kName));
    std::apply(
        [&](const auto&... slot) {
          (args.collect(slot.variable, slot.is_output), ...);
        },
        saved.tie());
    for (const auto& c : constants_) {
      args.collect(c);
    }
  }

  variable_list apply_with_saved(
      const variable_list& grads,
      torch::dynamo::autograd::SwapSavedVariables& swap) override {
    // Saved tensors and lifted scalars become the graph's inputs for the call.
    std::apply(
        [&](auto&... slot) { (swap.before(slot.variable), ...); }, saved.tie());
    for (auto& c : constants_) {
      swap.before(c);
    }
    // The formula's arguments: the saved tensors, then the constants.
    std::vector<c10::IValue> args;
    std::vector<at::TypePtr> schema;
    std::apply(
        [&](const auto&... t) {
          ((args.emplace_back(t), schema.emplace_back(at::TensorType::get())),
           ...);
        },
        unpack().tie());
    for (const auto& c : constants_) {
      args.push_back(c);
      schema.push_back(c.type());
    }
    const auto& python = torch::dynamo::autograd::getPyCompilerInterface();
    const std::string fn_name = python->bind_function(
        swap.get_py_compiler(),
        Formula::kName,
        &apply_functional,
        schema,
        /*is_custom_function=*/true,
        /*is_traceable=*/true);
    const auto output_metadata = torch::dynamo::autograd::IValuePacker<
        std::vector<std::optional<torch::autograd::InputMetadata>>>::
        pack(torch::dynamo::autograd::get_input_metadata(next_edges()));
    auto results = python->call_function(
        swap.get_py_compiler(),
        "apply_functional",
        fn_name,
        grads,
        args,
        output_metadata);
    std::apply(
        [&](auto&... slot) { (swap.after(slot.variable), ...); }, saved.tie());
    for (auto& c : constants_) {
      swap.after(c);
    }
    return results;
  }

 private:
  static constexpr size_t kTensors =
      std::tuple_size_v<decltype(std::declval<Tensors&>().tie())>;

  static Constants typed_constants(const std::vector<c10::IValue>& values) {
    Constants constants;
    size_t k = 0;
    std::apply(
        [&](auto&... c) { (detail::from_ivalue(values[k++], c), ...); },
        constants.tie());
    return constants;
  }

  // The formula's call from compiled autograd's graph: the saved tensors, then
  // the constants, as apply_with_saved passes them.
  static variable_list apply_functional(
      const variable_list& grads,
      const std::vector<c10::IValue>& args) {
    Tensors tensors;
    size_t k = 0;
    std::apply(
        [&](auto&... t) { ((t = args[k++].toTensor()), ...); }, tensors.tie());
    const std::vector<c10::IValue> constants(
        args.begin() + kTensors, args.end());
    return Formula::backward(tensors, typed_constants(constants), grads);
  }

  Tensors unpack() {
    Tensors tensors;
    std::apply(
        [&](auto&... t) {
          std::apply(
              [&](auto&... slot) {
                ((t = slot.variable.unpack(this->getptr())), ...);
              },
              saved.tie());
        },
        tensors.tie());
    return tensors;
  }

  std::mutex mutex_;
  std::vector<c10::IValue> constants_;
};

// The node of a call whose differentiable inputs are `inputs`, with its next
// edges, or null when none needs a gradient (the usual case in inference: no
// allocation then).
template <class Formula, class... Inputs>
NodeRef<ActxNode<Formula>> make_node(const Inputs&... inputs) {
  if (!torch::autograd::compute_requires_grad(inputs...)) {
    return nullptr;
  }
  auto node = new_node<ActxNode<Formula>>();
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  return node;
}

} // namespace actx::autograd
