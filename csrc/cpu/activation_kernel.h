// The element loops of every actx operator, written once for every formula of
// activation_formulas.h and compiled once per instruction set. Include it after
// a vec_*.h header, inside the namespace of that instruction set; that header
// defines, for each storage type T, a vector type Vec<T> (kLanes lanes of
// compute_t<T>) with
//   load(const T*), store(T*, V) for the data; V::load_compute(const
//   compute_t<T>*) and V::store_compute(compute_t<T>*, V) for per-element
//   parameters and their gradient sums; V::broadcast(c), V::zero(), operator*,
//   operator+, reduce_add(V) -> compute_t<T>, mask bits (positive_bits,
//   positive_from_bits), and what activation_formulas.h needs. The scalar
//   instruction set defines the same with one lane, so each formula is
//   written once for scalars and vectors alike.

// No include guard: included once per instruction set, in different namespaces.

#include "activation_formulas.h"

// Vectors of two registers (AVX2 bfloat16) passed to a function that is not
// inlined go through the stack; the helpers of the loops are always inlined.
#ifndef ACTX_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define ACTX_ALWAYS_INLINE inline __attribute__((always_inline))
#define ACTX_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define ACTX_ALWAYS_INLINE inline
#define ACTX_ALWAYS_INLINE_LAMBDA
#endif
#endif

// ---- Loops ----

// Data loads whose lane k holds element k, to meet per-element weights
// (V::load_compute) lane for lane. load() may order lanes otherwise where that
// is cheaper (AVX2 bfloat16); such an instruction set overloads these two, the
// others use load() and store() as they are.
template <class T>
inline Vec<T> load_in_order(const T* p) {
  return load(p);
}
template <class T>
inline void store_in_order(T* p, Vec<T> v) {
  store(p, v);
}

// A vector from fewer than kLanes elements (the rest zero), and its store back:
// data (T), in lane order when kInOrder, and compute-type arrays (weights,
// weight-gradient sums).
template <class V, bool kInOrder = false, class T>
inline V load_partial(const T* p, int64_t n) {
  T buffer[V::kLanes] = {};
  for (int64_t k = 0; k < n; ++k) {
    buffer[k] = p[k];
  }
  if constexpr (kInOrder) {
    return load_in_order(buffer);
  } else {
    return load(buffer);
  }
}

template <class V, bool kInOrder = false, class T>
inline void store_partial(T* p, V v, int64_t n) {
  T buffer[V::kLanes];
  if constexpr (kInOrder) {
    store_in_order(buffer, v);
  } else {
    store(buffer, v);
  }
  for (int64_t k = 0; k < n; ++k) {
    p[k] = buffer[k];
  }
}

template <class V, class C>
inline V load_compute_partial(const C* p, int64_t n) {
  C buffer[V::kLanes] = {};
  for (int64_t k = 0; k < n; ++k) {
    buffer[k] = p[k];
  }
  return V::load_compute(buffer);
}

template <class V, class C>
inline void store_compute_partial(C* p, V v, int64_t n) {
  C buffer[V::kLanes];
  V::store_compute(buffer, v);
  for (int64_t k = 0; k < n; ++k) {
    p[k] = buffer[k];
  }
}

// Calls body(i, len, c, per_element) for runs [i, i + len) of span: with inner
// > 1 a run shares the one weight w[c]; with inner == 1 a run is part of a row,
// and element i + k uses w[c + k]. The channel and the place in a run are
// divided out once and then counted: a division per run costs as much as a run
// of a few dozen elements (channels_last with 64 channels). per_element is
// std::true_type or std::false_type, so that each instantiation of body holds
// one loop, which the compiler inlines (called out of line once per run, the
// call and the reloads of its captures cost as much again).
template <class Body>
inline void for_each_run(Span s, Body body) {
  if (s.begin >= s.end) {
    return;
  }
  if (s.inner == 1) {
    int64_t c = s.begin % s.channels;
    for (int64_t i = s.begin; i < s.end; c = 0) {
      const int64_t len =
          s.end - i < s.channels - c ? s.end - i : s.channels - c;
      body(i, len, c, std::true_type{});
      i += len;
    }
  } else {
    int64_t c = (s.begin / s.inner) % s.channels;
    int64_t offset = s.begin % s.inner; // within the run of channel c
    for (int64_t i = s.begin; i < s.end; offset = 0) {
      const int64_t len =
          s.end - i < s.inner - offset ? s.end - i : s.inner - offset;
      body(i, len, c, std::false_type{});
      i += len;
      c = c + 1 == s.channels ? 0 : c + 1;
    }
  }
}

