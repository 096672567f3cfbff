#include "checks.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include "bits.h"

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

void check_real(const at::Scalar& value, const char* op, const char* arg) {
  TORCH_CHECK(
      !value.isComplex(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a real number, got ",
      value);
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

void check_parameter(
    const at::Tensor& param,
    const at::Tensor& self,
    const char* op,
    const char* arg) {
  TORCH_CHECK(
      param.defined(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a tensor, got None");
  check_floating_input(param, op, arg);
  TORCH_CHECK(
      param.device() == self.device(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` on the same device as `self` (",
      self.device(),
      "), got ",
      param.device());
  const auto x_dtype = self.scalar_type();
  const auto p_dtype = param.scalar_type();
  const bool mixed_precision = p_dtype == at::kFloat &&
      (x_dtype == at::kHalf || x_dtype == at::kBFloat16);
  TORCH_CHECK(
      p_dtype == x_dtype || mixed_precision,
      "actx::",
      op,
      ": expected `",
      arg,
      "` to have the dtype of `self` (",
      x_dtype,
      ") or float32 for a float16/bfloat16 `self`, got ",
      p_dtype);
}

SymDimVector prelu_weight_sym_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op) {
  check_parameter(weight, self, op, "weight");

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

DimVector concrete(const SymDimVector& shape) {
  DimVector result;
  for (const c10::SymInt& s : shape) {
    result.push_back(s.expect_int());
  }
  return result;
}

DimVector prelu_weight_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op) {
  return concrete(prelu_weight_sym_shape(self, weight, op));
}

void check_bits(
    const at::Tensor& bits,
    const at::Tensor& like,
    const char* op,
    const char* arg) {
  TORCH_CHECK(
      bits.defined() && bits.layout() == at::kStrided &&
          bits.scalar_type() == at::kByte,
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be a dense uint8 tensor of packed bits, got ",
      bits.defined() ? c10::str(bits.layout(), " ", bits.scalar_type())
                     : std::string("None"));
  TORCH_CHECK(
      bits.device() == like.device(),
      "actx::",
      op,
      ": expected `",
      arg,
      "` on the device of `grad_output` (",
      like.device(),
      "), got ",
      bits.device());
  TORCH_CHECK(
      bits.dim() == 1 && bits.sym_numel() == mask_bytes(like.sym_numel()),
      "actx::",
      op,
      ": expected `",
      arg,
      "` to be 1-D with one bit per element of `grad_output` (",
      mask_bytes(like.sym_numel()),
      " bytes for ",
      like.sym_numel(),
      " elements), got shape ",
      bits.sym_sizes());
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

} // namespace actx
