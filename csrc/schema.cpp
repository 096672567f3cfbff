// Every actx operator's signature, once. Kernels for each backend are
// registered in their own files (cpu/, cuda/, meta/, autograd/) with
// TORCH_LIBRARY_IMPL.

#include <torch/library.h>

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
  // Not tensor operators: they choose the CPU instruction set, and have one
  // kernel for all keys.
  m.def("_cpu_capability() -> str", &actx::cpu::capability_name);
  m.def(
      "_set_cpu_capability(str capability) -> str", &actx::cpu::set_capability);
}
