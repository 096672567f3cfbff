// bfloat16 vectors of two float vectors, VecBF {v0, v1}, for the instruction
// sets whose bfloat16 loops hold twice a float vector's lanes (AVX2, and
// AVX-512 with AVX512_BF16): each operation applied to both halves, and the
// lanes of v1 after those of v0 in every bit mask. Include it inside the
// instruction set's namespace, after its float operations (VecF, positive(),
// recover_negative(), ...); its header defines load() and store().

// No include guard: included once per instruction set, in different namespaces.

struct VecBF {
  static constexpr int64_t kLanes = 2 * VecF::kLanes;
  VecF v0;
  VecF v1;
  static VecBF broadcast(float c) {
    return {VecF::broadcast(c), VecF::broadcast(c)};
  }
  static VecBF zero() {
    return {VecF::zero(), VecF::zero()};
  }
  static VecBF load_compute(const float* p) {
    return {VecF::load_compute(p), VecF::load_compute(p + VecF::kLanes)};
  }
  static void store_compute(float* p, VecBF v) {
    VecF::store_compute(p, v.v0);
    VecF::store_compute(p + VecF::kLanes, v.v1);
  }
};
struct MaskBF {
  decltype(positive(VecF{})) m0;
  decltype(positive(VecF{})) m1;
};
// The bits of a half's lanes.
constexpr uint32_t kHalfLanes = (1u << VecF::kLanes) - 1u;

inline VecBF operator*(VecBF a, VecBF b) {
  return {a.v0 * b.v0, a.v1 * b.v1};
}
inline VecBF operator+(VecBF a, VecBF b) {
  return {a.v0 + b.v0, a.v1 + b.v1};
}
inline MaskBF positive(VecBF a) {
  return {positive(a.v0), positive(a.v1)};
}
inline MaskBF greater(VecBF a, VecBF b) {
  return {greater(a.v0, b.v0), greater(a.v1, b.v1)};
}
inline MaskBF not_less(VecBF a, VecBF b) {
  return {not_less(a.v0, b.v0), not_less(a.v1, b.v1)};
}
inline MaskBF either(MaskBF a, MaskBF b) {
  return {either(a.m0, b.m0), either(a.m1, b.m1)};
}
inline VecBF select(MaskBF m, VecBF a, VecBF b) {
  return {select(m.m0, a.v0, b.v0), select(m.m1, a.v1, b.v1)};
}
inline VecBF clamp_between(VecBF v, VecBF low, VecBF high) {
  return {
      clamp_between(v.v0, low.v0, high.v0),
      clamp_between(v.v1, low.v1, high.v1)};
}
inline VecBF zero_like(VecBF) {
  return VecBF::zero();
}
inline float reduce_add(VecBF a) {
  return reduce_add(a.v0 + a.v1);
}
inline uint32_t positive_bits(MaskBF m) {
  return positive_bits(m.m0) | (positive_bits(m.m1) << VecF::kLanes);
}
inline MaskBF positive_from_bits(VecBF, uint32_t bits) {
  return {
      positive_from_bits(VecF{}, bits & kHalfLanes),
      positive_from_bits(VecF{}, bits >> VecF::kLanes)};
}

template <int kShift, bool kByReciprocal>
inline VecBF recover_negative(VecBF y, VecBF w, uint32_t parity) {
  return {
      recover_negative<kShift, kByReciprocal>(y.v0, w.v0, parity & kHalfLanes),
      recover_negative<kShift, kByReciprocal>(
          y.v1, w.v1, parity >> VecF::kLanes)};
}
inline uint32_t recoverable_bits(VecBF x, VecBF recovered) {
  return recoverable_bits(x.v0, recovered.v0) |
      (recoverable_bits(x.v1, recovered.v1) << VecF::kLanes);
}
