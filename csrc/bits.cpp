#include "bits.h"

#include <ATen/ATen.h>

#include "layout.h"

namespace actx {

c10::SymInt mask_bytes(const c10::SymInt& numel) {
  return (numel + 7) / 8;
}

at::Tensor empty_bits(const at::Tensor& like) {
  return at::empty_symint(
      {mask_bytes(like.sym_numel())}, like.options().dtype(at::kByte));
}

namespace {
// 0, 1, ..., 7 on like's device (made there: no copy from the host), the
// places of the bits in a byte.
at::Tensor bit_places(const at::Tensor& like) {
  return at::arange(8, like.options().dtype(at::kByte));
}
} // namespace

at::Tensor pack_bits_reference(
    const at::Tensor& condition,
    const at::Tensor& like) {
  const int64_t n = like.numel();
  const int64_t bytes = mask_bytes(n).expect_int();
  at::Tensor bits = with_layout_of(condition, like).permute(memory_order(like));
  bits = bits.reshape({n}).to(at::kByte);
  bits = at::constant_pad_nd(bits, {0, bytes * 8 - n}).view({bytes, 8});
  return bits.bitwise_left_shift(bit_places(like))
      .sum(1, /*keepdim=*/false, at::kByte);
}

at::Tensor unpack_bits_reference(
    const at::Tensor& bits,
    const at::Tensor& like) {
  // Bit k belongs to the element at offset k of the dense `like`: the flat bits
  // viewed with like's own sizes and strides.
  const at::Tensor flat = bits.unsqueeze(1)
                              .bitwise_right_shift(bit_places(like))
                              .bitwise_and(1)
                              .ne(0)
                              .reshape({-1});
  return flat.as_strided(like.sizes(), like.strides());
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
  const at::Tensor want = unpack_bits_reference(parity, result).to(at::kLong);
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
  // Equal, or both NaN (as the kernels compare).
  const at::Tensor same =
      back.eq(x).logical_or(x.isnan().logical_and(back.isnan())).all();
  return positive_weights.logical_and(same);
}

} // namespace actx