// Appends bits to a mask, from a byte boundary on: a vector's worth at a time,
// or 64 at once, which keeps the bit count out of the loop's dependency chain
// (count stays below 32 between calls).
struct BitWriter {
  uint8_t* out;
  uint64_t word = 0;
  int64_t count = 0;
  void append(uint32_t bits, int64_t n) { // n <= 32
    word |= static_cast<uint64_t>(bits) << count;
    count += n;
    if (count >= 32) {
      const uint32_t low = static_cast<uint32_t>(word);
      std::memcpy(out, &low, sizeof(low));
      out += sizeof(low);
      word >>= 32;
      count -= 32;
    }
  }
  void append64(uint64_t bits) {
    const uint64_t full = count == 0 ? bits : word | (bits << count);
    std::memcpy(out, &full, sizeof(full));
    out += sizeof(full);
    word = count == 0 ? 0 : bits >> (64 - count);
  }
  void finish() {
    std::memcpy(out, &word, static_cast<size_t>((count + 7) / 8));
  }
};

// What a forward loop writes beside its output: nothing, the sign mask, or the
// parity bits of prelu_with_parity.
enum class Bits { kNone, kSign, kParity };

// Where the parity bits put the storage type's lowest bit in a float.
template <class T>
struct ParityShift;
template <>
struct ParityShift<float> {
  static constexpr int kValue = 0;
};
template <>
struct ParityShift<BFloat16> {
  static constexpr int kValue = 16;
};
template <>
struct ParityShift<Half16> {
  static constexpr int kValue = 13;
};

// x from prelu's output y = x > 0 ? x : w * x (rounded to T), a weight w > 0
// and the lowest storage bit of x. For x <= 0 the quotient y / w lies within
// one step of x on T's grid (y's rounding error, divided by w, is under one
// step of x), so the quotient truncated to the grid is x or its neighbour
// towards zero, and the two differ in their lowest bit. That argument needs x
// and y normal, and the remainder of the division (below) representable: the
// forward checks every element (recoverable_bits) instead of the ranges.
//
// The 16-bit types (kRecoverByReciprocal) multiply by the weight's reciprocal
// instead of dividing, and need no remainder. With T's unit roundoff u (2^-8
// for bfloat16, 2^-11 for float16), y (w * x rounded to float, then to T) is
// within (u + 2^-24) / (1 + u) of w * x, relative, and q = y * (1 / w), both
// rounded to float, within 2^-23 of y / w when w and 1 / w are normal floats
// (parity_weight_supported); both to first order. The grid's step on either
// side of |x| is at least u |x|, and u + 2^-24 + 2^-23 (1 + u) < u (1 + u):
// u^2 >= 2^-22 exceeds 3 * 2^-24 and the second-order terms. So q lies inside
// the half-open interval that truncates to x or its neighbour, about 2^-24 |x|
// (float16) or 2^-16 |x| (bfloat16) from its ends.
template <class T, class V>
inline V recovered_input(V y, V w, uint32_t parity) {
  return select(
      positive(y),
      y,
      recover_negative<ParityShift<T>::kValue, kRecoverByReciprocal<T>>(
          y, w, parity));
}

template <class T>
inline uint32_t storage_low_bits_partial(const T* p, int64_t n) {
  uint32_t bits = 0;
  for (int64_t k = 0; k < n; ++k) {
    bits |= low_bit(p[k]) << k;
  }
  return bits;
}

inline uint32_t lanes_below(int64_t n) {
  return n >= 32 ? ~0u : (1u << n) - 1u;
}

