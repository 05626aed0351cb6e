// cuda_emu.h -- run the course's CUDA C kernels on a CPU (the "CPU tier" of tinyml_lib.kernels).
//
// Included in front of a kernel's source (g++ -include cuda_emu.h). The same file, compiled once with
// -DCUEMU_RUNTIME, is the runtime linked into every kernel library.
//
// Execution model (why it is built this way):
//   * Blocks run one after another on one OS thread. That makes `__shared__` a plain `static` (one block owns it at a
//     time) and makes every atomic trivially atomic, and runs are deterministic, which a race check needs.
//   * The threads of a block are user-level fibers with a hand-written context switch (~10 ns; ucontext's
//     swapcontext makes a syscall per switch and is 50x slower). A thread runs until it reaches a synchronisation
//     point: __syncthreads() parks it until every live thread of the block has arrived; a warp primitive (shuffle,
//     vote, __syncwarp) parks it until every live lane of its warp (32 consecutive threads in linear order) has.
//   * Check modes (bounds, race, counters) compile the kernel with GCC's -fsanitize=thread instrumentation but link
//     it against the hooks below instead of the ThreadSanitizer runtime: every load and store of the kernel calls
//     __tsan_readN/__tsan_writeN(address) *before* it happens, so the hook can count it, check it against the
//     argument extents (arguments are copied into a private arena with gaps between them), track shared-memory
//     accesses per barrier interval, and abandon the thread before an invalid access is made.
//   * Shared memory starts undefined in every block on a GPU (often another block's leftovers). Here it is filled
//     with 0xFF bytes (NaN as float, -1 as int) before each block, and the race check reports a read of shared
//     memory that no thread of the block has written yet. The race check also covers global memory: a thread
//     that reads what another thread wrote in the same launch, with nothing ordering the two (another block, or
//     no __syncthreads() between), is reported -- a read-modify-write of one address from several threads
//     needs an atomic, and only on a GPU would a plain `+=` lose updates.
#ifndef TINYML_CUDA_EMU_H
#define TINYML_CUDA_EMU_H

#define CUEMU_VERSION 4
#define CUEMU_CPU 1

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------------------------------------------------
// Runtime interface shared by the kernel code and the runtime.
// ---------------------------------------------------------------------------------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

extern "C" {
extern uint3 cuemu_threadIdx, cuemu_blockIdx;
extern dim3 cuemu_blockDim, cuemu_gridDim;
extern unsigned char cuemu_dyn_smem[];
void cuemu_syncthreads(void);
uint64_t cuemu_warp_exchange(uint64_t value, int src_lane, unsigned int* active_mask);
unsigned int cuemu_warp_ballot(int predicate, unsigned int* active_mask);
unsigned int cuemu_lane_id(void);
}

#define threadIdx cuemu_threadIdx
#define blockIdx cuemu_blockIdx
#define blockDim cuemu_blockDim
#define gridDim cuemu_gridDim
#define warpSize 32

// ---------------------------------------------------------------------------------------------------------------------
// Qualifiers. `__shared__` variables go to their own section so the runtime knows their address range.
// ---------------------------------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("cuemu_shared"), aligned(16)))
// Helpers that touch memory are always inlined so a check-mode access is attributed to the kernel's line.
#define CUEMU_INLINE static inline __attribute__((always_inline))

#define __syncthreads() cuemu_syncthreads()
CUEMU_INLINE void __syncwarp(unsigned int mask = 0xffffffffu) { (void)mask; cuemu_warp_exchange(0, 0, nullptr); }
CUEMU_INLINE void __threadfence(void) {}
CUEMU_INLINE void __threadfence_block(void) {}
CUEMU_INLINE unsigned int __activemask(void) { return 0xffffffffu; }

