// sparse24_gemm.cu -- C = A B with A (M, K) 2:4-sparse stored compressed, B (K, N) dense, all float32 row-major.
// A is given as values (M, K/2) float32 and indices (M, K/2) uint8: value q of row m sits in column
// 4 * (q / 2) + indices[m, q] of the dense A (two kept per group of four, see Lab 02's compress_nm).
//
// Versions:
// sgemm24_v1: one thread per C element; for each kept value it loads the value, its 2-bit index and the selected
//             row of B: K/2 multiply-adds instead of K, half the A traffic of a dense GEMM, but B is re-read by every
//             row of C from global memory.
// sgemm24_v2: TILE x TILE output tile per block; the block stages a (TILE, 2*TILE) slice of compressed A (values and
//             indices) and the matching (4*TILE, TILE) slab of B in shared memory, so each B element is loaded from
//             global memory once per block instead of once per thread row.
//
// Tuning: TILE (v2; block = TILE x TILE threads). K must be a multiple of 4; any M, N (edges guarded).
#ifndef TILE
#define TILE 16
#endif

extern "C" __global__ void sgemm24_v1(const float* __restrict__ vals, const unsigned char* __restrict__ idx,
                                      const float* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int m = blockIdx.y * blockDim.y + threadIdx.y;
  if (m >= M || n >= N)
    return;
  const int half = K / 2;
  float acc = 0.0f;
  for (int q = 0; q < half; ++q) {
    const int k = 4 * (q / 2) + idx[m * half + q];
    acc += vals[m * half + q] * B[k * N + n];
  }
  C[m * N + n] = acc;
}

extern "C" __global__ void sgemm24_v2(const float* __restrict__ vals, const unsigned char* __restrict__ idx,
                                      const float* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
  __shared__ float As[TILE][2 * TILE];          // compressed values of TILE rows, 2*TILE kept per row = 4*TILE of K
  __shared__ unsigned char Is[TILE][2 * TILE];
  __shared__ float Bs[4 * TILE][TILE];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int n = blockIdx.x * TILE + tx, m = blockIdx.y * TILE + ty;
  const int half = K / 2;
  float acc = 0.0f;
  for (int q0 = 0; q0 < half; q0 += 2 * TILE) {
    for (int s = 0; s < 2; ++s) {               // each thread stages two compressed entries of its row
      const int q = q0 + tx + s * TILE;
      const bool ok = m < M && q < half;
      As[ty][tx + s * TILE] = ok ? vals[m * half + q] : 0.0f;
      Is[ty][tx + s * TILE] = ok ? idx[m * half + q] : 0;
    }
    for (int s = 0; s < 4; ++s) {               // and four rows of the B slab in its column
      const int k = 2 * q0 + ty + s * TILE;
      Bs[ty + s * TILE][tx] = (k < K && n < N) ? B[k * N + n] : 0.0f;
    }
    __syncthreads();
    for (int q = 0; q < 2 * TILE; ++q)
      acc += As[ty][q] * Bs[4 * (q / 2) + Is[ty][q]][tx];
    __syncthreads();                            // the next stage overwrites the tiles
  }
  if (m < M && n < N)
    C[m * N + n] = acc;
}