// Where float's recovery needs no check (the argument of recovered_input
// holds, given a positive finite weight): x >= 0, or |x| >= kLowX and kLowY <=
// |y| <= kHighY. Then x is a normal number, y = w * x was rounded on the
// normal grid (|y| >= 2 tiny), the remainder y - q * w of the division does
// not underflow (|y| >= 2^-101), and y did not overflow (|y| <= max / 2). The
// factor 2 covers y's rounding: the bounds are compared with y before it. (The
// 16-bit types test x's storage instead: ParityXRange.)
struct SafeRange {
  static constexpr float kLowX = 0x1p-125f;
  static constexpr float kLowY = 0x1p-101f;
  static constexpr float kHighY = 0x1p127f;
};

// The lanes of float x with output y (before rounding) in SafeRange.
template <class V>
inline uint32_t safe_range_bits(V x, V y) {
  return in_range_bits(
      x,
      y,
      V::broadcast(SafeRange::kLowX),
      V::broadcast(SafeRange::kLowY),
      V::broadcast(SafeRange::kHighY));
}

// Where a vector of the 16-bit types finds its lanes' ParityXRange bounds
// (kernel_table.h): per element, moving with the elements, or in a run of one
// weight, 64 copies of its one range (parity_bits64 reads 64 elements' bounds).
// NoRanges (float): SafeRange.
struct RangesPerElement {
  const uint16_t* start;
  const uint16_t* span;
  RangesPerElement at(int64_t k) const {
    return {start + k, span + k};
  }
};
struct RangesOfRun {
  const uint16_t* start;
  const uint16_t* span;
  RangesOfRun at(int64_t) const {
    return *this;
  }
};
struct NoRanges {
  NoRanges at(int64_t) const {
    return *this;
  }
};

// The parity bits of the n lanes xv read from xp, whose outputs y (before
// rounding to T) were stored at op with weights a; or-es the lanes whose x is
// not recovered into `bad`. A whole vector with every lane in the safe range
// (`range`, or without one SafeRange) is not checked further; any other is
// recovered from the stored y and compared.
template <class T, class V, class Range>
ACTX_ALWAYS_INLINE uint32_t parity_bits(
    const T* xp,
    const T* op,
    V xv,
    V y,
    V a,
    int64_t n,
    Range range,
    uint32_t& bad) {
  const bool whole = n == V::kLanes;
  const uint32_t parity =
      whole ? storage_low_bits(xp) : storage_low_bits_partial(xp, n);
  const uint32_t all = lanes_below(n);
  if constexpr (!std::is_same_v<Range, NoRanges>) {
    if (whole && storage_safe_bits(xp, range.start, range.span) == all) {
      return parity;
    }
  } else {
    if ((safe_range_bits(xv, y) & all) == all) {
      return parity;
    }
  }
  const V stored = whole ? load_in_order(op) : load_partial<V, true>(op, n);
  const uint32_t ok =
      recoverable_bits(xv, recovered_input<T>(stored, a, parity));
  bad |= ~ok & all;
  return parity;
}

// The lowest storage bits and the ParityXRange bits (16-bit types) of 64
// elements, bit k: element k: the level's wider functions for the 16-bit types
// (kStorageBits64; a float16 vector holds 8 or 16 lanes), else the per-vector
// ones.
template <class T>
inline uint64_t storage_low_bits64(const T* p) {
  if constexpr (kStorageBits64 && sizeof(T) == 2) {
    return storage_low_bits64_16(p);
  } else {
    constexpr int64_t L = Vec<T>::kLanes;
    uint64_t bits = 0;
    for (int64_t j = 0; j < 64; j += L) {
      bits |= static_cast<uint64_t>(storage_low_bits(p + j)) << j;
    }
    return bits;
  }
}
template <class T>
inline uint64_t storage_safe_bits64(
    const T* x,
    const uint16_t* start,
    const uint16_t* span) {
  if constexpr (kStorageBits64) {
    return storage_safe_bits64_16(x, start, span);
  } else {
    constexpr int64_t L = Vec<T>::kLanes;
    uint64_t bits = 0;
    for (int64_t j = 0; j < 64; j += L) {
      bits |=
          static_cast<uint64_t>(storage_safe_bits(x + j, start + j, span + j))
          << j;
    }
    return bits;
  }
}