// ---------------------------------------------------------------------------------------------------------------------
// Warp shuffles and votes. The mask argument is not used: every live lane of the warp must call the same primitive
// (what __shfl_*_sync(0xffffffff, ...) requires on a GPU anyway).
// ---------------------------------------------------------------------------------------------------------------------
template <class T>
CUEMU_INLINE T cuemu_shfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  bits = cuemu_warp_exchange(bits, src, nullptr);
  T out;
  memcpy(&out, &bits, sizeof(T));
  return out;
}
template <class T>
CUEMU_INLINE T __shfl_sync(unsigned int, T v, int src, int width = 32) {
  int lane = (int)cuemu_lane_id();
  return cuemu_shfl(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
CUEMU_INLINE T __shfl_up_sync(unsigned int, T v, unsigned int delta, int width = 32) {
  int lane = (int)cuemu_lane_id();
  return cuemu_shfl(v, (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane);
}
template <class T>
CUEMU_INLINE T __shfl_down_sync(unsigned int, T v, unsigned int delta, int width = 32) {
  int lane = (int)cuemu_lane_id();
  return cuemu_shfl(v, (lane & (width - 1)) + (int)delta < width ? lane + (int)delta : lane);
}
template <class T>
CUEMU_INLINE T __shfl_xor_sync(unsigned int, T v, int lane_mask, int width = 32) {
  int lane = (int)cuemu_lane_id();
  int src = lane ^ lane_mask;
  return cuemu_shfl(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}
CUEMU_INLINE unsigned int __ballot_sync(unsigned int, int pred) { return cuemu_warp_ballot(pred, nullptr); }
CUEMU_INLINE int __any_sync(unsigned int, int pred) { return cuemu_warp_ballot(pred, nullptr) != 0; }
CUEMU_INLINE int __all_sync(unsigned int, int pred) {
  unsigned int active = 0;
  return cuemu_warp_ballot(pred, &active) == active;
}
#define CUEMU_WARP_REDUCE(NAME, T, OP)                                                  \
  CUEMU_INLINE T NAME(unsigned int, T v) {                                              \
    T acc = v;                                                                          \
    for (int off = 16; off > 0; off >>= 1) { T o = __shfl_xor_sync(0u, acc, off); acc = OP; } \
    return acc;                                                                         \
  }
CUEMU_WARP_REDUCE(__reduce_add_sync, int, acc + o)
CUEMU_WARP_REDUCE(__reduce_add_sync, unsigned int, acc + o)
CUEMU_WARP_REDUCE(__reduce_max_sync, int, (o > acc ? o : acc))
CUEMU_WARP_REDUCE(__reduce_min_sync, int, (o < acc ? o : acc))
CUEMU_WARP_REDUCE(__reduce_max_sync, unsigned int, (o > acc ? o : acc))
CUEMU_WARP_REDUCE(__reduce_min_sync, unsigned int, (o < acc ? o : acc))

// ---------------------------------------------------------------------------------------------------------------------
// Atomics. Blocks and threads never run concurrently, so a read-modify-write is atomic as long as no thread switch
// happens inside it (none can). The loads and stores are __atomic builtins so the check build sees them as atomic
// accesses (not races, counted as atomic operations).
// ---------------------------------------------------------------------------------------------------------------------
template <class T>
CUEMU_INLINE T cuemu_atomic_load(T* p) {
  if constexpr (sizeof(T) == 4) { uint32_t b = __atomic_load_n((uint32_t*)p, __ATOMIC_RELAXED); T v; memcpy(&v, &b, 4); return v; }
  else if constexpr (sizeof(T) == 8) { uint64_t b = __atomic_load_n((uint64_t*)p, __ATOMIC_RELAXED); T v; memcpy(&v, &b, 8); return v; }
  else { uint16_t b = __atomic_load_n((uint16_t*)p, __ATOMIC_RELAXED); T v; memcpy(&v, &b, 2); return v; }
}
template <class T>
CUEMU_INLINE void cuemu_atomic_store(T* p, T v) {
  if constexpr (sizeof(T) == 4) { uint32_t b; memcpy(&b, &v, 4); __atomic_store_n((uint32_t*)p, b, __ATOMIC_RELAXED); }
  else if constexpr (sizeof(T) == 8) { uint64_t b; memcpy(&b, &v, 8); __atomic_store_n((uint64_t*)p, b, __ATOMIC_RELAXED); }
  else { uint16_t b; memcpy(&b, &v, 2); __atomic_store_n((uint16_t*)p, b, __ATOMIC_RELAXED); }
}
#define CUEMU_ATOMIC_RMW(NAME, T, NEWVAL)                                        \
  CUEMU_INLINE T NAME(T* p, T val) {                                             \
    T old = cuemu_atomic_load(p);                                                \
    cuemu_atomic_store(p, (T)(NEWVAL));                                          \
    return old;                                                                  \
  }
#define CUEMU_ATOMIC_INTS(NAME, NEWVAL)                                          \
  CUEMU_ATOMIC_RMW(NAME, int, NEWVAL)                                            \
  CUEMU_ATOMIC_RMW(NAME, unsigned int, NEWVAL)                                   \
  CUEMU_ATOMIC_RMW(NAME, unsigned long long, NEWVAL)                             \
  CUEMU_ATOMIC_RMW(NAME, long long, NEWVAL)
CUEMU_ATOMIC_INTS(atomicAdd, old + val)
CUEMU_ATOMIC_RMW(atomicAdd, float, old + val)
CUEMU_ATOMIC_RMW(atomicAdd, double, old + val)
CUEMU_ATOMIC_INTS(atomicSub, old - val)
CUEMU_ATOMIC_INTS(atomicMax, (val > old ? val : old))
CUEMU_ATOMIC_INTS(atomicMin, (val < old ? val : old))
CUEMU_ATOMIC_RMW(atomicMax, float, fmaxf(old, val))
CUEMU_ATOMIC_RMW(atomicMin, float, fminf(old, val))
CUEMU_ATOMIC_INTS(atomicExch, val)
CUEMU_ATOMIC_RMW(atomicExch, float, val)
CUEMU_ATOMIC_INTS(atomicAnd, old & val)
CUEMU_ATOMIC_INTS(atomicOr, old | val)
CUEMU_ATOMIC_INTS(atomicXor, old ^ val)
CUEMU_ATOMIC_RMW(atomicInc, unsigned int, (old >= val ? 0u : old + 1u))
CUEMU_ATOMIC_RMW(atomicDec, unsigned int, ((old == 0u || old > val) ? val : old - 1u))
#define CUEMU_ATOMIC_CAS(T)                                                      \
  CUEMU_INLINE T atomicCAS(T* p, T compare, T val) {                             \
    T old = cuemu_atomic_load(p);                                                \
    if (old == compare) cuemu_atomic_store(p, val);                              \
    return old;                                                                  \
  }
CUEMU_ATOMIC_CAS(int)
CUEMU_ATOMIC_CAS(unsigned int)
CUEMU_ATOMIC_CAS(unsigned long long)
CUEMU_ATOMIC_CAS(unsigned short)

// ---------------------------------------------------------------------------------------------------------------------
// Integer intrinsics.
// ---------------------------------------------------------------------------------------------------------------------
CUEMU_INLINE int __popc(unsigned int x) { return __builtin_popcount(x); }
CUEMU_INLINE int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
CUEMU_INLINE int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
CUEMU_INLINE int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
CUEMU_INLINE int __ffs(int x) { return __builtin_ffs(x); }
CUEMU_INLINE int __ffsll(long long x) { return __builtin_ffsll(x); }
CUEMU_INLINE unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
CUEMU_INLINE int __dp4a(int a, int b, int c) {
  int acc = c;
  for (int i = 0; i < 4; ++i) acc += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
  return acc;
}
CUEMU_INLINE unsigned int __dp4a(unsigned int a, unsigned int b, unsigned int c) {
  unsigned int acc = c;
  for (int i = 0; i < 4; ++i) acc += ((a >> (8 * i)) & 0xffu) * ((b >> (8 * i)) & 0xffu);
  return acc;
}
CUEMU_INLINE long long clock64(void) { static long long ticks = 0; return ++ticks; }  // monotonic, not a timer

// ---------------------------------------------------------------------------------------------------------------------
// Math. The C library's float functions stand in for CUDA's (accuracy differs by a few ulp at most).
// ---------------------------------------------------------------------------------------------------------------------
template <class A, class B>
CUEMU_INLINE std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
CUEMU_INLINE std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
CUEMU_INLINE float rsqrtf(float x) { return 1.0f / sqrtf(x); }
CUEMU_INLINE double rsqrt(double x) { return 1.0 / sqrt(x); }
// glibc declares its own __expf etc., so CUDA's fast intrinsics are macros here.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __powf(x, y) powf(x, y)
CUEMU_INLINE float __fdividef(float x, float y) { return x / y; }
CUEMU_INLINE float __frcp_rn(float x) { return 1.0f / x; }
CUEMU_INLINE float __fsqrt_rn(float x) { return sqrtf(x); }
CUEMU_INLINE float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
CUEMU_INLINE float __fadd_rn(float a, float b) { return a + b; }
CUEMU_INLINE float __fmul_rn(float a, float b) { return a * b; }
CUEMU_INLINE float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
CUEMU_INLINE int __float2int_rn(float x) { return (int)nearbyintf(x); }
CUEMU_INLINE int __float2int_rz(float x) { return (int)x; }
CUEMU_INLINE float __int2float_rn(int x) { return (float)x; }
CUEMU_INLINE float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
CUEMU_INLINE int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
CUEMU_INLINE unsigned int __float_as_uint(float x) { unsigned int i; memcpy(&i, &x, 4); return i; }
CUEMU_INLINE float __uint_as_float(unsigned int x) { float f; memcpy(&f, &x, 4); return f; }

template <class T>
CUEMU_INLINE T __ldg(const T* p) { return *p; }

// ---------------------------------------------------------------------------------------------------------------------
// Vector types (same sizes and alignments as CUDA's, so a float4* may view a float32 array).
// ---------------------------------------------------------------------------------------------------------------------
#define CUEMU_VEC2(N, T, A) struct __attribute__((aligned(A))) N { T x, y; }; \
  CUEMU_INLINE N make_##N(T x, T y) { return N{x, y}; }
#define CUEMU_VEC3(N, T) struct N { T x, y, z; }; \
  CUEMU_INLINE N make_##N(T x, T y, T z) { return N{x, y, z}; }
#define CUEMU_VEC4(N, T, A) struct __attribute__((aligned(A))) N { T x, y, z, w; }; \
  CUEMU_INLINE N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
CUEMU_VEC2(float2, float, 8) CUEMU_VEC3(float3, float) CUEMU_VEC4(float4, float, 16)
CUEMU_VEC2(double2, double, 16)
CUEMU_VEC2(int2, int, 8) CUEMU_VEC3(int3, int) CUEMU_VEC4(int4, int, 16)
CUEMU_VEC2(uint2, unsigned int, 8) CUEMU_VEC4(uint4, unsigned int, 16)
CUEMU_VEC2(short2, short, 4) CUEMU_VEC4(short4, short, 8)
CUEMU_VEC2(char2, signed char, 2) CUEMU_VEC4(char4, signed char, 4)
CUEMU_VEC2(uchar2, unsigned char, 2) CUEMU_VEC4(uchar4, unsigned char, 4)
CUEMU_INLINE uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }
CUEMU_INLINE int __dp4a(char4 a, char4 b, int c) {
  return c + a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// ---------------------------------------------------------------------------------------------------------------------
// Half precision (cuda_fp16.h). Arithmetic is done in float and rounded once, which gives the correctly rounded
// half result for + - * / (float has more than 2*11+2 bits), i.e. what the GPU computes.
// ---------------------------------------------------------------------------------------------------------------------
CUEMU_INLINE uint16_t cuemu_f2h_bits(float f) {
  uint32_t x; memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (absx < 0x38800000u) {                                     // subnormal half (or zero)
    float a; memcpy(&a, &absx, 4);
    return (uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f));  // 2^24 = 1 / smallest subnormal
  }
  uint32_t mant = absx & 0x7fffffu, exp = (absx >> 23) - 112u;
  uint32_t h = (exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1u;  // round to nearest even
  return (uint16_t)(sign | h);
}
CUEMU_INLINE float cuemu_h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) { float f = (float)mant * 5.9604644775390625e-08f; return sign ? -f : f; }
  if (exp == 31) x = sign | 0x7f800000u | (mant << 13);
  else x = sign | ((exp + 112u) << 23) | (mant << 13);
  float f; memcpy(&f, &x, 4); return f;
}
struct __half {
  uint16_t bits_;
  __half() = default;
  __half(float f) : bits_(cuemu_f2h_bits(f)) {}
  __half(double f) : bits_(cuemu_f2h_bits((float)f)) {}
  __half(int i) : bits_(cuemu_f2h_bits((float)i)) {}
  operator float() const { return cuemu_h2f(bits_); }
};
typedef __half half;
struct __attribute__((aligned(4))) __half2 { __half x, y; };
typedef __half2 half2;
CUEMU_INLINE __half __float2half(float f) { return __half(f); }
CUEMU_INLINE __half __float2half_rn(float f) { return __half(f); }
CUEMU_INLINE float __half2float(__half h) { return (float)h; }
CUEMU_INLINE __half __int2half_rn(int i) { return __half((float)i); }
CUEMU_INLINE int __half2int_rn(__half h) { return (int)nearbyintf((float)h); }
CUEMU_INLINE unsigned short __half_as_ushort(__half h) { return h.bits_; }
CUEMU_INLINE __half __ushort_as_half(unsigned short b) { __half h; h.bits_ = b; return h; }
CUEMU_INLINE __half __hadd(__half a, __half b) { return __half((float)a + (float)b); }
CUEMU_INLINE __half __hsub(__half a, __half b) { return __half((float)a - (float)b); }
CUEMU_INLINE __half __hmul(__half a, __half b) { return __half((float)a * (float)b); }
CUEMU_INLINE __half __hdiv(__half a, __half b) { return __half((float)a / (float)b); }
CUEMU_INLINE __half __hfma(__half a, __half b, __half c) { return __half(fmaf((float)a, (float)b, (float)c)); }
CUEMU_INLINE __half __hneg(__half a) { __half h = a; h.bits_ ^= 0x8000u; return h; }
CUEMU_INLINE __half __habs(__half a) { __half h = a; h.bits_ &= 0x7fffu; return h; }
CUEMU_INLINE __half __hmax(__half a, __half b) { return (float)a < (float)b ? b : a; }
CUEMU_INLINE __half __hmin(__half a, __half b) { return (float)b < (float)a ? b : a; }
CUEMU_INLINE bool __heq(__half a, __half b) { return (float)a == (float)b; }
CUEMU_INLINE bool __hlt(__half a, __half b) { return (float)a < (float)b; }
CUEMU_INLINE bool __hgt(__half a, __half b) { return (float)a > (float)b; }
CUEMU_INLINE bool __hle(__half a, __half b) { return (float)a <= (float)b; }
CUEMU_INLINE bool __hge(__half a, __half b) { return (float)a >= (float)b; }
CUEMU_INLINE __half hexp(__half a) { return __half(expf((float)a)); }
CUEMU_INLINE __half hsqrt(__half a) { return __half(sqrtf((float)a)); }
CUEMU_INLINE __half operator+(__half a, __half b) { return __hadd(a, b); }
CUEMU_INLINE __half operator-(__half a, __half b) { return __hsub(a, b); }
CUEMU_INLINE __half operator*(__half a, __half b) { return __hmul(a, b); }
CUEMU_INLINE __half operator/(__half a, __half b) { return __hdiv(a, b); }
CUEMU_INLINE __half operator-(__half a) { return __hneg(a); }
CUEMU_INLINE __half& operator+=(__half& a, __half b) { return a = __hadd(a, b); }
CUEMU_INLINE __half& operator-=(__half& a, __half b) { return a = __hsub(a, b); }
CUEMU_INLINE __half& operator*=(__half& a, __half b) { return a = __hmul(a, b); }
CUEMU_INLINE __half& operator/=(__half& a, __half b) { return a = __hdiv(a, b); }
CUEMU_INLINE bool operator==(__half a, __half b) { return __heq(a, b); }
CUEMU_INLINE bool operator!=(__half a, __half b) { return !__heq(a, b); }
CUEMU_INLINE bool operator<(__half a, __half b) { return __hlt(a, b); }
CUEMU_INLINE bool operator>(__half a, __half b) { return __hgt(a, b); }
CUEMU_INLINE bool operator<=(__half a, __half b) { return __hle(a, b); }
CUEMU_INLINE bool operator>=(__half a, __half b) { return __hge(a, b); }
CUEMU_INLINE __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
CUEMU_INLINE __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
CUEMU_INLINE __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
CUEMU_INLINE float2 __half22float2(__half2 h) { return float2{(float)h.x, (float)h.y}; }
CUEMU_INLINE __half __low2half(__half2 h) { return h.x; }
CUEMU_INLINE __half __high2half(__half2 h) { return h.y; }
CUEMU_INLINE float __low2float(__half2 h) { return (float)h.x; }
CUEMU_INLINE float __high2float(__half2 h) { return (float)h.y; }
CUEMU_INLINE __half2 __hadd2(__half2 a, __half2 b) { return __half2{__hadd(a.x, b.x), __hadd(a.y, b.y)}; }
CUEMU_INLINE __half2 __hmul2(__half2 a, __half2 b) { return __half2{__hmul(a.x, b.x), __hmul(a.y, b.y)}; }
CUEMU_INLINE __half2 __hfma2(__half2 a, __half2 b, __half2 c) { return __half2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)}; }

