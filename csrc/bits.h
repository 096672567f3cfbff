#pragma once

// One bit per element, what the backward of prelu keeps beside its output
// instead of the input (docs/memory.md): bit k (bit k % 8 of byte k / 8)
// belongs to the element stored at offset k of a dense tensor `like` (the
// output), in a contiguous uint8 tensor of mask_bytes(numel) elements on like's
// device.
// - sign masks: the bit is set where x > 0 (torch's rule: NaN and -0.0 are
// not);
// - parity bits: the lowest bit of x's storage, with which the backward
//   recovers x exactly from the output y where every weight is positive: y
//   where y > 0, else the value of x's dtype next to y / w whose lowest bit is
//   the parity bit (float32, float16 and bfloat16).
// The CPU kernels write and read the bits in their element loops; the functions
// here compute the same bits with ATen operations, for every device and for the
// layouts the kernels do not walk in memory order.

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>

namespace actx {

c10::SymInt mask_bytes(const c10::SymInt& numel);
at::Tensor empty_bits(const at::Tensor& like);

// The bits of a bool tensor `condition` (any layout; read in the layout of
// `like`), and bits unpacked to a bool tensor laid out as `like`.
at::Tensor pack_bits_reference(
    const at::Tensor& condition,
    const at::Tensor& like);
at::Tensor unpack_bits_reference(
    const at::Tensor& bits,
    const at::Tensor& like);

// Whether each element's lowest storage bit is set (bool, x's shape).
at::Tensor storage_parity(const at::Tensor& x);

// x recovered from the parity bits and the output `result`; `weight`
// broadcasts against `result`. Inside the range where the CPU kernels skip
// their check (SafeRange in cpu/activation_kernel.h) it is the kernels'
// recovery; at the edges of the range (subnormal or overflowing values) the two
// may differ, but each operator takes the same path in its forward and backward
// (the output's memory order and the backend decide), so a verdict of the
// forward is always about the recovery that its backward runs.
at::Tensor recover_input_reference(
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight);

// 0-dim bool on x's device: whether every weight is positive and finite and
// every element of x is recovered (or x and its recovery are both NaN), as the
// kernels check.
at::Tensor recoverable_reference(
    const at::Tensor& x,
    const at::Tensor& parity,
    const at::Tensor& result,
    const at::Tensor& weight);

} // namespace actx
