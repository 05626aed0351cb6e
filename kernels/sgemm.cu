// sgemm.cu -- C = A @ B in float32, row-major: A (M, K), B (K, N), C (M, N). Any M, N, K (ragged edges are padded
// with zeros in the tiles and guarded on the store).
//
// Versions:
// sgemm_v1: one thread per C element, the dot product read straight from global memory. Every A element is read
//           N times and every B element M times: bound by global-memory traffic (2*M*N*K loads).
// sgemm_v2: TILE x TILE shared-memory tiles. A block stages one tile of A and one of B, then each thread reuses the
//           staged values TILE times: global loads drop by a factor TILE (2*M*N*K/TILE).
// sgemm_v3: register blocking. A block of (BN/TN) x (BM/TM) threads computes a BM x BN tile of C; each thread keeps a
//           TM x TN micro-tile of C in registers and, per k, loads TM values of A and TN of B from shared memory for
//           TM*TN FMAs. Fewer shared loads per FMA, and global loads drop to M*N*K*(1/BM + 1/BN).
//
// Tuning: TILE (v2; block = TILE x TILE threads); BM, BN, BK, TM, TN (v3; block = (BN/TN, BM/TM) threads).
#ifndef TILE
#define TILE 16
#endif
#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#ifndef BK
#define BK 8
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif

__global__ void sgemm_v1(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                         int M, int N, int K) {
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  const int col = blockIdx.x * blockDim.x + threadIdx.x;  // x is the fast index: a warp reads one row of B
  if (row >= M || col >= N)
    return;
  float acc = 0.0f;
  for (int k = 0; k < K; ++k)
    acc += A[row * K + k] * B[k * N + col];
  C[row * N + col] = acc;
}

__global__ void sgemm_v2(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                         int M, int N, int K) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
    __syncthreads();  // the tile is complete before anyone reads it
#pragma unroll
    for (int k = 0; k < TILE; ++k)
      acc += As[ty][k] * Bs[k][tx];
    __syncthreads();  // everyone is done with the tile before it is overwritten
  }
  if (row < M && col < N)
    C[row * N + col] = acc;
}

__global__ void sgemm_v3(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                         int M, int N, int K) {
  __shared__ float As[BK][BM];  // transposed: a thread reads its TM rows of one k contiguously
  __shared__ float Bs[BK][BN];
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
  const int row0 = blockIdx.y * BM + threadIdx.y * TM, col0 = blockIdx.x * BN + threadIdx.x * TN;
  float acc[TM][TN] = {};
  float a_reg[TM], b_reg[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += nthreads) {  // consecutive threads read consecutive k of one A row
      const int r = i / BK, c = i % BK, gr = blockIdx.y * BM + r, gc = k0 + c;
      As[c][r] = (gr < M && gc < K) ? A[gr * K + gc] : 0.0f;
    }
    for (int i = tid; i < BK * BN; i += nthreads) {  // consecutive threads read consecutive columns of B
      const int r = i / BN, c = i % BN, gr = k0 + r, gc = blockIdx.x * BN + c;
      Bs[r][c] = (gr < K && gc < N) ? B[gr * N + gc] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int m = 0; m < TM; ++m)
        a_reg[m] = As[k][threadIdx.y * TM + m];
#pragma unroll
      for (int n = 0; n < TN; ++n)
        b_reg[n] = Bs[k][threadIdx.x * TN + n];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int n = 0; n < TN; ++n)
          acc[m][n] += a_reg[m] * b_reg[n];
    }
    __syncthreads();
  }
  for (int m = 0; m < TM; ++m)
    for (int n = 0; n < TN; ++n)
      if (row0 + m < M && col0 + n < N)
        C[(row0 + m) * N + col0 + n] = acc[m][n];
}