// ---------------------------------------------------------------------------------------------------------------------
// Kernel entry points: the generated wrapper calls a kernel with arguments taken from an array of pointers.
// ---------------------------------------------------------------------------------------------------------------------
// Not instrumented: reading the argument values is not a kernel memory access. (GCC does not inline the instrumented
// kernel into these, so the kernel's own accesses stay checked.)
#define CUEMU_UNCHECKED __attribute__((no_sanitize_thread))
template <class... P, size_t... I>
CUEMU_UNCHECKED static inline void cuemu_invoke_impl(void (*f)(P...), void** a, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<P>*>(a[I])...);
}
template <class... P>
CUEMU_UNCHECKED static inline void cuemu_invoke(void (*f)(P...), void** a) {
  cuemu_invoke_impl(f, a, std::index_sequence_for<P...>{});
}
#endif  // __cplusplus

// =====================================================================================================================
// Runtime: compiled once per machine (-DCUEMU_RUNTIME) into an object file linked into every kernel library.
// =====================================================================================================================
#ifdef CUEMU_RUNTIME
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__x86_64__) && (defined(__linux__) || defined(__FreeBSD__))
#define CUEMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#define CUEMU_API extern "C" __attribute__((visibility("default")))
#define CUEMU_MAX_THREADS 1024
#define CUEMU_MAX_DYN_SMEM (256 * 1024)
#define CUEMU_SMEM_GUARD 4096  // bytes after the static __shared__ arrays where any access is an overrun
// Global-memory race checks keep 20 bytes per byte of the arguments (reserved, committed where written): above this
// arena size (about 200 MB of arguments) the race check covers shared memory only.
#define CUEMU_MAX_RACE_ARENA ((size_t)512 << 20)
#define CUEMU_STACK_BYTES (256 * 1024)

