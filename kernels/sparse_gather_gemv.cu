// sparse_gather_gemv.cu -- SparseInfer's FFN for one token: predict from sign bits which ReLU neurons are zero, and
// read the weights of the others only. y = W2 relu(W1 x + b1) + b2 with W1 (DFF, D), W2^T stored as w2t (DFF, D).
//
// Sign bits: 32 per uint32, bit j%32 of word j/32 set when the value is negative (tinyml_lib.llm.sparseinfer.pack_signs);
// w1_signs (DFF, WORDS), x_signs (WORDS,), WORDS = ceil(D/32). Row i is predicted zero when
// n_neg > alpha * (D - n_neg), n_neg = sum over words of popcount(w1_signs[i] XOR x_signs).
//
// Versions:
// sign_predict_v1:    one thread per row: XOR + __popc over its WORDS words, writes active[i] = 1 or 0. Reads 1/32 of
//                     W1's bits; the predictor on its own, for counting and for a dense comparison.
// sparse_ffn_up_v1:   predictor fused with the gather GEMV: one warp per row; lanes popcount strided words and a warp
//                     shuffle sums n_neg; a predicted-zero row writes h[i] = 0 and never reads its weights; the others
//                     compute relu(W1[i] . x + b1[i]) with coalesced lane-strided reads and a shuffle reduction.
// sparse_ffn_down_v1: y[j] = b2[j] + sum over i with h[i] != 0 of h[i] * w2t[i, j]: one thread per output j; the block
//                     stages h in shared memory once, then loops over rows skipping zero h (the branch is uniform
//                     across the block, so skipped rows of w2t are never read; consecutive threads read consecutive
//                     j: coalesced).
//
// Tuning: ROWS (warps per block of sparse_ffn_up_v1: launch 32*ROWS threads); sparse_ffn_down_v1 needs 4*DFF bytes
// of dynamic shared memory (44 KB for DFF = 11008).
#ifndef ROWS
#define ROWS 4
#endif

__device__ __forceinline__ bool predicted_zero(int n_neg, int d, float alpha) {
  return (float)n_neg > alpha * (float)(d - n_neg);
}

__global__ void sign_predict_v1(const unsigned int* __restrict__ w1_signs, const unsigned int* __restrict__ x_signs,
                                int* __restrict__ active, int DFF, int D, float alpha) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= DFF) return;
  const int words = (D + 31) / 32;
  int n_neg = 0;
  for (int w = 0; w < words; ++w)
    n_neg += __popc(w1_signs[(size_t)row * words + w] ^ x_signs[w]);
  active[row] = predicted_zero(n_neg, D, alpha) ? 0 : 1;
}

__device__ __forceinline__ float warp_sum_f(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ int warp_sum_i(int v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;  // every lane holds the total (butterfly), so the whole warp takes the same branch
}

__global__ void sparse_ffn_up_v1(const unsigned int* __restrict__ w1_signs, const unsigned int* __restrict__ x_signs,
                                 const float* __restrict__ w1, const float* __restrict__ b1, const float* __restrict__ x,
                                 float* __restrict__ h, int DFF, int D, float alpha) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * ROWS + (threadIdx.x >> 5);
  if (row >= DFF) return;
  const int words = (D + 31) / 32;
  int n_neg = 0;
  for (int w = lane; w < words; w += 32)
    n_neg += __popc(w1_signs[(size_t)row * words + w] ^ x_signs[w]);
  n_neg = warp_sum_i(n_neg);
  if (predicted_zero(n_neg, D, alpha)) {
    if (lane == 0) h[row] = 0.0f;
    return;  // the row's weights are never read
  }
  float acc = 0.0f;
  for (int k = lane; k < D; k += 32)
    acc += w1[(size_t)row * D + k] * x[k];
  acc = warp_sum_f(acc);
  if (lane == 0) h[row] = fmaxf(acc + b1[row], 0.0f);
}

__global__ void sparse_ffn_down_v1(const float* __restrict__ h, const float* __restrict__ w2t,
                                   const float* __restrict__ b2, float* __restrict__ y, int DFF, int D) {
  extern __shared__ float hs[];  // h staged once per block: DFF floats of dynamic shared memory
  for (int i = threadIdx.x; i < DFF; i += blockDim.x)
    hs[i] = h[i];
  __syncthreads();
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= D) return;
  float acc = b2[j];
  for (int i = 0; i < DFF; ++i) {
    const float hi = hs[i];
    if (hi != 0.0f) acc += hi * w2t[(size_t)i * D + j];
  }
  y[j] = acc;
}
