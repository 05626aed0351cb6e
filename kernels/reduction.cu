// reduction.cu -- sum of a float32 vector: out[0] += sum(x[0:n]). The caller zeroes out[0].
//
// Versions (every one uses a grid-stride loop, so any grid size is correct):
// reduce_v1: one atomicAdd per element. The simplest correct parallel sum; every add is serialised on one address,
//            so it is bound by atomic throughput, not by memory bandwidth.
// reduce_v2: each thread sums privately, then a shared-memory tree per block (sequential addressing: active threads
//            stay contiguous, so whole warps retire together), then one atomicAdd per block. Atomics drop from n to
//            one per block; the tree needs a __syncthreads per level.
// reduce_v3: warp shuffles (__shfl_down_sync) reduce each warp in registers, one shared slot per warp, and the first
//            warp reduces those. No shared-memory tree, one __syncthreads instead of log2(BLOCK).
//
// Tuning: BLOCK = threads per block for v2/v3 (a power of two, 32..1024); the launcher must launch BLOCK threads.
#ifndef BLOCK
#define BLOCK 256
#endif

__global__ void reduce_v1(const float* __restrict__ x, float* __restrict__ out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    atomicAdd(out, x[i]);
}

__global__ void reduce_v2(const float* __restrict__ x, float* __restrict__ out, int n) {
  __shared__ float partial[BLOCK];
  const int tid = threadIdx.x;
  float sum = 0.0f;
  for (int i = blockIdx.x * BLOCK + tid; i < n; i += BLOCK * gridDim.x)
    sum += x[i];
  partial[tid] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride >>= 1) {
    if (tid < stride)
      partial[tid] += partial[tid + stride];
    __syncthreads();  // the next level reads what this level wrote
  }
  if (tid == 0)
    atomicAdd(out, partial[0]);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // lane 0 holds the warp's total
}

__global__ void reduce_v3(const float* __restrict__ x, float* __restrict__ out, int n) {
  __shared__ float warp_sums[BLOCK / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float sum = 0.0f;
  for (int i = blockIdx.x * BLOCK + threadIdx.x; i < n; i += BLOCK * gridDim.x)
    sum += x[i];
  sum = warp_sum(sum);
  if (lane == 0)
    warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = warp_sum(lane < BLOCK / 32 ? warp_sums[lane] : 0.0f);
    if (lane == 0)
      atomicAdd(out, sum);
  }
}
