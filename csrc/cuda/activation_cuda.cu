// The CUDA backend. Forward and the leaky_relu backward are one elementwise
// kernel (16-byte loads and stores where alignment allows, grid-stride, one
// index division per vector). The prelu backward writes grad_input and reduces
// the weight gradient in the same pass, also with 16-byte accesses where
// alignment allows: per-block partial sums in registers and shared memory, then
// a second small kernel adds the partials of each channel in a fixed order, so
// the result is the same bits on every run (no atomics).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <type_traits>

#include "operators.h"

namespace actx {
namespace cuda {
namespace {

// What activation_formulas.h needs from a value type, for one thread's scalar.
template <class T>
__host__ __device__ inline bool positive(T x) {
  return x > T(0);
}
template <class T>
__host__ __device__ inline T select(bool m, T a, T b) {
  return m ? a : b;
}
template <class T>
__host__ __device__ inline T zero_like(T) {
  return T(0);
}
template <class T>
__host__ __device__ inline bool greater(T a, T b) {
  return a > b;
}
template <class T>
__host__ __device__ inline bool not_less(T a, T b) {
  return !(a < b);
}
__host__ __device__ inline bool either(bool a, bool b) {
  return a || b;
}

#include "activation_formulas.h"

constexpr int kThreads = 256;

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Elements per 16-byte access, and whether a buffer starts where such accesses
// may begin.
template <class T>
constexpr int kVecOf = 16 / sizeof(T);
inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

int sm_count() {
  return at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The prelu weight (or its gradient) as stored: in the input's type, or in the
// compute type (a float32 weight of a float16/bfloat16 input). Read and written
// as the compute type. Null `data`: no weight (leaky_relu).
template <class scalar_t>
struct WeightRef {
  using acc_t = at::opmath_type<scalar_t>;
  void* data = nullptr;
  bool narrow = false; // stored as scalar_t, a narrower type than acc_t

  WeightRef() = default;
  explicit WeightRef(const at::Tensor& w, const at::Tensor& self)
      : data(w.defined() ? const_cast<void*>(w.const_data_ptr()) : nullptr),
        narrow(w.defined() && !holds_compute_type(w, self)) {}

  // Calls f with `data` typed as stored: scalar_t* when narrow, else acc_t*.
  template <class F>
  __device__ auto visit(F f) const {
    if constexpr (!std::is_same_v<scalar_t, acc_t>) {
      if (narrow) {
        return f(static_cast<scalar_t*>(data));
      }
    }
    return f(static_cast<acc_t*>(data));
  }

  __device__ acc_t operator[](int64_t i) const {
    return visit([&](auto* p) { return static_cast<acc_t>(p[i]); });
  }
  // Elements [i, i + N) in 16-byte loads (`data` 16-byte aligned, i a multiple
  // of N), or one element per load where N elements are narrower than 16 bytes.
  template <int N>
  __device__ void load(int64_t i, acc_t (&a)[N]) const {
    visit([&](auto* p) {
      using W = std::remove_pointer_t<decltype(p)>;
      constexpr int kPerLoad = N * sizeof(W) < 16 ? 1 : 16 / sizeof(W);
      static_assert(N % kPerLoad == 0, "whole loads");
#pragma unroll
      for (int part = 0; part < N / kPerLoad; ++part) {
        const Pack<W, kPerLoad> v = *reinterpret_cast<const Pack<W, kPerLoad>*>(
            p + i + part * kPerLoad);
#pragma unroll
        for (int k = 0; k < kPerLoad; ++k) {
          a[part * kPerLoad + k] = static_cast<acc_t>(v.v[k]);
        }
      }
    });
  }
  __device__ void store(int64_t i, acc_t value) const {
    visit([&](auto* p) {
      p[i] = static_cast<std::remove_pointer_t<decltype(p)>>(value);
    });
  }
};

// One element's result of formula F: f(x, a) (forward), or dL/dx (backward,
// from x, with the incoming gradient g).
template <class F, bool kBackward, class acc_t>
__device__ inline acc_t element_result(
    acc_t g,
    acc_t x,
    acc_t a,
    const typename F::template Consts<acc_t>& k) {
  const bool s = F::sign(x, a, k);
  if constexpr (!kBackward) {
    return F::forward(x, s, a, k);
  } else if constexpr (F::kSaturation) {
    return k.clamp
        ? F::template grad_input<true>(g, s, F::saturated(x, s, a, k), a, k)
        : F::template grad_input<false>(g, s, s, a, k);
  } else {
    return F::template grad_input<false>(g, s, s, a, k);
  }
}

// Elements [begin, begin + count * VEC) of the flat buffers; element i uses
// weight[(i / inner) % channels], or `slope` when weight is null. kBackward:
// out = grad_input. row_weights (inner == 1, channels a multiple of VEC, weight
// 16-byte aligned): the VEC elements of a step use VEC neighbouring weights,
// read in 16-byte loads too (one scalar load per element would cost a warp
// eight times the cache wavefronts of its data for bfloat16).
template <class F, class scalar_t, int VEC, bool kBackward, class index_t>
__global__ void elementwise_kernel(
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ x,
    const WeightRef<scalar_t> weight,
    scalar_t* __restrict__ out,
    at::opmath_type<scalar_t> slope,
    const FormulaScalars scalars,
    index_t begin,
    index_t count,
    index_t channels,
    index_t inner,
    bool row_weights) {
  using acc_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t v = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       v < count;
       v += stride) {
    const index_t i = begin + v * VEC;
    const P xv = *reinterpret_cast<const P*>(x + i);
    P gv;
    if (kBackward) {
      gv = *reinterpret_cast<const P*>(grad + i);
    }
    // The slope of each of the VEC elements.
    acc_t a[VEC];
    if (row_weights) {
      weight.load(static_cast<int64_t>(i % channels), a);
    } else if (weight.data != nullptr) {
      const index_t q = i / inner;
      index_t r = i - q * inner;
      index_t c = q % channels;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        a[k] = weight[c];
        if (++r == inner) {
          r = 0;
          c = c + 1 == channels ? 0 : c + 1;
        }
      }
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        a[k] = slope;
      }
    }
    const auto consts = F::template consts<acc_t>(scalars);
    P result;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      result.v[k] = static_cast<scalar_t>(element_result<F, kBackward>(
          kBackward ? static_cast<acc_t>(gv.v[k]) : acc_t(0),
          static_cast<acc_t>(xv.v[k]),
          a[k],
          consts));
    }
    *reinterpret_cast<P*>(out + i) = result;
  }
}

