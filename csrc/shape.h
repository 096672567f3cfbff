#pragma once

// Argument checks and the prelu broadcast geometry, shared by every backend
// (CPU, CUDA, Meta), so that all of them accept and reject the same inputs with
// the same words.

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>
#include <c10/core/SymIntArrayRef.h>
#include <c10/util/SmallVector.h>

namespace actx {

using DimVector = c10::SmallVector<int64_t, 6>;
using SymDimVector = c10::SmallVector<c10::SymInt, 6>;

// `arg` of operator `op` must be a dense (strided)
// float32/float64/float16/bfloat16 tensor.
void check_floating_input(const at::Tensor& t, const char* op, const char* arg);

// negative_slope must be a real number.
void check_slope(const at::Scalar& negative_slope, const char* op);

// The target of an in-place write must not have elements that share memory (an
// expanded tensor).
void check_no_internal_overlap(const at::Tensor& self, const char* op);

// `other` must match `self` in shape, dtype and device (grad_output of the
// backward operators).
void check_like_self(
    const at::Tensor& other,
    const at::Tensor& self,
    const char* op,
    const char* arg);

// Checks weight against self and returns weight's shape aligned to self:
// self.dim() entries, 1 where the weight does not vary. torch's rules for a
// 0-d/1-d weight (one element, or one per channel along dim 1); a weight of two
// or more dims broadcasts numpy-style (right-aligned). Symbolic sizes
// (torch.compile with dynamic shapes) are fine; the concrete version is for
// kernels.
SymDimVector prelu_weight_sym_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op);
DimVector prelu_weight_shape(
    const at::Tensor& self,
    const at::Tensor& weight,
    const char* op);

// The dtype the kernels compute in: float for float16/bfloat16, else the
// input's own.
at::ScalarType compute_dtype(at::ScalarType input_dtype);

// How the elements of a dense buffer find their weight: element i (in memory
// order) uses weight[(i / inner) % channels]. When the weight's dims are not
// one contiguous run in the output's memory order, the buffer is a copy of the
// input permuted to `order`.
struct ChannelGeometry {
  int64_t channels = 1;
  int64_t inner = 1;
  DimVector order; // the buffer's dims, outermost first
  bool memory_order =
      true; // the buffer has the output's own layout (no permuted copy)
};

// `out` is dense (allocated by empty_like with preserved format); weight_shape
// from prelu_weight_shape.
ChannelGeometry plan_channels(
    const at::Tensor& out,
    at::IntArrayRef weight_shape);

// ---- Sign masks (what the backward keeps instead of the input) ----
// A mask holds one bit per element of a dense tensor `like`: bit k (bit k % 8
// of byte k / 8) is set where the element stored at offset k of `like` had an
// input > 0. It is a contiguous uint8 tensor of mask_bytes(numel) elements on
// like's device.
c10::SymInt mask_bytes(const c10::SymInt& numel);
at::Tensor empty_mask(const at::Tensor& like);
// name: what the operator calls the bits ("mask" or "parity").
void check_mask(
    const at::Tensor& mask,
    const at::Tensor& like,
    const char* op,
    const char* name = "mask");
// The dims of a dense tensor in memory order, outermost first: t.permute(order)
// is contiguous, and its flat index is the storage offset (the bit index).
DimVector memory_order(const at::Tensor& t);
// The mask of `x` (dense, or any tensor: it is read in the layout of `like`)
// computed with ATen operations, and a mask unpacked to a bool tensor laid out
// as `like`. The device-generic path (CUDA, and the rare layouts the CPU
// kernels do not take); the kernels compute the same bits.
at::Tensor pack_mask_reference(const at::Tensor& x, const at::Tensor& like);
// The bits of any bool tensor `condition` so packed.
at::Tensor pack_bits_reference(
    const at::Tensor& condition,
    const at::Tensor& like);
at::Tensor unpack_mask_reference(
    const at::Tensor& mask,
    const at::Tensor& like);

// ---- Parity bits (prelu_with_parity) ----
// Packed as masks are, bit k the lowest bit of the storage of the input element
// at offset k of the dense output. With them and a positive weight the
// backward recovers x from prelu's output y exactly (x = y where y > 0, else
// the value of x's dtype next to y / w whose lowest bit is the parity bit):
// float32, float16 and bfloat16 inputs.
void check_parity_dtype(const at::Tensor& t, const char* op, const char* arg);
// Whether each element's lowest storage bit is set (bool, x's shape).
at::Tensor storage_parity(const at::Tensor& x);
// x recovered in ATen operations; `weight` broadcasts against `result`. Inside
// the range where the kernels skip their check (SafeRange in
// cpu/activation_kernel.h) it is the kernels' recovery; at the edges of the
// range (subnormal or overflowing values) the two may differ, but each
// operator takes the same path in its forward and backward (the output's
// memory order and the backend decide), so a `recoverable` verdict is always
// about the recovery that the backward runs.
at::Tensor recover_input_reference(
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight);
// 0-dim bool: whether every weight is positive and finite and every element of
// x is recovered (or x and its recovery are both NaN), as the kernels check.
at::Tensor recoverable_reference(
    const at::Tensor& x,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight);

// `t` laid out exactly like `like` (a dense tensor): t itself when its strides
// already match, else a copy.
at::Tensor with_layout_of(const at::Tensor& t, const at::Tensor& like);

} // namespace actx