// parity_bits for the 64 elements at xp, whose outputs were stored at op with
// weights param(j, n) for elements j to j + n; `safe`, float's lanes in
// SafeRange (the 16-bit types test their storage against `range` here). One
// branch for the 64: a vector with a lane outside the safe range is recovered
// from its stored output and compared.
template <class T, class Param, class Range>
ACTX_ALWAYS_INLINE uint64_t parity_bits64(
    const T* xp,
    const T* op,
    Param param,
    Range range,
    uint64_t safe,
    uint32_t& bad) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  const uint64_t parity = storage_low_bits64(xp);
  if constexpr (!std::is_same_v<Range, NoRanges>) {
    safe = storage_safe_bits64(xp, range.start, range.span);
  }
  if (__builtin_expect(safe != ~uint64_t{0}, 0)) {
    const uint32_t all = lanes_below(L);
    for (int64_t j = 0; j < 64; j += L) {
      if (((safe >> j) & all) != all) {
        const uint32_t ok = recoverable_bits(
            load_in_order(xp + j),
            recovered_input<T>(
                load_in_order(op + j),
                param(j, L),
                static_cast<uint32_t>(parity >> j)));
        bad |= ~ok & all;
      }
    }
  }
  return parity;
}

// The forward loop of formula F. With kSign it also writes the sign bits of
// x[span] (and, with kSat, the saturation bits), with kParity (prelu) the
// parity bits (span.begin a multiple of 8), every vector loaded in lane order
// so that bit k is lane k. Returns false where kParity found an element whose
// x the backward could not recover.
template <class F, class T, Bits kBits, bool kSat = false>
bool forward_loop(
    const T* x,
    const compute_t<T>* p,
    T* out,
    uint8_t* bits_out,
    uint8_t* sat_out,
    const FormulaScalars& scalars,
    Span span,
    ParityXRanges ranges = {}) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  static_assert(
      kBits != Bits::kParity || std::is_same_v<F, PreluFormula>,
      "parity bits are prelu's");
  static_assert(!kSat || F::kSaturation, "a formula with a saturation bit");
  const auto k = F::template consts<V>(scalars);
  // Without bits, a run of one parameter loads in load()'s lane order.
  constexpr bool kAnyOrder = kBits == Bits::kNone;
  BitWriter bits{kAnyOrder ? nullptr : bits_out + span.begin / 8};
  BitWriter sat_bits{kSat ? sat_out + span.begin / 8 : nullptr};
  uint32_t unrecoverable = 0; // lanes found wanting, or-ed together
  // Elements [i, i + len) of a run; param(j, n) gives the parameters of its
  // elements j to j + n (per-element parameters in lane order, or one);
  // range.at(j), parity_bits' range for element j on.
  auto run = [&](int64_t i,
                 int64_t len,
                 auto param,
                 bool ordered,
                 auto range) ACTX_ALWAYS_INLINE_LAMBDA {
    const T* xi = x + i;
    T* oi = out + i;
    int64_t k0 = 0;
    // Lanes whose x is not recovered, a local of the run (one variable for the
    // whole loop would stay in memory: a store-to-load chain per vector).
    uint32_t bad = 0;
    if constexpr (!kAnyOrder) {
      for (; k0 + 64 <= len; k0 += 64) {
        uint64_t word = 0;
        uint64_t sat_word = 0;
        uint64_t safe = 0; // float's lanes in SafeRange (kParity)
        for (int64_t j = 0; j < 64; j += L) {
          const V xv = load_in_order(xi + k0 + j);
          const auto m = F::sign(xv, param(k0 + j, L), k);
          if constexpr (kBits == Bits::kSign) {
            word |= static_cast<uint64_t>(positive_bits(m)) << j;
          }
          if constexpr (kSat) {
            sat_word |= static_cast<uint64_t>(positive_bits(
                            F::saturated(xv, m, param(k0 + j, L), k)))
                << j;
          }
          const V yv = F::forward(xv, m, param(k0 + j, L), k);
          store_in_order(oi + k0 + j, yv);
          if constexpr (
              kBits == Bits::kParity &&
              std::is_same_v<decltype(range), NoRanges>) {
            safe |= static_cast<uint64_t>(safe_range_bits(xv, yv)) << j;
          }
        }
        if constexpr (kBits == Bits::kParity) {
          word = parity_bits64(
              xi + k0,
              oi + k0,
              [&](int64_t j, int64_t n) { return param(k0 + j, n); },
              range.at(k0),
              safe,
              bad);
        }
        bits.append64(word);
        if constexpr (kSat) {
          sat_bits.append64(sat_word);
        }
      }
    }
    for (; k0 + L <= len; k0 += L) {
      if (kAnyOrder && !ordered) {
        // param() passed straight in: a named copy of a two-register vector
        // (AVX2 bfloat16) goes through the stack.
        const V xv = load(xi + k0);
        store(
            oi + k0,
            F::forward(xv, F::sign(xv, param(k0, L), k), param(k0, L), k));
        continue;
      }
      const V xv = load_in_order(xi + k0);
      const auto m = F::sign(xv, param(k0, L), k);
      const V yv = F::forward(xv, m, param(k0, L), k);
      store_in_order(oi + k0, yv);
      if constexpr (kBits == Bits::kParity) {
        bits.append(
            parity_bits<T>(
                xi + k0, oi + k0, xv, yv, param(k0, L), L, range.at(k0), bad),
            L);
      } else if constexpr (kBits == Bits::kSign) {
        bits.append(positive_bits(m), L);
      }
      if constexpr (kSat) {
        sat_bits.append(positive_bits(F::saturated(xv, m, param(k0, L), k)), L);
      }
    }
    if (k0 < len) {
      const int64_t n = len - k0;
      // Padding lanes load as zero; their bits are dropped.
      const V xv = load_partial<V, true>(xi + k0, n);
      const auto m = F::sign(xv, param(k0, n), k);
      const V yv = F::forward(xv, m, param(k0, n), k);
      store_partial<V, true>(oi + k0, yv, n);
      if constexpr (kBits == Bits::kParity) {
        bits.append(
            parity_bits<T>(
                xi + k0, oi + k0, xv, yv, param(k0, n), n, range.at(k0), bad),
            n);
      } else if constexpr (kBits == Bits::kSign) {
        bits.append(positive_bits(m) & lanes_below(n), n);
      }
      if constexpr (kSat) {
        sat_bits.append(
            positive_bits(F::saturated(xv, m, param(k0, n), k)) &
                lanes_below(n),
            n);
      }
    }
    unrecoverable |= bad;
  };
  // The 16-bit types' parity check reads x's storage (ParityXRange).
  constexpr bool kStorageRanges =
      kBits == Bits::kParity && kRecoverByReciprocal<T>;
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, auto per_element) {
    if constexpr (decltype(per_element)::value) {
      const compute_t<T>* pc = p + c;
      auto params = [&](int64_t j, int64_t n) {
        return n == L ? V::load_compute(pc + j)
                      : load_compute_partial<V>(pc + j, n);
      };
      if constexpr (kStorageRanges) {
        run(i,
            len,
            params,
            true,
            RangesPerElement{ranges.start + c, ranges.span + c});
      } else {
        run(i, len, params, true, NoRanges{});
      }
    } else {
      const V param = V::broadcast(p[c]);
      auto params = [&](int64_t, int64_t) { return param; };
      if constexpr (kStorageRanges) {
        // RangesOfRun: 64 copies.
        uint16_t run_start[64];
        uint16_t run_span[64];
        std::fill_n(run_start, 64, ranges.start[c]);
        std::fill_n(run_span, 64, ranges.span[c]);
        run(i, len, params, false, RangesOfRun{run_start, run_span});
      } else {
        run(i, len, params, false, NoRanges{});
      }
    }
  });
  if constexpr (!kAnyOrder) {
    bits.finish();
  }
  if constexpr (kSat) {
    sat_bits.finish();
  }
  return unrecoverable == 0;
}