template <class F, class scalar_t, bool kBackward, class index_t>
void launch_elementwise(
    const scalar_t* grad,
    const scalar_t* x,
    WeightRef<scalar_t> weight,
    scalar_t* out,
    at::opmath_type<scalar_t> slope,
    const FormulaScalars& scalars,
    int64_t n,
    int64_t channels,
    int64_t inner) {
  constexpr int kVec = kVecOf<scalar_t>;
  const bool vectorized =
      aligned16(x) && aligned16(out) && (!kBackward || aligned16(grad));
  const bool row_weights = weight.data != nullptr && inner == 1 &&
      channels % kVec == 0 && aligned16(weight.data);
  const int64_t vec_count = vectorized ? n / kVec : 0;
  const int64_t tail_begin = vec_count * kVec;
  auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t max_blocks = static_cast<int64_t>(sm_count()) * 16;
  if (vec_count > 0) {
    const int blocks =
        static_cast<int>(std::min(ceil_div(vec_count, kThreads), max_blocks));
    elementwise_kernel<F, scalar_t, kVec, kBackward, index_t>
        <<<blocks, kThreads, 0, stream>>>(
            grad,
            x,
            weight,
            out,
            slope,
            scalars,
            0,
            vec_count,
            channels,
            inner,
            row_weights);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (tail_begin < n) {
    const int64_t count = n - tail_begin;
    const int blocks =
        static_cast<int>(std::min(ceil_div(count, kThreads), max_blocks));
    elementwise_kernel<F, scalar_t, 1, kBackward, index_t>
        <<<blocks, kThreads, 0, stream>>>(
            grad,
            x,
            weight,
            out,
            slope,
            scalars,
            tail_begin,
            count,
            channels,
            inner,
            false);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// ---- The backward with the gradient of a per-channel parameter ----

// Sum of a block's values, in a fixed order.
template <class acc_t>
__device__ acc_t block_sum(acc_t value) {
  __shared__ acc_t warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  if (lane == 0) {
    warp_sums[warp] = value;
  }
  __syncthreads();
  acc_t total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kThreads / 32; ++w) {
      total += warp_sums[w];
    }
  }
  return total; // valid in thread 0
}

// grad_input of VEC elements from i on (16 bytes, aligned, when VEC > 1), and
// each one's term of the parameter's gradient, element k with parameter a[k],
// by formula F.
template <class F, class scalar_t, int VEC>
__device__ inline void backward_pack(
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ x,
    scalar_t* __restrict__ grad_input,
    int64_t i,
    const at::opmath_type<scalar_t> (&a)[VEC],
    const typename F::template Consts<at::opmath_type<scalar_t>>& consts,
    at::opmath_type<scalar_t> (&terms)[VEC]) {
  using acc_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const P xv = *reinterpret_cast<const P*>(x + i);
  const P gv = *reinterpret_cast<const P*>(grad + i);
  P result;
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    const acc_t xk = static_cast<acc_t>(xv.v[k]);
    const acc_t gk = static_cast<acc_t>(gv.v[k]);
    const acc_t gxk = element_result<F, true>(gk, xk, a[k], consts);
    result.v[k] = static_cast<scalar_t>(gxk);
    terms[k] =
        F::param_grad(gk, gxk, F::sign(xk, a[k], consts), xk, a[k], consts);
  }
  *reinterpret_cast<P*>(grad_input + i) = result;
}