extern "C" {
uint3 cuemu_threadIdx, cuemu_blockIdx;
dim3 cuemu_blockDim, cuemu_gridDim;
__attribute__((aligned(64))) unsigned char cuemu_dyn_smem[CUEMU_MAX_DYN_SMEM];
// Linked after the kernel, so it ends the static shared section: nothing lives here, and an access to it is an
// overrun of the kernel's last __shared__ array.
__attribute__((section("cuemu_shared"), aligned(16))) unsigned char cuemu_smem_guard[CUEMU_SMEM_GUARD];
extern char __start_cuemu_shared[] __attribute__((weak, visibility("hidden")));
extern char __stop_cuemu_shared[] __attribute__((weak, visibility("hidden")));
}

enum { ST_READY, ST_BARRIER, ST_WARPSYNC, ST_DONE };
enum { F_BOUNDS = 1, F_RACE = 2, F_COUNT = 4, F_INSTR = 8 };
enum { S_OK = 0, S_OOB = 1, S_RACE = 2, S_DIVERGE = 3, S_CONFIG = 4, S_GLOBAL_RACE = 5, S_UNINIT = 6 };
enum { A_LOAD = 0, A_STORE = 1, A_ATOMIC = 2 };

// Filled for Python (mirrored by ctypes in cpu_tier.py). PCs are offsets into the kernel library, for addr2line.
struct CuemuInfo {
  int64_t status;
  int64_t bytes_loaded, bytes_stored, atomics, shared_loaded, shared_stored, barriers;
  int64_t is_store, arg, offset, size;          // the faulting access: argument index (-1 none), byte offset
  uint64_t pc, pc2, sym;                         // kernel PCs (current, conflicting access); shared address
  int64_t tid[3], bid[3], tid2[3], is_store2;
  int64_t bid2[3];                               // the other thread's block (global-memory races)
};

struct Fiber {
  void* sp;
  uint3 tid;
  int linear, state;
  void* sync_pc;
#ifndef CUEMU_ASM_SWITCH
  ucontext_t ctx;
#endif
};
struct Warp { uint64_t val[2][32]; unsigned int active[2]; int parity; uint32_t epoch; };
struct Region { char *lo, *hi; };
// Per byte of shared memory: who last wrote / read it, in which barrier interval, and the warp's sync count then;
// a second reader other than the last (o_*), so a race report can name the other party; the block that last wrote it.
struct Shadow {
  uint32_t w_epoch, r_epoch, w_wepoch, r_wepoch, w_block;
  int16_t w_tid, r_tid, o_tid;
  uint8_t r_multi, pad;
  void *w_pc, *r_pc, *o_pc;
};
// Per byte of a global-memory argument: the last plain (non-atomic) write of this launch.
struct GShadow { uint32_t block, epoch, wepoch, pc; int32_t tid; };

static Fiber g_fibers[CUEMU_MAX_THREADS];
static Warp g_warps[CUEMU_MAX_THREADS / 32];
static Fiber* g_cur;
static void* g_sched_sp;
#ifndef CUEMU_ASM_SWITCH
static ucontext_t g_sched_ctx;
#endif
static char* g_stacks;
static int g_nthreads;
static void (*g_entry)(void**);
static void** g_argv;
static int g_flags, g_aborted;
static CuemuInfo* g_info;
static uint32_t g_block_epoch;
static Region g_args[64];
static int g_nargs;
static char *g_image_lo, *g_image_hi, *g_rw_lo, *g_rw_hi, *g_smem_lo, *g_smem_hi, *g_guard;
static size_t g_dyn_bytes;
static Shadow* g_shadow;
static GShadow* g_gshadow;          // over the argument arena, in race checks
static char* g_arena;
static uint32_t g_block_serial;     // 1, 2, ... for the blocks of a launch in the order they run
// The first read of unwritten shared memory, reported at the end of its barrier interval unless a race on it is
// reported first (with no __syncthreads(), a read can run before the write it races with).
static struct { bool set; uint64_t pc, sym; int64_t tid[3], bid[3]; } g_uninit;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

