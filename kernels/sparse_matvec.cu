// sparse_matvec.cu -- y = W a for a sparse W (rows, cols) float32 and a dense activation vector a (cols,) float32.
//
// Versions:
// spmv_v1: CSR, one thread per row: y[r] = sum over the row's stored weights of vals[p] * a[col_idx[p]]. Every stored
//          weight and its activation are loaded whatever the activation's value: no zero skipping. No atomics, one
//          store per row.
// spmv_v2: CSC with an activation queue, as in the EIE accelerator (Han et al., ISCA 2016): the host compacts the
//          non-zero activations into (column, value) pairs; one thread per queued activation walks its column and
//          atomically adds vals[p] * a_j into y[row_idx[p]]. Zero activations cost nothing: their columns' weights
//          are never loaded. One atomic per visited weight; the caller zeroes y.
//
// Tuning: the launcher picks the block size (any positive value; BLOCK is not used by the kernels).

extern "C" __global__ void spmv_v1(const int* __restrict__ row_ptr, const int* __restrict__ col_idx,
                                   const float* __restrict__ vals, const float* __restrict__ a,
                                   float* __restrict__ y, int rows) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows)
    return;
  float acc = 0.0f;
  for (int p = row_ptr[r]; p < row_ptr[r + 1]; ++p)
    acc += vals[p] * a[col_idx[p]];
  y[r] = acc;
}

extern "C" __global__ void spmv_v2(const int* __restrict__ col_ptr, const int* __restrict__ row_idx,
                                   const float* __restrict__ vals, const int* __restrict__ nz_cols,
                                   const float* __restrict__ nz_vals, int n_nz, float* __restrict__ y) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n_nz)
    return;
  const int j = nz_cols[t];
  const float a_j = nz_vals[t];
  const int end = col_ptr[j + 1];
  for (int p = col_ptr[j]; p < end; ++p)
    atomicAdd(&y[row_idx[p]], vals[p] * a_j);
}
