// Meta kernels: the checks, and outputs with the shapes, dtypes and strides of
// the computing backends', no data (operators.h). They serve fake tensors
// (torch.compile, torch.export) and shape inference.

#include <torch/library.h>

#include "operators.h"

TORCH_LIBRARY_IMPL(actx, Meta, m) {
  actx::register_meta(m);
}

// Sparse and quantized tensors would otherwise meet the dispatcher's "Could not
// run" message; the checks give the error that names the argument and the
// expected layout.
TORCH_LIBRARY_IMPL(actx, SparseCPU, m) {
  actx::register_meta(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCUDA, m) {
  actx::register_meta(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCsrCPU, m) {
  actx::register_meta(m);
}
TORCH_LIBRARY_IMPL(actx, SparseCsrCUDA, m) {
  actx::register_meta(m);
}
TORCH_LIBRARY_IMPL(actx, QuantizedCPU, m) {
  actx::register_meta(m);
}
TORCH_LIBRARY_IMPL(actx, QuantizedCUDA, m) {
  actx::register_meta(m);
}
