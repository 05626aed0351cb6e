// xnor_gemm.cu -- C = A B^T for +-1 matrices stored as sign bits (XNOR-Net, Rastegari et al., ECCV 2016), and the
// float32 GEMM with the same loop structure that it is measured against.
//
// Layout: A (M, W) and B (N, W) uint32, W = ceil(K / 32) words per row; element k of a row is bit k % 32 of word
// k / 32, bit 1 = +1, bit 0 = -1, padding bits 0 in both (Lab 03b's `pack_signs`). C (M, N) int32.
//   C[r, c] = sum_k a_k b_k = (#agree - #disagree) = K - 2 popcount(A[r] XOR B[c])  (padding bits never disagree).
// The float baselines take A (M, K) and B (N, K) float32 and write C (M, N) float32 = A B^T.
//
// Versions:
// xnor_gemm_v1: one thread per output walks the two rows word by word: XOR, __popc, add. One 32-bit load of each
//               operand covers 32 products.
// xnor_gemm_v2: v1 on TILE x TILE shared-memory tiles of words (each staged word reused TILE times).
// sgemm_nt_v1:  the float32 baseline of v1: one thread per output, one FMA per element (same thread mapping, same
//               loop over the shared dimension, same compiler and flags).
// sgemm_nt_v2:  the float32 baseline of v2: the same tiles, of floats.
//
// Tuning: TILE (v2 and sgemm_nt_v2; block = TILE x TILE threads, x along the columns of C). v1: any 2-D block.
#ifndef TILE
#define TILE 16
#endif

__global__ void xnor_gemm_v1(const unsigned int* __restrict__ A, const unsigned int* __restrict__ B,
                             int* __restrict__ C, int M, int N, int K) {
  const int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= M || c >= N) return;
  const int words = (K + 31) / 32;
  int disagree = 0;
  for (int w = 0; w < words; ++w)
    disagree += __popc(A[(size_t)r * words + w] ^ B[(size_t)c * words + w]);
  C[(size_t)r * N + c] = K - 2 * disagree;
}

__global__ void sgemm_nt_v1(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                            int M, int N, int K) {
  const int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= M || c >= N) return;
  float acc = 0.0f;
  for (int k = 0; k < K; ++k)
    acc += A[(size_t)r * K + k] * B[(size_t)c * K + k];
  C[(size_t)r * N + c] = acc;
}

__global__ void xnor_gemm_v2(const unsigned int* __restrict__ A, const unsigned int* __restrict__ B,
                             int* __restrict__ C, int M, int N, int K) {
  __shared__ unsigned int As[TILE][TILE + 1];  // +1: a warp reading a column hits distinct banks
  __shared__ unsigned int Bs[TILE][TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int r = blockIdx.y * TILE + ty, c = blockIdx.x * TILE + tx, brow = blockIdx.x * TILE + ty;
  const int words = (K + 31) / 32;
  int disagree = 0;
  for (int w0 = 0; w0 < words; w0 += TILE) {
    As[ty][tx] = (r < M && w0 + tx < words) ? A[(size_t)r * words + w0 + tx] : 0u;  // zero pads agree
    Bs[ty][tx] = (brow < N && w0 + tx < words) ? B[(size_t)brow * words + w0 + tx] : 0u;
    __syncthreads();
    for (int w = 0; w < TILE; ++w)
      disagree += __popc(As[ty][w] ^ Bs[tx][w]);
    __syncthreads();
  }
  if (r < M && c < N) C[(size_t)r * N + c] = K - 2 * disagree;
}

__global__ void sgemm_nt_v2(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                            int M, int N, int K) {
  __shared__ float As[TILE][TILE + 1];
  __shared__ float Bs[TILE][TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int r = blockIdx.y * TILE + ty, c = blockIdx.x * TILE + tx, brow = blockIdx.x * TILE + ty;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    As[ty][tx] = (r < M && k0 + tx < K) ? A[(size_t)r * K + k0 + tx] : 0.0f;
    Bs[ty][tx] = (brow < N && k0 + tx < K) ? B[(size_t)brow * K + k0 + tx] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; ++k)
      acc += As[ty][k] * Bs[tx][k];
    __syncthreads();
  }
  if (r < M && c < N) C[(size_t)r * N + c] = acc;
}
