#pragma once

// How the kernels walk their tensors: dense buffers in memory order, and where
// each element finds its per-channel parameter (the prelu weight).

#include <ATen/core/Tensor.h>

#include "checks.h"

namespace actx {

// The dims of a dense tensor in memory order, outermost first: t.permute(order)
// is contiguous, and its flat index is the storage offset.
DimVector memory_order(const at::Tensor& t);

// How the elements of a dense buffer find their parameter: element i (in
// memory order) uses param[(i / inner) % channels]. When the parameter's dims
// are not one contiguous run in the output's memory order, the buffer is a copy
// of the input permuted to `order` (memory_order false).
struct ChannelGeometry {
  int64_t channels = 1;
  int64_t inner = 1;
  DimVector order;          // the buffer's dims, outermost first
  bool memory_order = true; // the buffer has the output's own layout
};

// `out` is dense (allocated by empty_like with preserved format); param_shape
// from prelu_weight_shape.
ChannelGeometry plan_channels(
    const at::Tensor& out,
    at::IntArrayRef param_shape);

// `t` laid out exactly like `like` (a dense tensor): t itself when its strides
// already match, else a copy.
at::Tensor with_layout_of(const at::Tensor& t, const at::Tensor& like);

} // namespace actx
