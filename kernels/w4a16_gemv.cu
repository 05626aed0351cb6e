// w4a16_gemv.cu -- y = W x for one token with 4-bit group-quantized weights (W4A16, as in AWQ/TinyChat): the weights
// are dequantized on the fly in registers, so only 4 bits per weight cross the memory bus.
//
// Layout (K a multiple of GROUP, GROUP a multiple of 8):
//   qweight (N, K/8) uint32: the code of column 8*w + i sits in bits 4i..4i+3 of word w (interleaved: this is the
//            little-endian uint32 view of two codes per byte, low nibble = even column -- tinyml_lib.llm.awq.pack_int4);
//   scales  (N, K/GROUP) __half;  zeros (N, K/GROUP) uint8;  w_hat = (q - zero) * scale;
//   x (K,) __half;  y (N,) float32, accumulated in float32.
// fp16_gemv is the baseline a W4A16 kernel must beat: the same product with the weights stored as (N, K) __half.
//
// Versions:
// w4a16_gemv_v1: one thread per output row walks its row word by word: unpack 8 codes with shift and mask,
//                dequantize, FMA with x. Adjacent threads read words K/8 apart (uncoalesced) and each re-reads x.
// w4a16_gemv_v2: one warp per output row, ROWS warps per block. The block stages x in shared memory once; lane l reads
//                words l, l+32, ... of its row (consecutive lanes read consecutive words: coalesced) and a warp
//                shuffle sums the 32 partial dot products. Each weight word is read once.
// fp16_gemv_v1:  one warp per output row over (N, K) __half weights, x staged like w4a16_gemv_v2: 4x the weight bytes.
//
// Tuning: GROUP (quantization group size), ROWS (warps per block: launch 32*ROWS threads, K*4 bytes of dynamic
// shared memory for v2 and fp16_gemv_v1).
#include <cuda_fp16.h>

#ifndef GROUP
#define GROUP 64
#endif
#ifndef ROWS
#define ROWS 4
#endif

__device__ __forceinline__ float dot8_w4(unsigned int q, float zero, float scale, const float* xk) {
  float acc = 0.0f;
  for (int i = 0; i < 8; ++i)
    acc += ((float)((q >> (4 * i)) & 0xFu) - zero) * xk[i];
  return acc * scale;  // one scale per group: factor it out of the 8 products
}

__global__ void w4a16_gemv_v1(const unsigned int* __restrict__ qweight, const __half* __restrict__ scales,
                              const unsigned char* __restrict__ zeros, const __half* __restrict__ x,
                              float* __restrict__ y, int N, int K) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= N) return;
  const int words = K / 8, groups = K / GROUP;
  float acc = 0.0f, xk[8];
  for (int w = 0; w < words; ++w) {
    const int g = row * groups + (w * 8) / GROUP;
    for (int i = 0; i < 8; ++i) xk[i] = __half2float(x[w * 8 + i]);
    acc += dot8_w4(qweight[(size_t)row * words + w], (float)zeros[g], __half2float(scales[g]), xk);
  }
  y[row] = acc;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // lane 0 holds the warp's total
}

__device__ __forceinline__ void stage_x(const __half* __restrict__ x, float* xs, int K) {
  for (int k = threadIdx.x; k < K; k += blockDim.x)
    xs[k] = __half2float(x[k]);
  __syncthreads();
}

__global__ void w4a16_gemv_v2(const unsigned int* __restrict__ qweight, const __half* __restrict__ scales,
                              const unsigned char* __restrict__ zeros, const __half* __restrict__ x,
                              float* __restrict__ y, int N, int K) {
  extern __shared__ float xs[];
  stage_x(x, xs, K);
  const int lane = threadIdx.x & 31, row = blockIdx.x * ROWS + (threadIdx.x >> 5);
  if (row >= N) return;  // a whole warp leaves together, after the barrier
  const int words = K / 8, groups = K / GROUP;
  float acc = 0.0f;
  for (int w = lane; w < words; w += 32) {
    const int g = row * groups + (w * 8) / GROUP;
    acc += dot8_w4(qweight[(size_t)row * words + w], (float)zeros[g], __half2float(scales[g]), xs + w * 8);
  }
  acc = warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

__global__ void fp16_gemv_v1(const __half* __restrict__ w, const __half* __restrict__ x, float* __restrict__ y,
                             int N, int K) {
  extern __shared__ float xs[];
  stage_x(x, xs, K);
  const int lane = threadIdx.x & 31, row = blockIdx.x * ROWS + (threadIdx.x >> 5);
  if (row >= N) return;
  float acc = 0.0f;
  for (int k = lane; k < K; k += 32)
    acc += __half2float(w[(size_t)row * K + k]) * xs[k];
  acc = warp_sum(acc);
  if (lane == 0) y[row] = acc;
}