// Channel-major layout [outer, channels, inner] with a long inner run: block
// (c, s) covers split s of channel c's plane (outer x inner), VEC elements at a
// time (inner is a multiple of VEC), and writes one partial sum. Positions are
// counted, not divided out, per step.
template <class F, class scalar_t, int VEC>
__global__ void backward_channel_major_kernel(
    const FormulaScalars scalars,
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ x,
    const WeightRef<scalar_t> weight,
    scalar_t* __restrict__ grad_input,
    at::opmath_type<scalar_t>* __restrict__ partials,
    int64_t channels,
    int64_t inner,
    int64_t plane,
    int64_t per_split) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t c = blockIdx.x;
  const int64_t split = blockIdx.y;
  acc_t a[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    a[k] = weight[c];
  }
  const auto consts = F::template consts<acc_t>(scalars);
  acc_t sum = 0;
  // In units of VEC elements: the plane has `plane / VEC` of them, a row of the
  // plane `inner / VEC`.
  const int64_t row_len = inner / VEC;
  const int64_t first = split * per_split;
  const int64_t last =
      first + per_split < plane / VEC ? first + per_split : plane / VEC;
  int64_t p = first + threadIdx.x;
  if (p < last) {
    const int64_t o = p / row_len;
    int64_t r = p - o * row_len;
    int64_t row_start =
        (o * channels + c) * inner; // element index of row o of channel c
    for (; p < last; p += blockDim.x) {
      acc_t terms[VEC];
      backward_pack<F, scalar_t, VEC>(
          grad, x, grad_input, row_start + r * VEC, a, consts, terms);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        sum += terms[k];
      }
      r += blockDim.x;
      while (r >= row_len) {
        r -= row_len;
        row_start += channels * inner;
      }
    }
  }
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) {
    partials[c * gridDim.y + split] = total;
  }
}

// The column kernel's block: kColumnThreads threads side by side (coalesced
// along a row) times kRowThreads threads down the rows of the block's tile.
constexpr int kColumnThreads = 32;
constexpr int kRowThreads = kThreads / kColumnThreads;

// Any layout, read as rows of `period` = channels * inner elements: column j of
// a block of `width` = period * m columns always holds channel (j % period) /
// inner. Thread (tx, ty) owns VEC neighbouring columns (width is a multiple of
// VEC) and every kRowThreads-th row of one tile down them; shared memory then
// adds the kRowThreads sums of each column in a fixed order, and the block
// writes one partial per column and tile.
template <class F, class scalar_t, int VEC>
__global__ void backward_columns_kernel(
    const FormulaScalars scalars,
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ x,
    const WeightRef<scalar_t> weight,
    scalar_t* __restrict__ grad_input,
    at::opmath_type<scalar_t>* __restrict__ partials,
    int64_t n,
    int64_t period,
    int64_t inner,
    int64_t width,
    int64_t rows_per_tile) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t column_sums[kRowThreads][kColumnThreads * VEC];
  const int tx = threadIdx.x % kColumnThreads;
  const int ty = threadIdx.x / kColumnThreads;
  const int64_t j =
      (static_cast<int64_t>(blockIdx.x) * kColumnThreads + tx) * VEC;
  const int64_t tile = blockIdx.y;
  const auto consts = F::template consts<acc_t>(scalars);
  acc_t sums[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    sums[k] = 0;
  }
  if (j < width) {
    acc_t a[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      a[k] = weight[((j + k) % period) / inner];
    }
    const int64_t tile_end = (tile + 1) * rows_per_tile * width;
    const int64_t end = tile_end < n ? tile_end : n;
    // n is a multiple of VEC here, so a row holds all of a thread's columns or
    // none.
#pragma unroll 4
    for (int64_t i = (tile * rows_per_tile + ty) * width + j; i < end;
         i += kRowThreads * width) {
      acc_t terms[VEC];
      backward_pack<F, scalar_t, VEC>(grad, x, grad_input, i, a, consts, terms);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        sums[k] += terms[k];
      }
    }
  }
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    column_sums[ty][tx * VEC + k] = sums[k];
  }
  __syncthreads();
  // kThreads threads write the block's kColumnThreads * VEC partials, each
  // summed in row order.
  for (int col = threadIdx.x; col < kColumnThreads * VEC; col += kThreads) {
    const int64_t column =
        static_cast<int64_t>(blockIdx.x) * kColumnThreads * VEC + col;
    if (column < width) {
      acc_t total = 0;
      for (int row = 0; row < kRowThreads; ++row) {
        total += column_sums[row][col];
      }
      partials[tile * width + column] = total;
    }
  }
}