// Bits [p, p + n) of a bit array (n <= kLanes <= 32), bit k: element p + k.
template <int64_t kLanes>
inline uint32_t read_bits(const uint8_t* bits, int64_t p, int64_t n) {
  if constexpr (kLanes % 8 == 0) {
    if (n == kLanes && (p & 7) == 0) { // whole bytes: the usual case
      uint32_t word = 0;
      std::memcpy(&word, bits + (p >> 3), kLanes / 8);
      return word;
    }
  }
  // Up to 5 bytes where n is 32, gathered from the last down: a recurrence,
  // which compilers leave scalar. (Written as an or of shifted bytes, GCC
  // vectorizes this rare path with ymm constants, and the register pressure
  // pushes the loops' vector accumulators onto the stack.)
  uint64_t word = 0;
  const int64_t first = p >> 3;
  for (int64_t b = (p + n - 1) >> 3; b >= first; --b) {
    word = (word << 8) | bits[b];
  }
  word >>= (p & 7);
  return static_cast<uint32_t>(word) & lanes_below(n);
}

// The bits of elements [p, p + n) of a mask as the mask positive() gives for
// a vector loaded in lane order.
template <class V>
inline auto mask_lanes(const uint8_t* bits, int64_t p, int64_t n) {
  return positive_from_bits(V::zero(), read_bits<V::kLanes>(bits, p, n));
}

