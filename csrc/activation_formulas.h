// The formulas of actx, in one place, for CPU scalars, CPU vectors and CUDA
// threads alike. torch's own rule: x > 0 picks the input branch; NaN and -0.0
// take the slope branch. Include it inside the namespace of a value type V that
// provides
//   positive(V) -> mask, select(mask, V if_true, V if_false), zero_like(V), and
//   V * V.

// No include guard: included once per instruction set, in different namespaces.

#ifndef ACTX_HOST_DEVICE
#if defined(__CUDACC__)
#define ACTX_HOST_DEVICE __host__ __device__
#else
#define ACTX_HOST_DEVICE
#endif
#endif

// f(x) = x > 0 ? x : a * x, with the sign test given (positive(x), which a
// forward that writes a sign mask also stores)
template <class M, class V>
ACTX_HOST_DEVICE inline V activation_masked(V x, M positive_x, V slope) {
  return select(positive_x, x, x * slope);
}
template <class V>
ACTX_HOST_DEVICE inline V activation(V x, V slope) {
  return activation_masked(x, positive(x), slope);
}

// df/dx * grad = x > 0 ? grad : a * grad, with the sign test given (the mask
// of positive(x), or one read off a saved sign mask)
template <class M, class V>
ACTX_HOST_DEVICE inline V activation_grad_masked(
    V grad,
    M positive_x,
    V slope) {
  return select(positive_x, grad, grad * slope);
}
template <class V>
ACTX_HOST_DEVICE inline V activation_grad(V grad, V x, V slope) {
  return activation_grad_masked(grad, positive(x), slope);
}

// df/da * grad = x > 0 ? 0 : x * grad (`x` may be the output a * x, whose sum
// is divided by a after)
template <class M, class V>
ACTX_HOST_DEVICE inline V slope_grad_masked(V grad, M positive_x, V x) {
  return select(positive_x, zero_like(x), x * grad);
}
template <class V>
ACTX_HOST_DEVICE inline V slope_grad(V grad, V x) {
  return slope_grad_masked(grad, positive(x), x);
}
