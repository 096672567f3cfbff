// The element loops of every actx operator, written once and compiled once per
// instruction set. Include it after a vec_*.h header, inside the namespace of
// that instruction set; that header defines, for each storage type T, a vector
// type Vec<T> (kLanes lanes of compute_t<T>) with
//   load(const T*), store(T*, V) for the data; V::load_compute(const
//   compute_t<T>*) and V::store_compute(compute_t<T>*, V) for per-element
//   weights and weight-gradient sums; V::broadcast(c), V::zero(), operator*,
//   operator+, reduce_add(V) -> compute_t<T>, and what activation_formulas.h
//   needs. The scalar instruction set defines the same with one lane, so each
//   formula is written once for scalars and vectors alike.

// No include guard: included once per instruction set, in different namespaces.

#include "activation_formulas.h"

// Vectors of two registers (AVX2 bfloat16) passed to a function that is not
// inlined go through the stack; the helpers of the loops are always inlined.
#ifndef ACTX_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define ACTX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ACTX_ALWAYS_INLINE inline
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
// of a few dozen elements (channels_last with 64 channels).
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
      body(i, len, c, true);
      i += len;
    }
  } else {
    int64_t c = (s.begin / s.inner) % s.channels;
    int64_t offset = s.begin % s.inner; // within the run of channel c
    for (int64_t i = s.begin; i < s.end; offset = 0) {
      const int64_t len =
          s.end - i < s.inner - offset ? s.end - i : s.inner - offset;
      body(i, len, c, false);
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
  void append(uint32_t bits, int64_t n) { // n <= 16
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
template <class T, class V>
inline V recovered_input(V y, V w, uint32_t parity) {
  return select(
      positive(y), y, recover_negative<ParityShift<T>::kValue>(y, w, parity));
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

// Where the recovery needs no check (the argument of recovered_input holds,
// given a positive finite weight): x >= 0, or |x| >= kLowX and kLowY <= |y| <=
// kHighY. Then x is a normal number, y = w * x was rounded on T's normal grid
// (|y| >= 2 tiny), the remainder y - q * w of the float division does not
// underflow (|y| >= 2^-101), and y did not overflow (|y| <= max / 2). The
// factor 2 covers y's rounding: the bounds are compared with y before it.
template <class T>
struct SafeRange {
  static constexpr float kLowX = 0x1p-125f;
  static constexpr float kLowY = 0x1p-101f;
  static constexpr float kHighY = 0x1p127f;
};
template <>
struct SafeRange<Half16> {
  static constexpr float kLowX = 0x1p-14f;
  static constexpr float kLowY = 0x1p-13f;
  static constexpr float kHighY = 32752.0f;
};

// The parity bits of the n lanes xv read from xp, whose outputs y (before
// rounding to T) were stored at op with weights a; or-es the lanes whose x is
// not recovered into `bad`. A vector with every lane in the safe range is not
// checked further; any other is recovered from the stored y and compared.
template <class T, class V>
ACTX_ALWAYS_INLINE uint32_t parity_bits(
    const T* xp,
    const T* op,
    V xv,
    V y,
    V a,
    int64_t n,
    uint32_t& bad) {
  const bool whole = n == V::kLanes;
  const uint32_t parity =
      whole ? storage_low_bits(xp) : storage_low_bits_partial(xp, n);
  using R = SafeRange<T>;
  const uint32_t all = lanes_below(n);
  const uint32_t safe = in_range_bits(
      xv,
      y,
      V::broadcast(R::kLowX),
      V::broadcast(R::kLowY),
      V::broadcast(R::kHighY));
  if ((safe & all) == all) {
    return parity;
  }
  const V stored = whole ? load_in_order(op) : load_partial<V, true>(op, n);
  const uint32_t ok =
      recoverable_bits(xv, recovered_input<T>(stored, a, parity));
  bad |= ~ok & all;
  return parity;
}

// The forward loop. With kSign it also writes the sign mask of x[span], with
// kParity the parity bits (span.begin a multiple of 8), every vector loaded in
// lane order so that bit k is lane k. Returns false where kParity found an
// element whose x the backward could not recover.
template <class T, Bits kBits>
bool forward_loop(
    const T* x,
    const compute_t<T>* w,
    T* out,
    uint8_t* bits_out,
    Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  // Without bits, a run of one weight loads in load()'s lane order.
  constexpr bool kAnyOrder = kBits == Bits::kNone;
  BitWriter bits{kAnyOrder ? nullptr : bits_out + span.begin / 8};
  uint32_t unrecoverable = 0; // lanes found wanting, or-ed together
  // Elements [i, i + len) of a run; slope(j, n) gives the weights of its
  // elements j to j + n (per-element weights in lane order, or one weight).
  auto run = [&](int64_t i, int64_t len, auto slope, bool in_order) {
    const T* xi = x + i;
    T* oi = out + i;
    int64_t k = 0;
    // Lanes whose x is not recovered, a local of the run (one variable for the
    // whole loop would stay in memory: a store-to-load chain per vector).
    uint32_t bad = 0;
    if constexpr (!kAnyOrder) {
      for (; k + 64 <= len; k += 64) {
        uint64_t word = 0;
        for (int64_t j = 0; j < 64; j += L) {
          const V xv = load_in_order(xi + k + j);
          const auto m = positive(xv);
          if constexpr (kBits == Bits::kSign) {
            word |= static_cast<uint64_t>(positive_bits(m)) << j;
          }
          const V yv = activation_masked(xv, m, slope(k + j, L));
          store_in_order(oi + k + j, yv);
          if constexpr (kBits == Bits::kParity) {
            word |=
                static_cast<uint64_t>(parity_bits<T>(
                    xi + k + j, oi + k + j, xv, yv, slope(k + j, L), L, bad))
                << j;
          }
        }
        bits.append64(word);
      }
    }
    for (; k + L <= len; k += L) {
      if (kAnyOrder && !in_order) {
        store(oi + k, activation(load(xi + k), slope(k, L)));
        continue;
      }
      const V xv = load_in_order(xi + k);
      const auto m = positive(xv);
      const V yv = activation_masked(xv, m, slope(k, L));
      store_in_order(oi + k, yv);
      if constexpr (kBits == Bits::kParity) {
        bits.append(
            parity_bits<T>(xi + k, oi + k, xv, yv, slope(k, L), L, bad), L);
      } else if constexpr (kBits == Bits::kSign) {
        bits.append(positive_bits(m), L);
      }
    }
    if (k < len) {
      const int64_t n = len - k;
      // Padding lanes load as zero, which is not positive.
      const V xv = load_partial<V, true>(xi + k, n);
      const auto m = positive(xv);
      const V yv = activation_masked(xv, m, slope(k, n));
      store_partial<V, true>(oi + k, yv, n);
      if constexpr (kBits == Bits::kParity) {
        bits.append(
            parity_bits<T>(xi + k, oi + k, xv, yv, slope(k, n), n, bad), n);
      } else if constexpr (kBits == Bits::kSign) {
        bits.append(positive_bits(m), n);
      }
    }
    unrecoverable |= bad;
  };
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, bool per_element) {
    if (per_element) {
      const compute_t<T>* wc = w + c;
      auto weights = [&](int64_t j, int64_t n) {
        return n == L ? V::load_compute(wc + j)
                      : load_compute_partial<V>(wc + j, n);
      };
      run(i, len, weights, true);
    } else {
      const V slope = V::broadcast(w[c]);
      run(
          i, len, [&](int64_t, int64_t) { return slope; }, false);
    }
  });
  if constexpr (!kAnyOrder) {
    bits.finish();
  }
  return unrecoverable == 0;
}

template <class T>
void forward_kernel(const T* x, const compute_t<T>* w, T* out, Span span) {
  forward_loop<T, Bits::kNone>(x, w, out, nullptr, span);
}

// ---- Sign masks and parity bits ----

template <class T>
bool forward_with_mask_kernel(
    const T* x,
    const compute_t<T>* w,
    T* out,
    uint8_t* mask,
    Span span) {
  return forward_loop<T, Bits::kSign>(x, w, out, mask, span);
}

template <class T>
bool forward_with_parity_kernel(
    const T* x,
    const compute_t<T>* w,
    T* out,
    uint8_t* parity,
    Span span) {
  return forward_loop<T, Bits::kParity>(x, w, out, parity, span);
}

// Bits [p, p + n) of a bit array (n <= kLanes <= 16), bit k: element p + k.
template <int64_t kLanes>
inline uint32_t read_bits(const uint8_t* bits, int64_t p, int64_t n) {
  if constexpr (kLanes % 8 == 0) {
    if (n == kLanes && (p & 7) == 0) { // whole bytes: the usual case
      uint32_t word = 0;
      std::memcpy(&word, bits + (p >> 3), kLanes / 8);
      return word;
    }
  }
  uint32_t word = 0;
  const int64_t first = p >> 3;
  const int64_t last = (p + n - 1) >> 3;
  for (int64_t b = first; b <= last; ++b) {
    word |= static_cast<uint32_t>(bits[b]) << (8 * (b - first));
  }
  word >>= (p & 7);
  return word & lanes_below(n);
}

// The bits of elements [p, p + n) of a mask as the mask positive() gives for
// a vector loaded in lane order.
template <class V>
inline auto mask_lanes(const uint8_t* bits, int64_t p, int64_t n) {
  return positive_from_bits(V::zero(), read_bits<V::kLanes>(bits, p, n));
}

// The backward loop. x comes from `x` itself (kSource == kNone), or its sign
// from a mask (kSign; `x` is then the prelu output, or null without
// kWeightGrad), or x is recovered from the prelu output `x` and the parity bits
// (kParity). With bits, every vector is loaded in lane order to meet them.
template <class T, bool kWeightGrad, Bits kSource>
void backward_loop(
    const T* g,
    const T* x,
    const uint8_t* bits,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  constexpr bool kInOrder = kSource != Bits::kNone;
  constexpr bool kReadsX = kWeightGrad || kSource != Bits::kSign;
  // The n elements of x (or the output) at offset p of the buffer, read in
  // the order of `order` (load_in_order or load); a: the weights of their
  // lanes.
  auto load_x = [&](int64_t p, int64_t n, V a, auto order) {
    if constexpr (!kReadsX) {
      return V::zero();
    } else {
      constexpr bool kOrdered = decltype(order)::value;
      V v;
      if (n < L) {
        v = load_partial<V, kOrdered>(x + p, n);
      } else if constexpr (kOrdered) {
        v = load_in_order(x + p);
      } else {
        v = load(x + p);
      }
      if constexpr (kSource == Bits::kParity) {
        return recovered_input<T>(v, a, read_bits<L>(bits, p, n));
      } else {
        return v;
      }
    }
  };
  auto sign = [&](int64_t p, int64_t n, V xv) {
    if constexpr (kSource == Bits::kSign) {
      return mask_lanes<V>(bits, p, n);
    } else {
      return positive(xv);
    }
  };
  constexpr std::true_type in_order{};
  constexpr std::bool_constant<kInOrder> run_order{};
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, bool per_element) {
    const T* gi = g + i;
    T* gxi = gx + i;
    int64_t k = 0;
    if (per_element) {
      const compute_t<T>* wc = w + c;
      compute_t<T>* gwc = gw + c;
      for (; k + L <= len; k += L) {
        const V gv = load_in_order(gi + k);
        const V a = V::load_compute(wc + k);
        const V xv = load_x(i + k, L, a, in_order);
        const auto m = sign(i + k, L, xv);
        store_in_order(gxi + k, activation_grad_masked(gv, m, a));
        if (kWeightGrad) {
          V::store_compute(
              gwc + k, V::load_compute(gwc + k) + slope_grad_masked(gv, m, xv));
        }
      }
      if (k < len) {
        const int64_t n = len - k;
        const V gv = load_partial<V, true>(gi + k, n);
        const V a = load_compute_partial<V>(wc + k, n);
        const V xv = load_x(i + k, n, a, in_order);
        const auto m = sign(i + k, n, xv);
        store_partial<V, true>(gxi + k, activation_grad_masked(gv, m, a), n);
        if (kWeightGrad) {
          store_compute_partial(
              gwc + k,
              load_compute_partial<V>(gwc + k, n) +
                  slope_grad_masked(gv, m, xv),
              n);
        }
      }
    } else {
      // One weight for the run: vectors in load()'s lane order, unless bits
      // give the sign or x.
      auto ld = [](const T* p) {
        if constexpr (kSource != Bits::kNone) {
          return load_in_order(p);
        } else {
          return load(p);
        }
      };
      const V slope = V::broadcast(w[c]);
      V sum = V::zero();
      for (; k + L <= len; k += L) {
        const V gv = ld(gi + k);
        const V xv = load_x(i + k, L, slope, run_order);
        const auto m = sign(i + k, L, xv);
        const V gxv = activation_grad_masked(gv, m, slope);
        if constexpr (kInOrder) {
          store_in_order(gxi + k, gxv);
        } else {
          store(gxi + k, gxv);
        }
        if (kWeightGrad) {
          sum = sum + slope_grad_masked(gv, m, xv);
        }
      }
      if (k < len) {
        const int64_t n = len - k;
        const V gv = load_partial<V, kInOrder>(gi + k, n);
        const V xv = load_x(i + k, n, slope, run_order);
        const auto m = sign(i + k, n, xv);
        store_partial<V, kInOrder>(
            gxi + k, activation_grad_masked(gv, m, slope), n);
        if (kWeightGrad) {
          sum = sum + slope_grad_masked(gv, m, xv); // the zero padding adds 0
        }
      }
      if (kWeightGrad) {
        gw[c] += reduce_add(sum);
      }
    }
  });
}

