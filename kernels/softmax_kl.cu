// softmax_kl.cu -- per row r of (rows, n) float32 logits: kl[r] = KL(softmax(t[r] / T) || softmax(s[r] / T)) in nats,
// the soft term of Hinton et al.'s distillation loss ("Distilling the Knowledge in a Neural Network", 2015) before its
// T^2 factor: t the teacher's logits, s the student's.
//
// With a = t / T, b = s / T, m_t = max a, S_t = sum exp(a - m_t) (and m_s, S_s for b):
//     KL = sum p_t (log p_t - log p_s) = W / S_t - (m_t + log S_t) + (m_s + log S_s),   W = sum exp(a - m_t) (a - b).
// Every exp has an argument <= 0, so logits of +-1e4 do not overflow (a naive exp(a) does beyond a ~ 88).
//
// Versions (one block of BLOCK threads per row; thread i reads elements i, i + BLOCK, ...: coalesced):
// softmax_kl_v1: three passes over the row, the textbook way: the two maxima (a block reduction), then S_t and S_s
//                (another), then W (a third). Both rows are read from global memory three times.
// softmax_kl_v2: one pass (the online softmax of Milakov & Gimelshein, "Online normalizer calculation for softmax",
//                2018): each thread keeps (m_t, S_t, W) and (m_s, S_s) for the elements it has seen, rescaling its sums
//                by exp(m_old - m_new) whenever a maximum grows; the threads' states then merge pairwise, by warp
//                shuffles inside a warp and through shared memory across warps. Both rows are read once.
//
// Tuning: BLOCK = threads per block, a multiple of 32 up to 1024; the launcher must launch BLOCK threads.
#ifndef BLOCK
#define BLOCK 128
#endif
#define WARPS (BLOCK / 32)
#include "kl_state.cuh"

// ------------------------------------------------------------------------------------ v1: three passes
struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct SumOp { __device__ float operator()(float a, float b) const { return a + b; } };

// Every thread gets op over the block's values: a butterfly in each warp, then every thread reads the warps' results.
template <class Op>
__device__ __forceinline__ float block_all_reduce(float v, float* scratch, Op op) {
  for (int off = 16; off > 0; off >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by the previous reduction
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < WARPS; ++w)
    v = op(v, scratch[w]);
  return v;
}

extern "C" __global__ void softmax_kl_v1(const float* __restrict__ t, const float* __restrict__ s,
                                         float* __restrict__ kl, int n, float inv_T) {
  __shared__ float scratch[WARPS];
  const float* tr = t + (long long)blockIdx.x * n;
  const float* sr = s + (long long)blockIdx.x * n;
  float mt = NEG_INF, ms = NEG_INF;
  for (int i = threadIdx.x; i < n; i += BLOCK) {
    mt = fmaxf(mt, tr[i] * inv_T);
    ms = fmaxf(ms, sr[i] * inv_T);
  }
  mt = block_all_reduce(mt, scratch, MaxOp());
  ms = block_all_reduce(ms, scratch, MaxOp());
  float st = 0.0f, ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += BLOCK) {
    st += expf(tr[i] * inv_T - mt);
    ss += expf(sr[i] * inv_T - ms);
  }
  st = block_all_reduce(st, scratch, SumOp());
  ss = block_all_reduce(ss, scratch, SumOp());
  float w = 0.0f;
  for (int i = threadIdx.x; i < n; i += BLOCK) {
    const float a = tr[i] * inv_T, b = sr[i] * inv_T;
    w += expf(a - mt) * (a - b);
  }
  w = block_all_reduce(w, scratch, SumOp());
  if (threadIdx.x == 0)
    kl[blockIdx.x] = w / st - (mt + logf(st)) + (ms + logf(ss));
}

// ------------------------------------------------------------------------------------ v2: one pass (state: kl_state.cuh)
extern "C" __global__ void softmax_kl_v2(const float* __restrict__ t, const float* __restrict__ s,
                                         float* __restrict__ kl, int n, float inv_T) {
  __shared__ KLState warp_states[WARPS];
  const float* tr = t + (long long)blockIdx.x * n;
  const float* sr = s + (long long)blockIdx.x * n;
  KLState v = {NEG_INF, 0.0f, 0.0f, NEG_INF, 0.0f};
  for (int i = threadIdx.x; i < n; i += BLOCK) {
    const float a = tr[i] * inv_T, b = sr[i] * inv_T;
    if (a > v.mt) {  // a new teacher maximum: rescale the sums kept relative to the old one
      const float f = v.mt == NEG_INF ? 0.0f : expf(v.mt - a);
      v.st *= f;
      v.w *= f;
      v.mt = a;
    }
    const float e = expf(a - v.mt);
    v.st += e;
    v.w += e * (a - b);
    if (b > v.ms) {
      v.ss *= v.ms == NEG_INF ? 0.0f : expf(v.ms - b);
      v.ms = b;
    }
    v.ss += expf(b - v.ms);
  }
  for (int off = 16; off > 0; off >>= 1)
    v = merge(v, shfl_xor_state(v, off));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0)
    warp_states[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    KLState r = warp_states[0];
    for (int k = 1; k < WARPS; ++k)
      r = merge(r, warp_states[k]);
    kl[blockIdx.x] = r.w / r.st - (r.mt + logf(r.st)) + (r.ms + logf(r.ss));
  }
}