// A vector's dL/dx and its terms of dL/dp.
template <class V>
struct Grads {
  V input;
  V param;
};

// The backward loop of formula F. x comes from `x` itself (kSource == kNone),
// or its branch from sign bits (kSign; with kSat, its saturation from `sat`;
// where the parameter's gradient reads x, `x` is then prelu's output, which
// stands in for it), or (prelu) x is recovered from the output `x` and the
// parity bits (kParity). With bits, every vector is loaded in lane order to
// meet them.
template <class F, class T, bool kParamGrad, Bits kSource, bool kSat = false>
void backward_loop(
    const T* g,
    const T* x,
    const uint8_t* bits,
    const uint8_t* sat,
    const compute_t<T>* p,
    T* gx,
    compute_t<T>* gp,
    const FormulaScalars& scalars,
    Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  static_assert(
      kSource != Bits::kParity || std::is_same_v<F, PreluFormula>,
      "parity bits are prelu's");
  // Saturation: from its bits, or (from x) computed again.
  constexpr bool kSaturation =
      F::kSaturation && (kSource == Bits::kSign ? kSat : true);
  constexpr bool kInOrder = kSource != Bits::kNone;
  constexpr bool kReadsX =
      kSource != Bits::kSign || (kParamGrad && F::kParamGradReadsX);
  const auto k = F::template consts<V>(scalars);
  [[maybe_unused]] const bool clamped = [&] {
    if constexpr (F::kSaturation) {
      return kSource == Bits::kSign ? kSat : k.clamp;
    } else {
      return false;
    }
  }();
  // The n elements of x (or the output) at offset q of the buffer, read in
  // the order of `order` (load_in_order or load); a: their parameters.
  auto load_x = [&](int64_t q, int64_t n, V a, auto order) {
    if constexpr (!kReadsX) {
      return V::zero();
    } else {
      constexpr bool kOrdered = decltype(order)::value;
      V v;
      if (n < L) {
        v = load_partial<V, kOrdered>(x + q, n);
      } else if constexpr (kOrdered) {
        v = load_in_order(x + q);
      } else {
        v = load(x + q);
      }
      if constexpr (kSource == Bits::kParity) {
        return recovered_input<T>(v, a, read_bits<L>(bits, q, n));
      } else {
        return v;
      }
    }
  };
  // The element's branch, and whether it was clamped.
  auto sign = [&](int64_t q, int64_t n, V xv, V a) {
    if constexpr (kSource == Bits::kSign) {
      return mask_lanes<V>(bits, q, n);
    } else if constexpr (kSource == Bits::kParity) {
      return positive(xv);
    } else {
      return F::sign(xv, a, k);
    }
  };
  auto saturation = [&](int64_t q, int64_t n, V xv, V a, auto m) {
    if constexpr (kSource == Bits::kSign && kSat) {
      return mask_lanes<V>(sat, q, n);
    } else if constexpr (kSource == Bits::kNone && F::kSaturation) {
      return F::saturated(xv, m, a, k);
    } else {
      return m; // unread
    }
  };
  // dL/dx of a vector, and its parameter's gradient term.
  auto grads = [&](V gv, V xv, V a, auto m, auto s) {
    V gxv;
    if constexpr (kSaturation) {
      gxv = clamped ? F::template grad_input<true>(gv, m, s, a, k)
                    : F::template grad_input<false>(gv, m, s, a, k);
    } else {
      gxv = F::template grad_input<false>(gv, m, s, a, k);
    }
    return Grads<V>{gxv, F::param_grad(gv, gxv, m, xv, a, k)};
  };
  constexpr std::true_type in_order{};
  constexpr std::bool_constant<kInOrder> run_order{};
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, auto per_element) {
    const T* gi = g + i;
    T* gxi = gx + i;
    int64_t k0 = 0;
    if constexpr (decltype(per_element)::value) {
      const compute_t<T>* pc = p + c;
      compute_t<T>* gpc = gp + c;
      for (; k0 + L <= len; k0 += L) {
        const V gv = load_in_order(gi + k0);
        const V a = V::load_compute(pc + k0);
        const V xv = load_x(i + k0, L, a, in_order);
        const auto m = sign(i + k0, L, xv, a);
        const Grads<V> d = grads(gv, xv, a, m, saturation(i + k0, L, xv, a, m));
        store_in_order(gxi + k0, d.input);
        if (kParamGrad) {
          V::store_compute(gpc + k0, V::load_compute(gpc + k0) + d.param);
        }
      }
      if (k0 < len) {
        const int64_t n = len - k0;
        const V gv = load_partial<V, true>(gi + k0, n);
        const V a = load_compute_partial<V>(pc + k0, n);
        const V xv = load_x(i + k0, n, a, in_order);
        const auto m = sign(i + k0, n, xv, a);
        const Grads<V> d = grads(gv, xv, a, m, saturation(i + k0, n, xv, a, m));
        store_partial<V, true>(gxi + k0, d.input, n);
        if (kParamGrad) {
          store_compute_partial(
              gpc + k0, load_compute_partial<V>(gpc + k0, n) + d.param, n);
        }
      }
    } else {
      // One parameter for the run: vectors in load()'s lane order, unless bits
      // give the branch or x.
      auto ld = [](const T* q) {
        if constexpr (kSource != Bits::kNone) {
          return load_in_order(q);
        } else {
          return load(q);
        }
      };
      const V a = V::broadcast(p[c]);
      V sum = V::zero();
      for (; k0 + L <= len; k0 += L) {
        const V gv = ld(gi + k0);
        const V xv = load_x(i + k0, L, a, run_order);
        const auto m = sign(i + k0, L, xv, a);
        const Grads<V> d = grads(gv, xv, a, m, saturation(i + k0, L, xv, a, m));
        if constexpr (kInOrder) {
          store_in_order(gxi + k0, d.input);
        } else {
          store(gxi + k0, d.input);
        }
        if (kParamGrad) {
          sum = sum + d.param;
        }
      }
      if (k0 < len) {
        const int64_t n = len - k0;
        // The zero padding of g gives padding lanes zero terms.
        const V gv = load_partial<V, kInOrder>(gi + k0, n);
        const V xv = load_x(i + k0, n, a, run_order);
        const auto m = sign(i + k0, n, xv, a);
        const Grads<V> d = grads(gv, xv, a, m, saturation(i + k0, n, xv, a, m));
        store_partial<V, kInOrder>(gxi + k0, d.input, n);
        if (kParamGrad) {
          sum = sum + d.param;
        }
      }
      if (kParamGrad) {
        gp[c] += reduce_add(sum);
      }
    }
  });
}

