#include "layout.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

namespace actx {

DimVector memory_order(const at::Tensor& t) {
  DimVector order(t.dim());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return t.stride(a) > t.stride(b);
  });
  return order;
}

ChannelGeometry plan_channels(
    const at::Tensor& out,
    at::IntArrayRef param_shape) {
  const int64_t nd = out.dim();
  ChannelGeometry geo;
  // Memory order of the dense output, outermost first. Dims of size 1 may carry
  // any stride; they hold no data and are skipped below.
  geo.order = memory_order(out);
  auto varies = [&](int64_t d) { return param_shape[d] != 1; };
  auto holds_data = [&](int64_t d) { return out.size(d) != 1; };

  int64_t first = -1;
  int64_t last = -1;
  for (int64_t p = 0; p < nd; ++p) {
    if (varies(geo.order[p])) {
      first = first < 0 ? p : first;
      last = p;
    }
  }
  if (first < 0) { // one parameter for every element
    geo.inner = out.numel();
    return geo;
  }
  bool contiguous_run = true;
  for (int64_t p = first; p <= last; ++p) {
    const int64_t d = geo.order[p];
    contiguous_run = contiguous_run && (varies(d) || !holds_data(d));
  }
  for (int64_t p = first; p <= last; ++p) {
    geo.channels *= param_shape[geo.order[p]];
  }
  if (contiguous_run) {
    for (int64_t p = last + 1; p < nd; ++p) {
      geo.inner *= out.size(geo.order[p]);
    }
    return geo;
  }
  // The parameter varies along dims that are apart in memory: work on a copy
  // whose innermost dims are the parameter's (their own relative order kept),
  // so each row of the buffer is one parameter.
  geo.memory_order = false;
  std::stable_partition(geo.order.begin(), geo.order.end(), [&](int64_t d) {
    return !varies(d);
  });
  geo.channels = 1;
  for (int64_t d = 0; d < nd; ++d) {
    geo.channels *= param_shape[d];
  }
  geo.inner = 1;
  return geo;
}

at::Tensor with_layout_of(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides()) {
    return t;
  }
  return at::empty_like(like).copy_(t);
}

} // namespace actx
