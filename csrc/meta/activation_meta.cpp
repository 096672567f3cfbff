// Meta kernels: the same checks and output shapes, dtypes and strides as the
// real backends, no data. They serve fake tensors (torch.compile, torch.export)
// and shape inference.

#include <torch/library.h>

#include "activation_ops.h"

namespace actx {
namespace {

struct MetaBackend {
  static constexpr bool kComputes = false;
  static constexpr bool kMaskKernels = false;
  static void forward(const ElementwiseCall&) {}
  static void backward(const ElementwiseCall&) {}
};

} // namespace
} // namespace actx

TORCH_LIBRARY_IMPL(actx, Meta, m) {
  actx::register_backend<actx::MetaBackend>(m);
}

// Sparse and quantized tensors would otherwise meet the dispatcher's "Could not
// run" message; the checks alone (no computation) give the error that names the
// argument and the expected layout.
TORCH_LIBRARY_IMPL(actx, SparseCPU, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCUDA, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCsrCPU, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCsrCUDA, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
TORCH_LIBRARY_IMPL(actx, QuantizedCPU, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
TORCH_LIBRARY_IMPL(actx, QuantizedCUDA, m) {
  actx::register_backend<actx::MetaBackend>(m);
}