template <class T>
void backward_kernel(
    const T* g,
    const T* x,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  if (gw != nullptr) {
    backward_loop<T, true, Bits::kNone>(g, x, nullptr, w, gx, gw, span);
  } else {
    backward_loop<T, false, Bits::kNone>(g, x, nullptr, w, gx, gw, span);
  }
}

template <class T>
void backward_from_mask_kernel(
    const T* g,
    const uint8_t* mask,
    const T* result,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  if (gw != nullptr) {
    backward_loop<T, true, Bits::kSign>(g, result, mask, w, gx, gw, span);
  } else { // leaky_relu: no result; the loop reads no x then
    backward_loop<T, false, Bits::kSign>(g, g, mask, w, gx, gw, span);
  }
}

template <class T>
void backward_from_parity_kernel(
    const T* g,
    const uint8_t* parity,
    const T* result,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  backward_loop<T, true, Bits::kParity>(g, result, parity, w, gx, gw, span);
}

template <class T>
constexpr Kernels<T> kernels() {
  return Kernels<T>{&forward_kernel<T>, &backward_kernel<T>};
}

template <class T>
constexpr BitKernels<T> mask_kernels() {
  return BitKernels<T>{
      &forward_with_mask_kernel<T>, &backward_from_mask_kernel<T>};
}

template <class T>
constexpr BitKernels<T> parity_kernels() {
  return BitKernels<T>{
      &forward_with_parity_kernel<T>, &backward_from_parity_kernel<T>};
}

const KernelTable* kernel_table() {
  static const KernelTable table{
      kernels<float>(),
      kernels<double>(),
      kernels<Half16>(),
      kernels<BFloat16>(),
      mask_kernels<float>(),
      mask_kernels<double>(),
      mask_kernels<Half16>(),
      mask_kernels<BFloat16>(),
      parity_kernels<float>(),
      parity_kernels<Half16>(),
      parity_kernels<BFloat16>()};
  return &table;
}
