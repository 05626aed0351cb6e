// kl_state.cuh -- the running state of softmax_kl.cu's one-pass KL (and of Lab 05's kernel exercise): per set of
// elements seen, the teacher's maximum m_t, its normaliser S_t = sum exp(a - m_t) and W = sum exp(a - m_t) (a - b), the
// student's maximum m_s and normaliser S_s. merge() combines the states of two disjoint sets (the online softmax of
// Milakov & Gimelshein, 2018); shfl_xor_state() exchanges a state between the lanes of a warp.
#pragma once

// -inf without <math.h>'s INFINITY, which NVRTC does not provide: the float with bits 0xff800000.
#define NEG_INF __int_as_float(0xff800000)

struct KLState {
  float mt, st, w;  // teacher: running maximum, normaliser, W (all relative to mt)
  float ms, ss;     // student: running maximum, normaliser
};

// The state of the union of two disjoint sets of elements. An empty state has maxima -inf and sums 0.
__device__ __forceinline__ KLState merge(KLState x, KLState y) {
  KLState r;
  r.mt = fmaxf(x.mt, y.mt);
  const float fx = x.mt == NEG_INF ? 0.0f : expf(x.mt - r.mt), fy = y.mt == NEG_INF ? 0.0f : expf(y.mt - r.mt);
  r.st = x.st * fx + y.st * fy;
  r.w = x.w * fx + y.w * fy;
  r.ms = fmaxf(x.ms, y.ms);
  r.ss = (x.ms == NEG_INF ? 0.0f : x.ss * expf(x.ms - r.ms)) + (y.ms == NEG_INF ? 0.0f : y.ss * expf(y.ms - r.ms));
  return r;
}

__device__ __forceinline__ KLState shfl_xor_state(KLState v, int off) {
  KLState o;
  o.mt = __shfl_xor_sync(0xffffffffu, v.mt, off);
  o.st = __shfl_xor_sync(0xffffffffu, v.st, off);
  o.w = __shfl_xor_sync(0xffffffffu, v.w, off);
  o.ms = __shfl_xor_sync(0xffffffffu, v.ms, off);
  o.ss = __shfl_xor_sync(0xffffffffu, v.ss, off);
  return o;
}
