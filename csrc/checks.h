#pragma once

// Argument checks, shared by every backend (CPU, CUDA, Meta), so that all of
// them accept and reject the same inputs with the same words: the operator, the
// argument, what was expected and what came.

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

// A scalar argument (negative_slope, gain) must be a real number.
void check_real(const at::Scalar& value, const char* op, const char* arg);

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

// A per-channel parameter (named `arg`: prelu's weight, bias_leaky_relu's
// bias) must be a dense floating tensor on self's device, of self's dtype or
// float32 for a float16/bfloat16 self.
void check_parameter(
    const at::Tensor& param,
    const at::Tensor& self,
    const char* op,
    const char* arg);

// Checks prelu's weight against self and returns its shape aligned to self:
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

// A shape of symbolic sizes as concrete ones (for kernels).
DimVector concrete(const SymDimVector& shape);

// The dtype the kernels compute in: float for float16/bfloat16, else the
// input's own.
at::ScalarType compute_dtype(at::ScalarType input_dtype);

// `bits` (named `arg`: "mask", "parity") must hold one bit per element of the
// dense tensor `like`, on its device: a 1-d uint8 tensor of mask_bytes(numel)
// elements (bits.h).
void check_bits(
    const at::Tensor& bits,
    const at::Tensor& like,
    const char* op,
    const char* arg);

// Parity bits exist for float32, float16 and bfloat16 (bits.h).
void check_parity_dtype(const at::Tensor& t, const char* op, const char* arg);

} // namespace actx