// ---- context switch ---------------------------------------------------------------------------------------------
#ifdef CUEMU_ASM_SWITCH
extern "C" void cuemu_switch(void** save_sp, void* new_sp);
extern "C" void cuemu_fiber_trampoline(void);
// Saves the callee-saved registers and the SSE/x87 control words on the current stack, swaps stack pointers.
asm(R"(
  .text
  .p2align 4
  .globl cuemu_switch
  .hidden cuemu_switch
  .type cuemu_switch,@function
cuemu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuemu_switch, .-cuemu_switch
  .globl cuemu_fiber_trampoline
  .hidden cuemu_fiber_trampoline
  .type cuemu_fiber_trampoline,@function
cuemu_fiber_trampoline:
  movq %rbx, %rdi
  call cuemu_fiber_main
  ud2
  .size cuemu_fiber_trampoline, .-cuemu_fiber_trampoline
)");
#endif

extern "C" __attribute__((visibility("hidden"), used)) void cuemu_fiber_main(Fiber* f) {
  for (;;) {  // a fiber is reused for every block; one pass = one CUDA thread of one block
    g_entry(g_argv);
    f->state = ST_DONE;
#ifdef CUEMU_ASM_SWITCH
    cuemu_switch(&f->sp, g_sched_sp);
#else
    swapcontext(&f->ctx, &g_sched_ctx);
#endif
  }
}

#ifndef CUEMU_ASM_SWITCH
static void cuemu_fiber_start(int i) { cuemu_fiber_main(&g_fibers[i]); }
#endif

static void fiber_init(int i) {
  Fiber* f = &g_fibers[i];
  char* stack = g_stacks + (size_t)i * CUEMU_STACK_BYTES;
#ifdef CUEMU_ASM_SWITCH
  uint64_t* top = (uint64_t*)(((uintptr_t)(stack + CUEMU_STACK_BYTES)) & ~(uintptr_t)15);
  uint64_t* sp = top - 3;                 // return address slot: after `ret`, rsp is 16-byte aligned
  sp[0] = (uint64_t)&cuemu_fiber_trampoline;
  sp -= 6;                                 // rbp rbx r12..r15 (rbx carries the fiber pointer)
  for (int r = 0; r < 6; ++r) sp[r] = 0;
  sp[4] = (uint64_t)f;                     // popped into rbx
  sp -= 1;
  sp[0] = 0x1f80u | ((uint64_t)0x037fu << 32);  // default MXCSR and x87 control word
  f->sp = sp;
#else
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = stack;
  f->ctx.uc_stack.ss_size = CUEMU_STACK_BYTES;
  f->ctx.uc_link = nullptr;
  makecontext(&f->ctx, (void (*)())cuemu_fiber_start, 1, i);
#endif
}

static void resume(Fiber* f) {
  g_cur = f;
  cuemu_threadIdx = f->tid;
#ifdef CUEMU_ASM_SWITCH
  cuemu_switch(&g_sched_sp, f->sp);
#else
  swapcontext(&g_sched_ctx, &f->ctx);
#endif
}

static void yield_to_scheduler(int state) {
  Fiber* f = g_cur;
  f->state = state;
#ifdef CUEMU_ASM_SWITCH
  cuemu_switch(&f->sp, g_sched_sp);
#else
  swapcontext(&f->ctx, &g_sched_ctx);
#endif
}

// ---- synchronisation primitives called by kernels ---------------------------------------------------------------
extern "C" void cuemu_syncthreads(void) {
  g_cur->sync_pc = __builtin_return_address(0);
  yield_to_scheduler(ST_BARRIER);
}
extern "C" unsigned int cuemu_lane_id(void) { return (unsigned int)g_cur->linear & 31u; }

extern "C" uint64_t cuemu_warp_exchange(uint64_t value, int src_lane, unsigned int* active_mask) {
  Fiber* f = g_cur;
  Warp* w = &g_warps[f->linear >> 5];
  w->val[w->parity][f->linear & 31] = value;
  f->sync_pc = __builtin_return_address(0);
  yield_to_scheduler(ST_WARPSYNC);
  int done = w->parity ^ 1;  // the scheduler flipped the parity when the last lane arrived
  if (active_mask) *active_mask = w->active[done];
  return w->val[done][src_lane & 31];
}
extern "C" unsigned int cuemu_warp_ballot(int predicate, unsigned int* active_mask) {
  unsigned int active = 0, ballot = 0;
  cuemu_warp_exchange(predicate != 0, 0, &active);
  Warp* w = &g_warps[g_cur->linear >> 5];
  int done = w->parity ^ 1;
  for (int l = 0; l < 32; ++l)
    if ((active >> l) & 1u) ballot |= (unsigned int)(w->val[done][l] != 0) << l;
  if (active_mask) *active_mask = active;
  return ballot;
}

// ---- block scheduler ------------------------------------------------------------------------------------------
static uint64_t lib_offset(void* pc) { return (uint64_t)((char*)pc - g_image_lo); }

static int fail_divergence(Fiber* a, Fiber* b) {
  g_info->status = S_DIVERGE;
  g_info->pc = lib_offset(a->sync_pc);
  g_info->pc2 = lib_offset(b->sync_pc);
  g_info->tid[0] = a->tid.x; g_info->tid[1] = a->tid.y; g_info->tid[2] = a->tid.z;
  g_info->tid2[0] = b->tid.x; g_info->tid2[1] = b->tid.y; g_info->tid2[2] = b->tid.z;
  return -1;
}

// Runs the lanes of one warp until every live lane waits at __syncthreads or has finished.
static int run_warp(int w) {
  int lo = w * 32, hi = lo + 32 < g_nthreads ? lo + 32 : g_nthreads;
  for (;;) {
    Fiber *at_warp = nullptr, *at_block = nullptr;
    unsigned int mask = 0;
    for (int i = lo; i < hi; ++i) {
      Fiber* f = &g_fibers[i];
      if (f->state == ST_READY) resume(f);
      if (g_aborted) return -1;
      if (f->state == ST_WARPSYNC) { at_warp = f; mask |= 1u << (i - lo); }
      if (f->state == ST_BARRIER) at_block = f;
    }
    if (!at_warp) return 0;
    if (at_block) return fail_divergence(at_warp, at_block);
    Warp* wp = &g_warps[w];
    wp->active[wp->parity] = mask;
    wp->parity ^= 1;
    wp->epoch++;
    for (int i = lo; i < hi; ++i)
      if (g_fibers[i].state == ST_WARPSYNC) g_fibers[i].state = ST_READY;
  }
}