// ---- The kernels of a formula, and the table of this instruction set ----

template <class F, class T>
void forward_kernel(
    const T* x,
    const compute_t<T>* p,
    T* out,
    const FormulaScalars& scalars,
    Span span) {
  forward_loop<F, T, Bits::kNone>(x, p, out, nullptr, nullptr, scalars, span);
}

template <class F, class T>
void backward_kernel(
    const T* g,
    const T* x,
    const compute_t<T>* p,
    T* gx,
    compute_t<T>* gp,
    const FormulaScalars& scalars,
    Span span) {
  if (gp != nullptr) {
    backward_loop<F, T, true, Bits::kNone>(
        g, x, nullptr, nullptr, p, gx, gp, scalars, span);
  } else {
    backward_loop<F, T, false, Bits::kNone>(
        g, x, nullptr, nullptr, p, gx, gp, scalars, span);
  }
}

template <class F, class T>
void forward_with_bits_kernel(
    const T* x,
    const compute_t<T>* p,
    T* out,
    uint8_t* sign,
    uint8_t* saturation,
    const FormulaScalars& scalars,
    Span span) {
  if constexpr (F::kSaturation) {
    if (saturation != nullptr) {
      forward_loop<F, T, Bits::kSign, true>(
          x, p, out, sign, saturation, scalars, span);
      return;
    }
  }
  forward_loop<F, T, Bits::kSign>(x, p, out, sign, nullptr, scalars, span);
}

