// lut_gemv.cu -- y = W x for one token with k-means (codebook) quantized weights (Deep Compression, Han et al.,
// ICLR 2016): each weight is a 4-bit index into a 16-entry float codebook shared by the layer, looked up on the fly.
//
// Layout (K a multiple of 8): idx (N, K/8) uint32, the index of column 8*w + i in bits 4i..4i+3 of word w (the
// layout of w4a16_gemv.cu: tinyml_lib.kernels.w4a16_gemv.pack_w4);  codebook (16,) float32;  x (K,) float32;
// y (N,) float32.   y[n] = sum_k codebook[idx[n, k]] * x[k].
//
// Versions:
// lut_gemv_v1: one thread per output row walks its row word by word and reads codebook entries from global memory
//              (16 distinct addresses, so caches absorb most of it on a GPU; the counters show every lookup).
// lut_gemv_v2: one warp per output row, ROWS warps per block. The block stages the codebook and x in shared memory
//              once; lane l reads words l, l+32, ... (coalesced), looks indices up in shared memory, and a warp
//              shuffle sums the lanes. Global traffic: the packed indices once, x and the codebook once per block.
//
// Tuning: ROWS (v2: launch 32*ROWS threads with (16 + K) * 4 bytes of dynamic shared memory).
#ifndef ROWS
#define ROWS 4
#endif

__global__ void lut_gemv_v1(const unsigned int* __restrict__ idx, const float* __restrict__ codebook,
                            const float* __restrict__ x, float* __restrict__ y, int N, int K) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= N) return;
  const int words = K / 8;
  float acc = 0.0f;
  for (int w = 0; w < words; ++w) {
    const unsigned int q = idx[(size_t)row * words + w];
    for (int i = 0; i < 8; ++i)
      acc += codebook[(q >> (4 * i)) & 0xFu] * x[w * 8 + i];
  }
  y[row] = acc;
}

__global__ void lut_gemv_v2(const unsigned int* __restrict__ idx, const float* __restrict__ codebook,
                            const float* __restrict__ x, float* __restrict__ y, int N, int K) {
  extern __shared__ float smem[];
  float* lut = smem;       // 16 codebook entries
  float* xs = smem + 16;   // K inputs
  for (int k = threadIdx.x; k < K + 16; k += blockDim.x) {
    if (k < 16) lut[k] = codebook[k];
    else xs[k - 16] = x[k - 16];
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, row = blockIdx.x * ROWS + (threadIdx.x >> 5);
  if (row >= N) return;  // a whole warp leaves together, after the barrier
  const int words = K / 8;
  float acc = 0.0f;
  for (int w = lane; w < words; w += 32) {
    const unsigned int q = idx[(size_t)row * words + w];
    for (int i = 0; i < 8; ++i)
      acc += lut[(q >> (4 * i)) & 0xFu] * xs[w * 8 + i];
  }
  for (int offset = 16; offset > 0; offset >>= 1)
    acc += __shfl_down_sync(0xffffffffu, acc, offset);
  if (lane == 0) y[row] = acc;
}