static int report_uninit(void) {
  g_info->status = S_UNINIT;
  g_info->pc = g_uninit.pc;
  g_info->sym = g_uninit.sym;
  memcpy(g_info->tid, g_uninit.tid, sizeof g_uninit.tid);
  memcpy(g_info->bid, g_uninit.bid, sizeof g_uninit.bid);
  return -1;
}

static int run_block(void) {
  int nwarps = (g_nthreads + 31) / 32;
  for (int i = 0; i < g_nthreads; ++i) g_fibers[i].state = ST_READY;
  g_block_epoch++;
  for (;;) {
    for (int w = 0; w < nwarps; ++w)
      if (run_warp(w)) return -1;
    if (g_uninit.set) return report_uninit();
    int waiting = 0;
    for (int i = 0; i < g_nthreads; ++i)
      if (g_fibers[i].state == ST_BARRIER) { g_fibers[i].state = ST_READY; waiting++; }
    if (!waiting) return 0;
    g_block_epoch++;  // a new barrier interval: shared accesses before it are ordered before those after it
    g_info->barriers++;
  }
}

// ---- check-mode hooks ------------------------------------------------------------------------------------------
static void set_thread(int64_t* dst, const uint3& t) { dst[0] = t.x; dst[1] = t.y; dst[2] = t.z; }

static void abort_launch(int status, void* pc) {
  g_info->status = status;
  g_info->pc = lib_offset(pc);
  set_thread(g_info->tid, g_cur->tid);
  set_thread(g_info->bid, cuemu_blockIdx);
  g_aborted = 1;
  yield_to_scheduler(ST_DONE);  // never resumed: the launch stops here, before the bad access happens
}

static void report_oob(char* p, size_t size, int kind, void* pc) {
  int best = -1;
  int64_t best_dist = INT64_MAX;
  for (int i = 0; i < g_nargs; ++i) {  // attribute the address to the nearest argument
    int64_t d = p < g_args[i].lo ? g_args[i].lo - p : p - g_args[i].hi;
    if (d < best_dist) { best_dist = d; best = i; }
  }
  g_info->is_store = (kind & A_ATOMIC) ? 2 : (kind & A_STORE) != 0;  // 2: an atomic read-modify-write
  g_info->arg = best;
  g_info->offset = best >= 0 ? (int64_t)(p - g_args[best].lo) : (int64_t)(uintptr_t)p;
  g_info->size = (int64_t)size;
  abort_launch(S_OOB, pc);
}

static bool unsynced(int tid, uint32_t epoch, uint32_t wepoch, int me) {
  if (epoch != g_block_epoch || tid == me) return false;
  // lanes of one warp are ordered by a warp primitive executed since
  return !((tid >> 5) == (me >> 5) && g_warps[me >> 5].epoch != wepoch);
}

static void report_race(char* p, Shadow* s, bool store, bool prev_store, void* pc) {
  // the other party: the writer, or a reader that is not this thread (the last one, else the one before it)
  bool last = prev_store || s->r_tid != g_cur->linear;
  int other = prev_store ? s->w_tid : (last ? s->r_tid : s->o_tid);
  g_info->is_store = store;
  g_info->is_store2 = prev_store;
  g_info->pc2 = lib_offset(prev_store ? s->w_pc : (last ? s->r_pc : s->o_pc));
  g_info->sym = lib_offset(p);
  uint3 t2 = {other % cuemu_blockDim.x, (other / cuemu_blockDim.x) % cuemu_blockDim.y,
              other / (cuemu_blockDim.x * cuemu_blockDim.y)};
  set_thread(g_info->tid2, t2);
  abort_launch(S_RACE, pc);
}

static void check_race(char* p, size_t size, bool store, void* pc) {
  int me = g_cur->linear;
  uint32_t wepoch = g_warps[me >> 5].epoch;
  for (size_t b = 0; b < size; ++b) {
    char* q = p + b;
    Shadow* s = &g_shadow[q - g_rw_lo];  // the shadow covers the library's whole writable segment
    if (unsynced(s->w_tid, s->w_epoch, s->w_wepoch, me)) report_race(q, s, store, true, pc);
    bool reader_conflict = s->r_epoch == g_block_epoch && (s->r_multi || unsynced(s->r_tid, s->r_epoch, s->r_wepoch, me));
    if (store) {
      if (reader_conflict) report_race(q, s, true, false, pc);
      s->w_tid = (int16_t)me; s->w_epoch = g_block_epoch; s->w_wepoch = wepoch; s->w_pc = pc;
    } else {
      s->r_multi = reader_conflict || (s->r_epoch == g_block_epoch && s->r_multi);
      if (s->r_epoch == g_block_epoch && s->r_tid != me) {  // keep the previous reader as the other one
        s->o_tid = s->r_tid; s->o_pc = s->r_pc;
      }
      s->r_tid = (int16_t)me; s->r_epoch = g_block_epoch; s->r_wepoch = wepoch; s->r_pc = pc;
    }
  }
}

static void set_linear(int64_t* dst, int64_t linear) {
  dst[0] = linear % cuemu_blockDim.x;
  dst[1] = (linear / cuemu_blockDim.x) % cuemu_blockDim.y;
  dst[2] = linear / ((int64_t)cuemu_blockDim.x * cuemu_blockDim.y);
}

static void report_global_race(char* p, GShadow* s, int arg, void* pc) {
  g_info->is_store = 0;
  g_info->is_store2 = 1;
  g_info->arg = arg;
  g_info->offset = p - g_args[arg].lo;
  g_info->pc2 = s->pc;
  set_linear(g_info->tid2, s->tid);
  int64_t serial = (int64_t)s->block - 1, gx = cuemu_gridDim.x, gy = cuemu_gridDim.y;  // blocks run x fastest
  g_info->bid2[0] = serial % gx; g_info->bid2[1] = (serial / gx) % gy; g_info->bid2[2] = serial / (gx * gy);
  abort_launch(S_GLOBAL_RACE, pc);
}

// A plain load of global memory that another thread wrote in this launch, with nothing ordering the two.
static void check_global(char* p, size_t size, bool store, int arg, void* pc) {
  int me = g_cur->linear;
  for (size_t b = 0; b < size; ++b) {
    GShadow* s = &g_gshadow[p + b - g_arena];
    if (store) {
      *s = GShadow{g_block_serial, g_block_epoch, g_warps[me >> 5].epoch, (uint32_t)lib_offset(pc), me};
    } else if (s->block && (s->block != g_block_serial || unsynced(s->tid, s->epoch, s->wepoch, me))) {
      report_global_race(p + b, s, arg, pc);
    }
  }
}