// grad_weight[c] = the sum of the partials of channel c, in a fixed order:
// block c's threads take its terms in a fixed stride, then block_sum adds
// theirs. Partials are laid out as [groups][width] and column j belongs to
// channel (j % period) / inner.
template <class scalar_t, class acc_t = at::opmath_type<scalar_t>>
__global__ void reduce_partials_kernel(
    const acc_t* __restrict__ partials,
    const WeightRef<scalar_t> grad_weight,
    int64_t groups,
    int64_t width,
    int64_t period,
    int64_t inner) {
  const int64_t c = blockIdx.x;
  const int64_t per_group =
      width / period * inner; // channel c's columns in one group
  acc_t sum = 0;
  for (int64_t t = threadIdx.x; t < groups * per_group; t += blockDim.x) {
    const int64_t g = t / per_group;
    const int64_t in_group = t - g * per_group;
    const int64_t run = in_group / inner;
    sum += partials
        [g * width + run * period + c * inner + (in_group - run * inner)];
  }
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) {
    grad_weight.store(c, total);
  }
}

// Runs below this length use the column kernel.
constexpr int64_t kChannelMajorMinInner = 1024;

template <class F, class scalar_t, int VEC>
void launch_param_backward(const BackwardCall& call) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto* g = call.grad_output.const_data_ptr<scalar_t>();
  const auto* x = call.x.const_data_ptr<scalar_t>();
  const WeightRef<scalar_t> w(call.params.per_channel, call.x);
  const WeightRef<scalar_t> gw(call.grad_param, call.x);
  auto* gx = call.grad_input.data_ptr<scalar_t>();
  const int64_t n = call.grad_input.numel();
  const int64_t channels = call.params.channels;
  const int64_t inner = call.params.inner;
  auto stream = at::cuda::getCurrentCUDAStream();
  const auto acc_options =
      call.x.options().dtype(compute_dtype(call.x.scalar_type()));
  at::Tensor partials;
  int64_t groups, width, period, fold_inner;
  if (inner >= kChannelMajorMinInner) {
    const int64_t plane = n / channels;
    // Splits depend on the sizes only (deterministic), enough blocks to fill
    // the GPU.
    const int64_t splits =
        std::max<int64_t>(1, std::min<int64_t>(ceil_div(plane, 8192), 65535));
    const int64_t per_split = ceil_div(plane / VEC, splits);
    partials = at::empty({channels * splits}, acc_options);
    const dim3 grid(
        static_cast<unsigned>(channels), static_cast<unsigned>(splits));
    backward_channel_major_kernel<F, scalar_t, VEC>
        <<<grid, kThreads, 0, stream>>>(
            call.scalars,
            g,
            x,
            w,
            gx,
            partials.data_ptr<acc_t>(),
            channels,
            inner,
            plane,
            per_split);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // partials[c * splits + s]: one "column" per channel, `splits` groups, read
    // as width 1.
    groups = 1;
    width = channels * splits;
    period = width;
    fold_inner = splits;
  } else {
    period = channels * inner;
    // Enough columns for a block's row of threads, and a multiple of VEC: m is
    // the least such multiple of VEC / gcd(period, VEC) (1 when period already
    // is a multiple of VEC; a larger m would only add partials).
    const int64_t step = VEC / std::gcd<int64_t>(period, VEC);
    const int64_t m =
        ceil_div(
            std::max<int64_t>(1, ceil_div(kColumnThreads * VEC, period)),
            step) *
        step;
    width = period * m;
    // Tiles of about 32 rows: each partial then sums 32 elements per column, so
    // the partials add a few percent to the traffic.
    const int64_t rows = ceil_div(n, width);
    const int64_t max_tiles = std::max<int64_t>(1, (int64_t{1} << 22) / width);
    const int64_t tiles = std::max<int64_t>(
        1, std::min<int64_t>({ceil_div(rows, 32), max_tiles, 65535}));
    const int64_t rows_per_tile = ceil_div(rows, tiles);
    partials = at::empty({tiles * width}, acc_options);
    const dim3 grid(
        static_cast<unsigned>(ceil_div(width / VEC, kColumnThreads)),
        static_cast<unsigned>(tiles));
    backward_columns_kernel<F, scalar_t, VEC><<<grid, kThreads, 0, stream>>>(
        call.scalars,
        g,
        x,
        w,
        gx,
        partials.data_ptr<acc_t>(),
        n,
        period,
        inner,
        width,
        rows_per_tile);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    groups = tiles;
    fold_inner = inner;
  }
  reduce_partials_kernel<scalar_t>
      <<<static_cast<unsigned>(channels), kThreads, 0, stream>>>(
          partials.const_data_ptr<acc_t>(),
          gw,
          groups,
          width,
          period,
          fold_inner);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// 16-byte accesses where every run of VEC elements is aligned and stays in one
