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

template <class T>
void forward_kernel(const T* x, const compute_t<T>* w, T* out, Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
  for_each_run(span, [&](int64_t i, int64_t len, int64_t c, bool per_element) {
    const T* xi = x + i;
    T* oi = out + i;
    int64_t k = 0;
    if (per_element) {
      const compute_t<T>* wc = w + c;
      for (; k + L <= len; k += L) {
        store_in_order(
            oi + k, activation(load_in_order(xi + k), V::load_compute(wc + k)));
      }
      if (k < len) {
        const int64_t n = len - k;
        store_partial<V, true>(
            oi + k,
            activation(
                load_partial<V, true>(xi + k, n),
                load_compute_partial<V>(wc + k, n)),
            n);
      }
    } else {
      const V slope = V::broadcast(w[c]);
      for (; k + L <= len; k += L) {
        store(oi + k, activation(load(xi + k), slope));
      }
      if (k < len) {
        store_partial(
            oi + k,
            activation(load_partial<V>(xi + k, len - k), slope),
            len - k);
      }
    }
  });
}

template <class T, bool kWeightGrad>
void backward_loop(
    const T* g,
    const T* x,
    const compute_t<T>* w,
    T* gx,
    compute_t<T>* gw,
    Span span) {
  using V = Vec<T>;
  constexpr int64_t L = V::kLanes;
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
        const V xv = load_in_order(xi + k);
        store_in_order(
            gxi + k, activation_grad(gv, xv, V::load_compute(wc + k)));
        if (kWeightGrad) {
          V::store_compute(
              gwc + k, V::load_compute(gwc + k) + slope_grad(gv, xv));
        }
      }
      if (k < len) {
        const int64_t n = len - k;
        const V gv = load_partial<V, true>(gi + k, n);
        const V xv = load_partial<V, true>(xi + k, n);
        store_partial<V, true>(
            gxi + k,
            activation_grad(gv, xv, load_compute_partial<V>(wc + k, n)),
            n);
        if (kWeightGrad) {
          store_compute_partial(
              gwc + k,
              load_compute_partial<V>(gwc + k, n) + slope_grad(gv, xv),
              n);
        }
      }
    } else {
      const V slope = V::broadcast(w[c]);
      V sum = V::zero();
      for (; k + L <= len; k += L) {
        const V gv = load(gi + k);
        const V xv = load(xi + k);
        store(gxi + k, activation_grad(gv, xv, slope));
        if (kWeightGrad) {
          sum = sum + slope_grad(gv, xv);
        }
      }
      if (k < len) {
        const int64_t n = len - k;
        const V gv = load_partial<V>(gi + k, n);
        const V xv = load_partial<V>(xi + k, n);
        store_partial(gxi + k, activation_grad(gv, xv, slope), n);
        if (kWeightGrad) {
          sum = sum + slope_grad(gv, xv); // the zero padding adds zeros
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
    backward_loop<T, true>(g, x, w, gx, gw, span);
  } else {
    backward_loop<T, false>(g, x, w, gx, gw, span);
  }
}

template <class T>
constexpr Kernels<T> kernels() {
  return Kernels<T>{&forward_kernel<T>, &backward_kernel<T>};
}

const KernelTable* kernel_table() {
  static const KernelTable table{
      kernels<float>(),
      kernels<double>(),
      kernels<Half16>(),
      kernels<BFloat16>()};
  return &table;
}