// Shared memory that no thread of this block has written is undefined: reading it is reported.
static void check_init(char* p, size_t size, int kind, void* pc) {
  for (size_t b = 0; b < size; ++b) {
    Shadow* s = &g_shadow[p + b - g_rw_lo];
    if (kind & A_STORE) {
      s->w_block = g_block_serial;
    } else if (s->w_block != g_block_serial && !g_uninit.set) {
      g_uninit.set = true;
      g_uninit.pc = lib_offset(pc);
      g_uninit.sym = lib_offset(p + b);
      set_thread(g_uninit.tid, g_cur->tid);
      set_thread(g_uninit.bid, cuemu_blockIdx);
    }
  }
}

static void on_access(void* addr, size_t size, int kind, void* pc) {
  char* p = (char*)addr;
  for (int i = 0; i < g_nargs; ++i) {
    if (p >= g_args[i].lo && p < g_args[i].hi) {
      if (p + size > g_args[i].hi) report_oob(p, size, kind, pc);
      if (g_gshadow && !(kind & A_ATOMIC)) check_global(p, size, (kind & A_STORE) != 0, i, pc);
      if (kind & A_ATOMIC) { if (!(kind & A_STORE)) g_info->atomics++; }
      else if (kind & A_STORE) g_info->bytes_stored += (int64_t)size;
      else g_info->bytes_loaded += (int64_t)size;
      return;
    }
  }
  bool in_static = p >= g_smem_lo && p < g_smem_hi;
  bool in_dyn = p >= (char*)cuemu_dyn_smem && p < (char*)cuemu_dyn_smem + CUEMU_MAX_DYN_SMEM;
  if ((g_flags & F_BOUNDS) && g_guard && p >= g_guard && p < g_guard + CUEMU_SMEM_GUARD) {
    g_info->is_store = (kind & A_ATOMIC) ? 2 : (kind & A_STORE) != 0;
    g_info->arg = -3;  // static shared memory
    g_info->offset = p - g_smem_lo;
    g_info->size = (int64_t)(g_smem_hi - g_smem_lo);
    abort_launch(S_OOB, pc);
  }
  if (in_static || in_dyn) {
    if (in_dyn && (size_t)(p - (char*)cuemu_dyn_smem) + size > g_dyn_bytes && (g_flags & F_BOUNDS)) {
      g_info->is_store = (kind & A_ATOMIC) ? 2 : (kind & A_STORE) != 0;
      g_info->arg = -2;  // dynamic shared memory
      g_info->offset = p - (char*)cuemu_dyn_smem;
      g_info->size = (int64_t)g_dyn_bytes;
      abort_launch(S_OOB, pc);
    }
    if (g_flags & F_RACE) check_init(p, size, kind, pc);
    if ((g_flags & F_RACE) && !(kind & A_ATOMIC)) check_race(p, size, (kind & A_STORE) != 0, pc);
    if (kind & A_STORE) g_info->shared_stored += (int64_t)size;
    else g_info->shared_loaded += (int64_t)size;
    return;
  }
  // GCC ignores the section attribute for statics of templates (and __device__ variables have none): any other
  // writable address of the library is race-checked too; reads of threadIdx & co. never conflict (only read).
  if (p >= g_rw_lo && p + size <= g_rw_hi) {
    if ((g_flags & F_RACE) && !(kind & A_ATOMIC)) check_race(p, size, (kind & A_STORE) != 0, pc);
    return;
  }
  if (p >= g_image_lo && p < g_image_hi) return;  // the library's constants
  if (p >= g_stacks && p < g_stacks + (size_t)CUEMU_MAX_THREADS * CUEMU_STACK_BYTES) return;  // locals
  if (g_flags & F_BOUNDS) report_oob(p, size, kind, pc);
}

extern "C" {
#define CUEMU_TSAN_RW(N)                                                                                      \
  CUEMU_API void __tsan_read##N(void* a) { on_access(a, N, A_LOAD, __builtin_return_address(0)); }            \
  CUEMU_API void __tsan_write##N(void* a) { on_access(a, N, A_STORE, __builtin_return_address(0)); }          \
  CUEMU_API void __tsan_unaligned_read##N(void* a) { on_access(a, N, A_LOAD, __builtin_return_address(0)); }  \
  CUEMU_API void __tsan_unaligned_write##N(void* a) { on_access(a, N, A_STORE, __builtin_return_address(0)); }\
  CUEMU_API void __tsan_volatile_read##N(void* a) { on_access(a, N, A_LOAD, __builtin_return_address(0)); }   \
  CUEMU_API void __tsan_volatile_write##N(void* a) { on_access(a, N, A_STORE, __builtin_return_address(0)); }
CUEMU_TSAN_RW(1) CUEMU_TSAN_RW(2) CUEMU_TSAN_RW(4) CUEMU_TSAN_RW(8) CUEMU_TSAN_RW(16)
#define CUEMU_TSAN_ATOMIC(N, T)                                                                               \
  CUEMU_API T __tsan_atomic##N##_load(const volatile T* a, int) {                                             \
    on_access((void*)a, N / 8, A_ATOMIC | A_LOAD, __builtin_return_address(0)); return *a; }                   \
  CUEMU_API void __tsan_atomic##N##_store(volatile T* a, T v, int) {                                          \
    on_access((void*)a, N / 8, A_ATOMIC | A_STORE, __builtin_return_address(0)); *a = v; }
CUEMU_TSAN_ATOMIC(8, uint8_t) CUEMU_TSAN_ATOMIC(16, uint16_t) CUEMU_TSAN_ATOMIC(32, uint32_t) CUEMU_TSAN_ATOMIC(64, uint64_t)
CUEMU_API void __tsan_read_range(void* a, size_t n) { on_access(a, n, A_LOAD, __builtin_return_address(0)); }
CUEMU_API void __tsan_write_range(void* a, size_t n) { on_access(a, n, A_STORE, __builtin_return_address(0)); }
CUEMU_API void __tsan_func_entry(void*) {}
CUEMU_API void __tsan_func_exit(void) {}
CUEMU_API void __tsan_init(void) {}
CUEMU_API void __tsan_vptr_update(void*, void*) {}
CUEMU_API void __tsan_vptr_read(void*) {}
}

