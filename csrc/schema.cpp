// Every actx operator's signature, once. Kernels for each backend are
// registered in their own files (cpu/, cuda/, meta/, autograd/) with
// TORCH_LIBRARY_IMPL.

#include <torch/library.h>

#include "actx/actx.h"
#include "cpu/capability.h"

TORCH_LIBRARY(actx, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
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
  // What the autograd kernels call when they keep a sign mask (one bit per
  // element) for the backward instead of the input. Bit k of the mask is set
  // where the element stored at offset k of the (dense) output had x > 0; the
  // backward operators read it against `stride` (the output's strides) or
  // `result` (the prelu output, which also stands in for x in the weight
  // gradient: x = result / weight where x <= 0).
  m.def(
      "leaky_relu_with_mask(Tensor self, Scalar negative_slope=0.01) -> (Tensor, Tensor)",
      tags);
  m.def(
      "leaky_relu_backward_from_mask(Tensor grad_output, Tensor mask, Scalar negative_slope, "
      "SymInt[] stride) -> Tensor",
      tags);
  m.def(
      "prelu_with_mask(Tensor self, Tensor weight) -> (Tensor, Tensor)", tags);
  m.def(
      "prelu_backward_from_mask(Tensor grad_output, Tensor mask, Tensor result, Tensor weight) "
      "-> (Tensor, Tensor)",
      tags);
  // prelu keeping the lowest storage bit of each x instead (bit k: the element
  // at offset k of the dense output), with which the backward recovers x from
  // the output where the weight is positive. The third output, a 0-dim bool,
  // says whether it recovers every x of the call.
  m.def(
      "prelu_with_parity(Tensor self, Tensor weight) -> (Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "prelu_backward_from_parity(Tensor grad_output, Tensor parity, Tensor result, "
      "Tensor weight) -> (Tensor, Tensor)",
      tags);
  // Not tensor operators: they choose the CPU instruction set, and have one
  // kernel for all keys.
  m.def("_cpu_capability() -> str", &actx::cpu::capability_name);
  m.def(
      "_set_cpu_capability(str capability) -> str", &actx::cpu::set_capability);
  m.def("_backward_masks() -> bool", &actx::backward_masks_enabled);
  m.def("_set_backward_masks(bool enabled) -> bool", &actx::set_backward_masks);
}
