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

// The forward loop; with kMask it also writes the sign mask of x[span]
// (span.begin a multiple of 8) from the same comparison, every vector loaded in
// lane order so that bit k is lane k.
template <class T, bool kMask>
void forward_loop(
    const T* x,
    const compute_t<T>* w,
    T* out,
    uint8_t* mask,
    Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  // Without a mask, a run of one weight loads in load()'s lane order.
  constexpr bool kAnyOrder = !kMask;
  BitWriter bits{kMask ? mask + span.begin / 8 : nullptr};
  // Elements [i, i + len) of a run; slope(j, n) gives the weights of its
  // elements j to j + n (per-element weights in lane order, or one weight).
  auto run = [&](int64_t i, int64_t len, auto slope, bool in_order) {
    const T* xi = x + i;
    T* oi = out + i;
    int64_t k = 0;
    if constexpr (kMask) {
      for (; k + 64 <= len; k += 64) {
        uint64_t word = 0;
        for (int64_t j = 0; j < 64; j += L) {
          const V xv = load_in_order(xi + k + j);
          const auto m = positive(xv);
          word |= static_cast<uint64_t>(positive_bits(m)) << j;
          store_in_order(oi + k + j, activation_masked(xv, m, slope(k + j, L)));
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
      if constexpr (kMask) {
        bits.append(positive_bits(m), L);
      }
      store_in_order(oi + k, activation_masked(xv, m, slope(k, L)));
    }
    if (k < len) {
      const int64_t n = len - k;
      // Padding lanes load as zero, which is not positive.
      const V xv = load_partial<V, true>(xi + k, n);
      const auto m = positive(xv);
      if constexpr (kMask) {
        bits.append(positive_bits(m), n);
      }
      store_partial<V, true>(oi + k, activation_masked(xv, m, slope(k, n)), n);
    }
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
  if constexpr (kMask) {
    bits.finish();
  }
}

template <class T>
void forward_kernel(const T* x, const compute_t<T>* w, T* out, Span span) {
  forward_loop<T, false>(x, w, out, nullptr, span);
}

// ---- Sign masks ----

template <class T>
void forward_with_mask_kernel(
    const T* x,
    const compute_t<T>* w,
    T* out,
    uint8_t* mask,
    Span span) {
  forward_loop<T, true>(x, w, out, mask, span);
}

// The bits of elements [p, p + n) of a mask (n <= kLanes <= 16) as the mask
// positive() gives for a vector loaded in lane order.
template <class V>
inline auto mask_lanes(const uint8_t* bits, int64_t p, int64_t n) {
  if constexpr (V::kLanes % 8 == 0) {
    if (n == V::kLanes && (p & 7) == 0) { // whole bytes: the usual case
      uint32_t word = 0;
      std::memcpy(&word, bits + (p >> 3), V::kLanes / 8);
      return positive_from_bits(V::zero(), word);
    }
  }
  uint32_t word = 0;
  const int64_t first = p >> 3;
  const int64_t last = (p + n - 1) >> 3;
  for (int64_t b = first; b <= last; ++b) {
    word |= static_cast<uint32_t>(bits[b]) << (8 * (b - first));
  }
  word >>= (p & 7);
  return positive_from_bits(V::zero(), word & ((1u << n) - 1u));
}

// The backward loop. The sign of x comes from x itself, or (kFromMask) from a
// mask; then `x` is the prelu output (or null without kWeightGrad), and every
// vector is loaded in lane order to meet the mask's lanes.
template <class T, bool kWeightGrad, bool kFromMask>
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
  auto load_x = [&](const T* p) {
    return kFromMask && !kWeightGrad ? V::zero() : load_in_order(p);
  };
  auto sign = [&](int64_t p, int64_t n, V xv) {
    if constexpr (kFromMask) {
      return mask_lanes<V>(bits, p, n);
    } else {
      return positive(xv);
    }
  };
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, bool per_element) {
    const T* gi = g + i;
    const T* xi = x + i;
    T* gxi = gx + i;
    int64_t k = 0;
    if (per_element) {
      const compute_t<T>* wc = w + c;
      compute_t<T>* gwc = gw + c;
      for (; k + L <= len; k += L) {
        const V gv = load_in_order(gi + k);
        const V xv = load_x(xi + k);
        const auto m = sign(i + k, L, xv);
        store_in_order(
            gxi + k, activation_grad_masked(gv, m, V::load_compute(wc + k)));
        if (kWeightGrad) {
          V::store_compute(
              gwc + k, V::load_compute(gwc + k) + slope_grad_masked(gv, m, xv));
        }
      }
      if (k < len) {
        const int64_t n = len - k;
        const V gv = load_partial<V, true>(gi + k, n);
        const V xv = kFromMask && !kWeightGrad
            ? V::zero()
            : load_partial<V, true>(xi + k, n);
        const auto m = sign(i + k, n, xv);
        store_partial<V, true>(
            gxi + k,
            activation_grad_masked(gv, m, load_compute_partial<V>(wc + k, n)),
            n);
        if (kWeightGrad) {
          store_compute_partial(
              gwc + k,
              load_compute_partial<V>(gwc + k, n) +
                  slope_grad_masked(gv, m, xv),
              n);
        }
      }
    } else {
      // One weight for the run: vectors in load()'s lane order, unless the
      // sign comes from a mask.
      constexpr bool kInOrder = kFromMask;
      auto ld = [](const T* p) {
        if constexpr (kInOrder) {
          return load_in_order(p);
        } else {
          return load(p);
        }
      };
      const V slope = V::broadcast(w[c]);
      V sum = V::zero();
      for (; k + L <= len; k += L) {
        const V gv = ld(gi + k);
        const V xv = kFromMask && !kWeightGrad ? V::zero() : ld(xi + k);
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
        const V xv = kFromMask && !kWeightGrad
            ? V::zero()
            : load_partial<V, kInOrder>(xi + k, n);
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
    backward_loop<T, true, false>(g, x, nullptr, w, gx, gw, span);
  } else {
    backward_loop<T, false, false>(g, x, nullptr, w, gx, gw, span);
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
    backward_loop<T, true, true>(g, result, mask, w, gx, gw, span);
  } else { // leaky_relu: no result; the loop reads no x then
    backward_loop<T, false, true>(g, g, mask, w, gx, gw, span);
  }
}

template <class T>
constexpr Kernels<T> kernels() {
  return Kernels<T>{&forward_kernel<T>, &backward_kernel<T>};
}

template <class T>
constexpr MaskKernels<T> mask_kernels() {
  return MaskKernels<T>{
      &forward_with_mask_kernel<T>, &backward_from_mask_kernel<T>};
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
      mask_kernels<BFloat16>()};
  return &table;
}
