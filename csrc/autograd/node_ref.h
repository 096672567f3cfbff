#pragma once

// How torch holds autograd graph nodes, detected from its headers rather than
// from its version number:
// - the pointer type: std::shared_ptr<Node> up to torch 2.12 (a node is
//   created with torch::autograd::deleteNode as its deleter, which frees long
//   chains of nodes without deep recursion), c10::intrusive_ptr<Node> from
//   2.13 on (Node derives from c10::intrusive_ptr_target);
// - node-creation hooks (torch.autograd.graph.node_creation_hook, torch 2.15):
//   torch fires them for each node once it is complete (next edges, output
//   metadata and saved tensors set); actx's nodes fire them at the same point.

#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/autograd/edge.h>
#include <torch/csrc/autograd/function.h>

#include <memory>
#include <type_traits>
#include <utility>

namespace actx::autograd {

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
} // namespace detail

// Runs the node-creation hooks on `node` where torch has them: call it once the
// node is complete (outputs attached, tensors saved), as torch's kernels do.
template <class Ref>
void node_created(const Ref& node) {
  if (node) {
    detail::fire_creation_hooks<TorchNodeRef>(TorchNodeRef(node));
  }
}

} // namespace actx::autograd