// ---- launch ----------------------------------------------------------------------------------------------------
static int find_image(struct dl_phdr_info* info, size_t, void*) {
  char* base = (char*)info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    char *lo = base + ph.p_vaddr, *hi = lo + ph.p_memsz;
    if ((char*)&cuemu_threadIdx < lo || (char*)&cuemu_threadIdx >= hi) continue;
    g_image_lo = base;  // this is our library: record its extent and its writable segment
    for (int j = 0; j < info->dlpi_phnum; ++j) {
      const ElfW(Phdr)& seg = info->dlpi_phdr[j];
      if (seg.p_type != PT_LOAD) continue;
      char *s_lo = base + seg.p_vaddr, *s_hi = s_lo + seg.p_memsz;
      if (s_hi > g_image_hi) g_image_hi = s_hi;
      if (seg.p_flags & PF_W) {
        if (!g_rw_lo || s_lo < g_rw_lo) g_rw_lo = s_lo;
        if (s_hi > g_rw_hi) g_rw_hi = s_hi;
      }
    }
    return 1;
  }
  return 0;
}

static int setup_once(void) {
  if (g_stacks) return 0;
  void* m = mmap(nullptr, (size_t)CUEMU_MAX_THREADS * CUEMU_STACK_BYTES, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return -1;
  g_stacks = (char*)m;
  dl_iterate_phdr(find_image, nullptr);
  g_smem_lo = __start_cuemu_shared;
  g_smem_hi = __stop_cuemu_shared;
  uintptr_t guard_end = (uintptr_t)cuemu_smem_guard + CUEMU_SMEM_GUARD;
  __asm__("" : "+r"(guard_end));  // addresses of two objects: keep the compiler from folding the comparison
  if (guard_end == (uintptr_t)g_smem_hi) {  // else the linker put the guard elsewhere: no overrun check
    g_guard = (char*)cuemu_smem_guard;
    g_smem_hi = g_guard;
  }
  return 0;
}

// Copies array arguments into one arena with wide gaps between them, so an out-of-bounds address can be told apart
// from a valid address of a neighbouring argument.
static char* arena_in(void** argv, const int64_t* nbytes, int nargs, size_t* arena_size) {
  size_t total = 0;
  for (int i = 0; i < nargs; ++i)
    if (nbytes[i] >= 0) total += 2 * (((size_t)nbytes[i] + 4095) & ~(size_t)4095) + 65536;
  total += 65536;
  char* arena = (char*)mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arena == MAP_FAILED) return nullptr;
  size_t off = 65536;
  g_nargs = 0;
  for (int i = 0; i < nargs; ++i) {
    g_args[i].lo = g_args[i].hi = nullptr;
    if (nbytes[i] < 0) continue;
    char* dst = arena + off;
    memcpy(dst, *(void**)argv[i], (size_t)nbytes[i]);
    *(void**)argv[i] = dst;  // argv[i] points to a copy of the pointer owned by the caller
    g_args[i].lo = dst;
    g_args[i].hi = dst + nbytes[i];
    off += 2 * (((size_t)nbytes[i] + 4095) & ~(size_t)4095) + 65536;
  }
  g_nargs = nargs;
  *arena_size = total;
  return arena;
}

static void arena_out(void* const* host, const int64_t* nbytes, int nargs) {
  for (int i = 0; i < nargs; ++i)
    if (nbytes[i] > 0 && host[i]) memcpy(host[i], g_args[i].lo, (size_t)nbytes[i]);
}

static void run_grid(const unsigned* grid) {
  g_block_serial = 0;
  for (unsigned z = 0; z < grid[2] && !g_aborted; ++z)
    for (unsigned y = 0; y < grid[1] && !g_aborted; ++y)
      for (unsigned x = 0; x < grid[0] && !g_aborted; ++x) {
        cuemu_blockIdx = uint3{x, y, z};
        g_block_serial++;
        // Undefined at the start of every block: a kernel that reads before it writes sees NaN / -1, not zeros
        // or another block's values.
        if (g_smem_hi > g_smem_lo) memset(g_smem_lo, 0xFF, (size_t)(g_smem_hi - g_smem_lo));
        memset(cuemu_dyn_smem, 0xFF, g_dyn_bytes);
        if (run_block()) g_aborted = 1;
      }
}

// Launches entry over grid x block. argv[i] points to argument i's value (for arrays: a pointer variable the
// runtime may overwrite); nbytes[i] is the array's size in bytes, or -1 for a scalar; host[i] the caller's buffer.
CUEMU_API int cuemu_launch(void (*entry)(void**), void** argv, void* const* host, const int64_t* nbytes, int nargs,
                           const unsigned* grid, const unsigned* block, size_t dyn_smem, int flags, CuemuInfo* info) {
  pthread_mutex_lock(&g_lock);
  memset(info, 0, sizeof(*info));
  unsigned nthreads = block[0] * block[1] * block[2];
  if (setup_once() || nthreads == 0 || nthreads > CUEMU_MAX_THREADS || dyn_smem > CUEMU_MAX_DYN_SMEM || nargs > 64) {
    info->status = S_CONFIG;
    pthread_mutex_unlock(&g_lock);
    return S_CONFIG;
  }
  g_entry = entry; g_argv = argv; g_flags = flags; g_info = info; g_aborted = 0; g_uninit.set = false;
  g_nthreads = (int)nthreads; g_dyn_bytes = dyn_smem; g_nargs = 0;
  cuemu_blockDim = dim3(block[0], block[1], block[2]);
  cuemu_gridDim = dim3(grid[0], grid[1], grid[2]);
  for (int i = 0; i < g_nthreads; ++i) {  // re-initialised every launch: an aborted launch leaves fibers mid-kernel
    unsigned x = i % block[0], y = (i / block[0]) % block[1], z = i / (block[0] * block[1]);
    g_fibers[i].tid = uint3{x, y, z};
    g_fibers[i].linear = i;
    fiber_init(i);
  }
  for (int w = 0; w < (g_nthreads + 31) / 32; ++w) g_warps[w].parity = 0;
  char* arena = nullptr;
  size_t arena_size = 0;
  if (flags & F_INSTR) {
    arena = arena_in(argv, nbytes, nargs, &arena_size);
    g_shadow = (flags & F_RACE) ? (Shadow*)calloc((size_t)(g_rw_hi - g_rw_lo) + 1, sizeof(Shadow)) : nullptr;
    g_arena = arena;
    if ((flags & F_RACE) && arena && arena_size <= CUEMU_MAX_RACE_ARENA) {
      void* m = mmap(nullptr, arena_size * sizeof(GShadow), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      g_gshadow = m == MAP_FAILED ? nullptr : (GShadow*)m;
    }
  }
  run_grid(grid);
  if (arena) {
    arena_out(host, nbytes, nargs);
    munmap(arena, arena_size);
    free(g_shadow);
    g_shadow = nullptr;
    if (g_gshadow) munmap(g_gshadow, arena_size * sizeof(GShadow));
    g_gshadow = nullptr;
    g_arena = nullptr;
  }
  g_nargs = 0;
  int status = (int)info->status;
  pthread_mutex_unlock(&g_lock);
  return status;
}
#endif  // CUEMU_RUNTIME
#endif  // TINYML_CUDA_EMU_H
