// int8_gemm.cu -- integer-only linear layer: Y = requant(X W^T + bias) with int8 codes, int32 accumulation and the
// fixed-point requantization of Lab 03 (Jacob et al., CVPR 2018), fused into the GEMM's epilogue.
//
// Layout (row-major, K a multiple of 4 so that every row starts on a 4-byte word; the launcher pads K with zero
// weights, which add nothing to the sum):
//   X (M, K) int8 activation codes;  W (N, K) int8 weight codes (one row per output channel, Z_W = 0);
//   bias (N,) int32, the folded bias q_b - Z_X sum_k q_W;  m0 (N,) int32 in [2^30, 2^31) and shift (N,) int32 = n:
//   the per-channel multiplier S_W S_X / S_Y = m0 2^-(31+n);  Y (M, N) int8.
//   acc = bias[c] + sum_k X[r, k] W[c, k];   Y[r, c] = clamp(zy + ((acc * m0[c] + 2^(30+n)) >> (31+n)), -128, 127),
//   the product in 64 bits (round half up, the lab's `requantize`).
//
// Versions:
// int8_gemm_v1: one thread per output, one int8 multiply-add per k (a byte load from each operand per MAC).
// int8_gemm_v2: one thread per output, the rows read as 32-bit words: __dp4a does four int8 products and their sum
//               into the int32 accumulator in one instruction, and each load brings four codes.
// int8_gemm_v3: v2 on TILE x TILE shared-memory tiles of words: a block stages TILE rows of X and TILE rows of W
//               (TILE words each) and every thread reuses them TILE times, so global loads drop by a factor TILE.
// int8_gemm_v4: v3's tiles with a float epilogue for the W8A8 linears of an LLM (SmoothQuant, Lab 07): X codes carry a
//               float scale per token (row), W codes a float scale per output channel, and the int32 sum is scaled
//               once per output, Y[r, c] = sx[r] sw[c] acc + bias[c] in float32 (no requantization: the next layer
//               takes float activations). Y (M, N) float; sx (M,), sw (N,), bias (N,) float.
//
// Tuning: TILE (v3, v4; block = TILE x TILE threads, x along the output channels). v1, v2: any 2-D block.
#ifndef TILE
#define TILE 16
#endif

__device__ __forceinline__ signed char requant_int8(int acc, int m0, int shift, int zy) {
  const int s = 31 + shift;  // 1 <= s <= 62 (checked by the launcher)
  const long long q = (((long long)acc * m0 + (1LL << (s - 1))) >> s) + zy;
  return (signed char)(q < -128 ? -128 : (q > 127 ? 127 : q));
}

__global__ void int8_gemm_v1(const signed char* __restrict__ X, const signed char* __restrict__ W,
                             const int* __restrict__ bias, const int* __restrict__ m0, const int* __restrict__ shift,
                             signed char* __restrict__ Y, int M, int N, int K, int zy) {
  const int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= M || c >= N) return;
  int acc = bias[c];
  for (int k = 0; k < K; ++k)
    acc += (int)X[(size_t)r * K + k] * (int)W[(size_t)c * K + k];
  Y[(size_t)r * N + c] = requant_int8(acc, m0[c], shift[c], zy);
}

__global__ void int8_gemm_v2(const int* __restrict__ X, const int* __restrict__ W, const int* __restrict__ bias,
                             const int* __restrict__ m0, const int* __restrict__ shift, signed char* __restrict__ Y,
                             int M, int N, int K, int zy) {
  const int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= M || c >= N) return;
  const int words = K / 4;
  int acc = bias[c];
  for (int w = 0; w < words; ++w)
    acc = __dp4a(X[(size_t)r * words + w], W[(size_t)c * words + w], acc);
  Y[(size_t)r * N + c] = requant_int8(acc, m0[c], shift[c], zy);
}

// The int32 sum over k of X[r, k] W[c, k] for thread (x = c, y = r) of the block, on TILE x TILE shared tiles of words.
// Rows and words past the edges are staged as zeros (they add nothing), so every thread runs every barrier.
__device__ __forceinline__ int dp4a_tiled(const int* __restrict__ X, const int* __restrict__ W, int M, int N, int words,
                                          int (*Xs)[TILE + 1], int (*Ws)[TILE + 1]) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int r = blockIdx.y * TILE + ty, wrow = blockIdx.x * TILE + ty;  // thread (tx, ty) stages word tx of W row wrow
  int acc = 0;
  for (int w0 = 0; w0 < words; w0 += TILE) {
    Xs[ty][tx] = (r < M && w0 + tx < words) ? X[(size_t)r * words + w0 + tx] : 0;
    Ws[ty][tx] = (wrow < N && w0 + tx < words) ? W[(size_t)wrow * words + w0 + tx] : 0;
    __syncthreads();  // both tiles complete before anyone reads them
    for (int w = 0; w < TILE; ++w)
      acc = __dp4a(Xs[ty][w], Ws[tx][w], acc);
    __syncthreads();  // everyone is done before the tiles are overwritten
  }
  return acc;
}

__global__ void int8_gemm_v3(const int* __restrict__ X, const int* __restrict__ W, const int* __restrict__ bias,
                             const int* __restrict__ m0, const int* __restrict__ shift, signed char* __restrict__ Y,
                             int M, int N, int K, int zy) {
  __shared__ int Xs[TILE][TILE + 1];  // +1: threads of a warp read a column without bank conflicts
  __shared__ int Ws[TILE][TILE + 1];
  const int r = blockIdx.y * TILE + threadIdx.y, c = blockIdx.x * TILE + threadIdx.x;
  const int acc = dp4a_tiled(X, W, M, N, K / 4, Xs, Ws);
  if (r < M && c < N)
    Y[(size_t)r * N + c] = requant_int8(acc + bias[c], m0[c], shift[c], zy);
}

__global__ void int8_gemm_v4(const int* __restrict__ X, const float* __restrict__ sx, const int* __restrict__ W,
                             const float* __restrict__ sw, const float* __restrict__ bias, float* __restrict__ Y,
                             int M, int N, int K) {
  __shared__ int Xs[TILE][TILE + 1];
  __shared__ int Ws[TILE][TILE + 1];
  const int r = blockIdx.y * TILE + threadIdx.y, c = blockIdx.x * TILE + threadIdx.x;
  const int acc = dp4a_tiled(X, W, M, N, K / 4, Xs, Ws);
  if (r < M && c < N)
    Y[(size_t)r * N + c] = sx[r] * sw[c] * (float)acc + bias[c];  // the only float work: one multiply-add per output
}