// row: the buffers start 16-byte aligned, and the element count (columns) or
// the row length (channel-major) is a multiple of VEC. Otherwise one element
// per access.
template <class F, class scalar_t>
void launch_param_backward(const BackwardCall& call) {
  constexpr int kVec = kVecOf<scalar_t>;
  const int64_t run = call.params.inner >= kChannelMajorMinInner
      ? call.params.inner
      : call.grad_input.numel();
  if (run % kVec == 0 && aligned16(call.x.const_data_ptr()) &&
      aligned16(call.grad_output.const_data_ptr()) &&
      aligned16(call.grad_input.const_data_ptr())) {
    launch_param_backward<F, scalar_t, kVec>(call);
  } else {
    launch_param_backward<F, scalar_t, 1>(call);
  }
}

// out = f(x) (forward) or grad_input (backward, with grad = the incoming
// gradient) of the call's formula, over n elements with the parameters of
// `params`.
template <bool kBackward, class Call>
void run_elementwise(
    const Call& call,
    const at::Tensor& grad,
    const at::Tensor& x,
    const at::Tensor& out) {
  const Params& params = call.params;
  AllFormulas::visit(call.formula, [&](auto formula) {
    using F = decltype(formula);
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, x.scalar_type(), "actx_cuda", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          const int64_t n = out.numel();
          const scalar_t* g =
              kBackward ? grad.const_data_ptr<scalar_t>() : nullptr;
          const WeightRef<scalar_t> w(params.per_channel, x);
          const acc_t slope = params.per_channel.defined()
              ? acc_t(0)
              : params.scalar.to<acc_t>();
          const auto* xp = x.const_data_ptr<scalar_t>();
          auto* op = out.data_ptr<scalar_t>();
          if (n <= std::numeric_limits<int32_t>::max() / 2) {
            launch_elementwise<F, scalar_t, kBackward, uint32_t>(
                g,
                xp,
                w,
                op,
                slope,
                call.scalars,
                n,
                params.channels,
                params.inner);
          } else {
            launch_elementwise<F, scalar_t, kBackward, int64_t>(
                g,
                xp,
                w,
                op,
                slope,
                call.scalars,
                n,
                params.channels,
                params.inner);
          }
        });
  });
}

struct CudaBackend {
  // Bits come from ATen around the kernels (a fused kernel is owed to a
  // session with a GPU to measure it); calls therefore never ask for them.
  static constexpr bool kBitKernels = false;

  static void forward(const ForwardCall& call) {
    const c10::cuda::CUDAGuard guard(call.x.device());
    run_elementwise<false>(call, at::Tensor(), call.x, call.y);
  }

  static void backward(const BackwardCall& call) {
    const c10::cuda::CUDAGuard guard(call.x.device());
    if (!call.grad_param.defined()) {
      run_elementwise<true>(call, call.grad_output, call.x, call.grad_input);
      return;
    }
    AllFormulas::visit(call.formula, [&](auto formula) {
      using F = decltype(formula);
      AT_DISPATCH_FLOATING_TYPES_AND2(
          at::kHalf,
          at::kBFloat16,
          call.x.scalar_type(),
          "actx_cuda_backward",
          [&] { launch_param_backward<F, scalar_t>(call); });
    });
  }
};

} // namespace
} // namespace cuda
} // namespace actx

TORCH_LIBRARY_IMPL(actx, CUDA, m) {
  actx::register_operators<actx::cuda::CudaBackend>(m);
}