template <class F, class T>
void backward_from_bits_kernel(
    const T* g,
    const uint8_t* sign,
    const uint8_t* saturation,
    const T* y,
    const compute_t<T>* p,
    T* gx,
    compute_t<T>* gp,
    const FormulaScalars& scalars,
    Span span) {
  auto run = [&](auto param_grad, auto sat) {
    backward_loop<
        F,
        T,
        decltype(param_grad)::value,
        Bits::kSign,
        decltype(sat)::value>(g, y, sign, saturation, p, gx, gp, scalars, span);
  };
  const bool with_sat = F::kSaturation && saturation != nullptr;
  if (gp != nullptr) {
    with_sat ? run(std::true_type{}, std::bool_constant<F::kSaturation>{})
             : run(std::true_type{}, std::false_type{});
  } else {
    with_sat ? run(std::false_type{}, std::bool_constant<F::kSaturation>{})
             : run(std::false_type{}, std::false_type{});
  }
}

template <class T>
bool forward_with_parity_kernel(
    const T* x,
    const compute_t<T>* w,
    ParityXRanges ranges,
    T* out,
    uint8_t* parity,
    Span span) {
  return forward_loop<PreluFormula, T, Bits::kParity>(
      x, w, out, parity, nullptr, FormulaScalars{}, span, ranges);
}

template <class T>
void backward_from_parity_kernel(
    const T* g,
    const uint8_t* parity,
    const T* y,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  backward_loop<PreluFormula, T, true, Bits::kParity>(
      g, y, parity, nullptr, w, gx, gw, FormulaScalars{}, span);
}

template <class F, class T>
constexpr Kernels<T> kernels() {
  return Kernels<T>{
      &forward_kernel<F, T>,
      &backward_kernel<F, T>,
      &forward_with_bits_kernel<F, T>,
      &backward_from_bits_kernel<F, T>};
}

template <class... Fs>
void fill_table(KernelTable& table, FormulaList<Fs...>) {
  ((table.f32[static_cast<int>(Fs::kId)] = kernels<Fs, float>(),
    table.f64[static_cast<int>(Fs::kId)] = kernels<Fs, double>(),
    table.f16[static_cast<int>(Fs::kId)] = kernels<Fs, Half16>(),
    table.bf16[static_cast<int>(Fs::kId)] = kernels<Fs, BFloat16>()),
   ...);
}

const KernelTable* kernel_table() {
  static const KernelTable table = [] {
    KernelTable t{};
    fill_table(t, AllFormulas{});
    t.parity_f32 = {
        &forward_with_parity_kernel<float>,
        &backward_from_parity_kernel<float>};
    t.parity_f16 = {
        &forward_with_parity_kernel<Half16>,
        &backward_from_parity_kernel<Half16>};
    t.parity_bf16 = {
        &forward_with_parity_kernel<BFloat16>,
        &backward_from_parity_kernel<BFloat16>};
    return t;
  }();
  return &table;
}
