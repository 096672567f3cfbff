#include "shape.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <algorithm>
#include <numeric>

namespace actx {

void check_floating_input(
    const at::Tensor& t,
    const char* op,
    const char* arg) {
  TORCH_CHECK(
      t.defined(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a tensor, got None");
  TORCH_CHECK(
      t.layout() == at::kStrided,
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a dense (strided) tensor, got layout ",
      t.layout());
  TORCH_CHECK(
      !t.is_quantized(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a floating point tensor, got the quantized dtype ",
      t.scalar_type());
  const auto dtype = t.scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
          dtype == at::kBFloat16,
      "actx::",
      op,
      ": expected `",
      arg,
      "` to have dtype float32, float64, float16 or bfloat16, got ",
      dtype);
}

void check_slope(const at::Scalar& negative_slope, const char* op) {
  TORCH_CHECK(
      !negative_slope.isComplex(),
      "actx::",
      op,
      ": expected `negative_slope` to be a real number, got ",
      negative_slope);
}

void check_no_internal_overlap(const at::Tensor& self, const char* op) {
  TORCH_CHECK(
      at::has_internal_overlap(self) != at::MemOverlap::Yes,
      "actx::",
      op,
      ": `self` has elements that share memory (for example an expanded tensor), so an "
      "in-place result is ill-defined; call the out-of-place operator, or clone() `self` first");
}

void check_like_self(
    const at::Tensor& other,
    const at::Tensor& self,
    const char* op,
    const char* arg) {
  check_floating_input(other, op, arg);
  TORCH_CHECK(
      other.device() == self.device(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` on the same device as `self` (",
      self.device(),
      "), got ",
      other.device());
  TORCH_CHECK(
      other.scalar_type() == self.scalar_type(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to have the dtype of `self` (",
      self.scalar_type(),
      "), got ",
      other.scalar_type());
  TORCH_CHECK(
      other.sym_sizes() == self.sym_sizes(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to have the shape of `self` ",
      self.sym_sizes(),
      ", got ",
      other.sym_sizes());
}

at::ScalarType compute_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

SymDimVector prelu_weight_sym_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op) {
  TORCH_CHECK(
      weight.defined(),
      "actx::",
      op,
      ": expected `weight` to be a tensor, got None");
  check_floating_input(weight, op, "weight");
  TORCH_CHECK(
      weight.device() == self.device(),
      "actx::",
      op,
      ": expected `weight` on the same device as `self` (",
      self.device(),
      "), got ",
      weight.device());
  const auto x_dtype = self.scalar_type();
  const auto w_dtype = weight.scalar_type();
  const bool mixed_precision = w_dtype == at::kFloat &&
      (x_dtype == at::kHalf || x_dtype == at::kBFloat16);
  TORCH_CHECK(
      w_dtype == x_dtype || mixed_precision,
      "actx::",
      op,
      ": expected `weight` to have the dtype of `self` (",
      x_dtype,
      ") or float32 for a float16/bfloat16 `self`, got ",
      w_dtype);

  const int64_t nd = self.dim();
  SymDimVector shape(nd, c10::SymInt(1));
  if (weight.dim() <= 1) {
    // torch.nn.functional.prelu's rule: one slope for everything, or one per
    // channel (dim 1).
    if (weight.sym_numel() != 1) {
      TORCH_CHECK(
          nd > 0,
          "actx::",
          op,
          ": a 0-d `self` takes a `weight` of one element, got ",
          weight.sym_numel(),
          " elements");
      const c10::SymInt channels = nd > 1 ? self.sym_size(1) : c10::SymInt(1);
      TORCH_CHECK(
          weight.sym_numel() == channels,
          "actx::",
          op,
          ": expected `weight` to have 1 element or one per channel (self.size(1) = ",
          channels,
          "), got ",
          weight.sym_numel(),
          " elements");
      shape[1] = channels;
    }
    return shape;
  }
  // Two or more dims: numpy-style broadcasting (the ONNX PRelu rule), which
  // must not grow `self`.
  TORCH_CHECK(
      weight.dim() <= nd,
      "actx::",
      op,
      ": `weight` of shape ",
      weight.sym_sizes(),
      " has more dims than `self` of shape ",
      self.sym_sizes());
  const int64_t offset = nd - weight.dim();
  for (int64_t d = 0; d < weight.dim(); ++d) {
    const c10::SymInt& w = weight.sym_size(d);
    const c10::SymInt& x = self.sym_size(offset + d);
    TORCH_CHECK(
        w == 1 || w == x,
        "actx::",
        op,
        ": `weight` of shape ",
        weight.sym_sizes(),
        " does not broadcast to `self` of shape ",
        self.sym_sizes(),
        " (dim ",
        d,
        " of weight has size ",
        w,
        ", expected 1 or ",
        x,
        ")");
    shape[offset + d] = w;
  }
  return shape;
}

DimVector prelu_weight_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op) {
  DimVector shape;
  for (const c10::SymInt& s : prelu_weight_sym_shape(self, weight, op)) {
    shape.push_back(s.expect_int());
  }
  return shape;
}

ChannelGeometry plan_channels(
    const at::Tensor& out,
    at::IntArrayRef weight_shape) {
  const int64_t nd = out.dim();
  ChannelGeometry geo;
  // Memory order of the dense output, outermost first. Dims of size 1 may carry
  // any stride; they hold no data and are skipped below.
  geo.order = memory_order(out);
  auto varies = [&](int64_t d) { return weight_shape[d] != 1; };
  auto holds_data = [&](int64_t d) { return out.size(d) != 1; };

  int64_t first = -1;
  int64_t last = -1;
  for (int64_t p = 0; p < nd; ++p) {
    if (varies(geo.order[p])) {
      first = first < 0 ? p : first;
      last = p;
    }
  }
  if (first < 0) { // one weight for every element
    geo.inner = out.numel();
    return geo;
  }
  bool contiguous_run = true;
  for (int64_t p = first; p <= last; ++p) {
    const int64_t d = geo.order[p];
    contiguous_run = contiguous_run && (varies(d) || !holds_data(d));
  }
  for (int64_t p = first; p <= last; ++p) {
    geo.channels *= weight_shape[geo.order[p]];
  }
  if (contiguous_run) {
    for (int64_t p = last + 1; p < nd; ++p) {
      geo.inner *= out.size(geo.order[p]);
    }
    return geo;
  }
  // The weight varies along dims that are apart in memory: work on a copy whose
  // innermost dims are the weight's (their own relative order kept), so each
  // row of the buffer is one weight.
  geo.memory_order = false;
  std::stable_partition(geo.order.begin(), geo.order.end(), [&](int64_t d) {
    return !varies(d);
  });
  geo.channels = 1;
  for (int64_t d = 0; d < nd; ++d) {
    geo.channels *= weight_shape[d];
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

c10::SymInt mask_bytes(const c10::SymInt& numel) {
  return (numel + 7) / 8;
}

at::Tensor empty_mask(const at::Tensor& like) {
  return at::empty_symint(
      {mask_bytes(like.sym_numel())}, like.options().dtype(at::kByte));
}

void check_mask(
    const at::Tensor& mask,
    const at::Tensor& like,
    const char* op,
    const char* name) {
  TORCH_CHECK(
      mask.defined() && mask.layout() == at::kStrided &&
          mask.scalar_type() == at::kByte,
      "actx::",
      op,
      ": expected `",
      name,
      "` to be a dense uint8 tensor (from actx's *_with_",
      name,
      " operators), got ",
      mask.defined() ? c10::str(mask.layout(), " ", mask.scalar_type())
                     : std::string("None"));
  TORCH_CHECK(
      mask.device() == like.device(),
      "actx::",
      op,
      ": expected `",
      name,
      "` on the device of `grad_output` (",
      like.device(),
      "), got ",
      mask.device());
  TORCH_CHECK(
      mask.dim() == 1 && mask.sym_numel() == mask_bytes(like.sym_numel()),
      "actx::",
      op,
      ": expected `",
      name,
      "` to be 1-D with one bit per element of `grad_output` (",
      mask_bytes(like.sym_numel()),
      " bytes for ",
      like.sym_numel(),
      " elements), got shape ",
      mask.sym_sizes());
}

DimVector memory_order(const at::Tensor& t) {
  DimVector order(t.dim());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return t.stride(a) > t.stride(b);
  });
  return order;
}

namespace {
// The weights of the bits in a byte, for ATen's packing and unpacking.
at::Tensor bit_weights(const at::Tensor& like) {
  return at::tensor(
             {1, 2, 4, 8, 16, 32, 64, 128},
             at::TensorOptions().dtype(at::kByte))
      .to(like.device());
}
} // namespace

at::Tensor pack_mask_reference(const at::Tensor& x, const at::Tensor& like) {
  return pack_bits_reference(x.gt(0), like);
}

at::Tensor pack_bits_reference(
    const at::Tensor& condition,
    const at::Tensor& like) {
  const int64_t n = like.numel();
  const int64_t bytes = mask_bytes(n).expect_int();
  at::Tensor bits = with_layout_of(condition, like).permute(memory_order(like));
  bits = bits.reshape({n}).to(at::kByte);
  bits = at::constant_pad_nd(bits, {0, bytes * 8 - n}).view({bytes, 8});
  return bits.mul(bit_weights(like)).sum(1, /*keepdim=*/false, at::kByte);
}

at::Tensor unpack_mask_reference(
    const at::Tensor& mask,
    const at::Tensor& like) {
  // Bit k belongs to the element at offset k of the dense `like`: the flat bits
  // viewed with like's own sizes and strides.
  const at::Tensor bits =
      mask.unsqueeze(1).bitwise_and(bit_weights(like)).ne(0).reshape({-1});
  return bits.as_strided(like.sizes(), like.strides());
}

void check_parity_dtype(const at::Tensor& t, const char* op, const char* arg) {
  const auto dtype = t.scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
      "actx::",
      op,
      ": expected `",
      arg,
      "` of dtype float32, float16 or bfloat16 (a float64 quotient has no "
      "wider type to be checked in), got ",
      dtype);
}

at::Tensor storage_parity(const at::Tensor& x) {
  const at::ScalarType bits = x.element_size() == 4 ? at::kInt : at::kShort;
  return x.view(bits).bitwise_and(1).ne(0);
}

namespace {
// Bits below the storage type's lowest bit in a double.
int parity_shift(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return 52 - 23;
    case at::kHalf:
      return 52 - 10;
    default: // bfloat16
      return 52 - 7;
  }
}
} // namespace

