// The AVX-512 element loops again, for CPUs that also have AVX512_BF16: their
// bfloat16 vectors are 32 lanes, rounded by vcvtne2ps2bf16 (vec_avx512.h); the
// rest is avx512's. capability.cpp picks them where they are faster (AMD Zen
// 4).
#define ACTX_AVX512_BF16
#define ACTX_AVX512_NAMESPACE avx512_bf16
#include "cpu/kernels_avx512.cpp"