at::Tensor recover_input_reference(
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  // y / w in double lies nearer to the true quotient than any other value on
  // the storage type's grid is (their distance from it is at least 2^-35 of
  // it), so truncating the double truncates the quotient; then the parity bit
  // chooses between that value and the next one out, as in the kernels.
  const int shift = parity_shift(result.scalar_type());
  const at::Tensor q = result.to(at::kDouble) / weight.to(at::kDouble);
  at::Tensor bits = q.view(at::kLong).bitwise_and(~((int64_t{1} << shift) - 1));
  const at::Tensor want = unpack_mask_reference(parity, result).to(at::kLong);
  bits = bits.add(bits.bitwise_right_shift(shift)
                      .bitwise_xor(want)
                      .bitwise_and(1)
                      .bitwise_left_shift(shift));
  return at::where(
      result.gt(0), result, bits.view(at::kDouble).to(result.scalar_type()));
}

at::Tensor recoverable_reference(
    const at::Tensor& x,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight) {
  const at::Tensor back = recover_input_reference(parity, result, weight);
  const at::Tensor positive_weights =
      weight.gt(0).logical_and(weight.isfinite()).all();
  // Equal, or either NaN (as the kernels compare).
  const at::Tensor same =
      back.eq(x).logical_or(x.isnan()).logical_or(back.isnan()).all();
  return positive_weights.logical_and(same);
}

} // namespace actx
