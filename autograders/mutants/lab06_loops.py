"""Plausible wrong answers for Lab 06's C exercises: each must lose points (tests/test_labs.py runs them). Most are
(old, new) edits of the reference answer (autograders/mutation.py's `mutate`); a string replaces the whole answer."""

MUTANTS = {
    "reordered_src": {
        "(correct but slow) the textbook order i, j, p": """
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int p = 0; p < k; ++p) sum += a[i * k + p] * b[p * n + j];
      c[i * n + j] = sum;
    }
""",
        "c not set to zero first": ("for (int j = 0; j < n; ++j) ci[j] = 0.0f;", ""),
        "a read by column (as if transposed)": ("a[(long)i * k + p]", "a[(long)p * m + i]"),
        "the last p left out": ("for (int p = 0; p < k; ++p)", "for (int p = 0; p + 1 < k; ++p)"),
    },
    "tiled_src": {
        "the last, shorter block of p skipped": ("for (int p0 = 0; p0 < k; p0 += TILE)",
                                                 "for (int p0 = 0; p0 + TILE <= k; p0 += TILE)"),
        "a block runs past k (no imin)": ("p < imin(p0 + TILE, k)", "p < p0 + TILE"),
        "c set to zero at every block": ("      float* ci = c + (long)i * n;\n",
                                         "      float* ci = c + (long)i * n;\n      for (int j = 0; j < n; ++j) ci[j] = 0.0f;\n"),
        "the block's end measured against m": ("p < imin(p0 + TILE, k)", "p < imin(p0 + TILE, m)"),
        "blocks stepped by one (each p added TILE times)": ("p0 += TILE)", "++p0)"),
    },
    "simd_src": {
        "b's row taken from column 0 (j0 left out)": (
            "const f8 b0 = load8(b + (long)p * n + j0), b1 = load8(b + (long)p * n + j0 + 8);",
            "const f8 b0 = load8(b + (long)p * n), b1 = load8(b + (long)p * n + 8);"),
        "the second vector loads the first's columns": (
            "b1 = load8(b + (long)p * n + j0 + 8)", "b1 = load8(b + (long)p * n + j0)"),
        "a's element of row 0 broadcast to every row": (
            "a[(long)(i0 + r) * k + p]", "a[(long)i0 * k + p]"),
        "c stored with += (c holds NaN, or old values)": [
            ("store8(c + (long)(i0 + r) * n + j0, acc[r][0]);",
             "store8(c + (long)(i0 + r) * n + j0, load8(c + (long)(i0 + r) * n + j0) + acc[r][0]);"),
            ("store8(c + (long)(i0 + r) * n + j0 + 8, acc[r][1]);",
             "store8(c + (long)(i0 + r) * n + j0 + 8, load8(c + (long)(i0 + r) * n + j0 + 8) + acc[r][1]);")],
        "rows of c stored with stride k": [
            ("store8(c + (long)(i0 + r) * n + j0, acc[r][0]);", "store8(c + (long)(i0 + r) * k + j0, acc[r][0]);"),
            ("store8(c + (long)(i0 + r) * n + j0 + 8, acc[r][1]);", "store8(c + (long)(i0 + r) * k + j0 + 8, acc[r][1]);")],
    },
    "threads_src": {
        "`parallel` without `for`: every thread runs every block": (
            "#pragma omp parallel for schedule(static)", "#pragma omp parallel"),
        "no pragma: one thread does everything": ("#pragma omp parallel for schedule(static)", ""),
        "the last column panel left out": ("for (int j0 = 0; j0 < j_end; j0 += COLS)",
                                           "for (int j0 = 0; j0 + COLS < j_end; j0 += COLS)"),
        "row blocks stepped by COLS": ("for (int i0 = 0; i0 < i_end; i0 += ROWS)",
                                       "for (int i0 = 0; i0 < i_end; i0 += COLS)"),
    },
    "gemv_naive_src": {
        "nibbles swapped (high nibble = even column)": (
            "(c % 2 == 0) ? (byte & 0x0F) : (byte >> 4)", "(c % 2 == 0) ? (byte >> 4) : (byte & 0x0F)"),
        "the zero point ignored": ("sum += (q - zero[g]) * scale[g] * x[c];", "sum += q * scale[g] * x[c];"),
        "one byte per code": ("w[(long)r * (k / 2) + c / 2]", "w[(long)r * (k / 2) + c % (k / 2)]"),
        "the group counted in bytes": ("const long g = (long)r * groups + c / group;",
                                       "const long g = (long)r * groups + c / 2 / group;"),
        "the sign of the high nibble (int8_t)": ("(byte >> 4)", "((int8_t)byte >> 4)"),
    },
    "gemv_fast_src": {
        "the zero point's correction left out": ("zeros += scale[at] * zero[at] * xsum[g];", ""),
        "the zero point's correction added": ("y[r] = hsum(total) - zeros;", "y[r] = hsum(total) + zeros;"),
        "x not split: even and odd columns read as consecutive": (
            "for (int j = 0; j < half; ++j) { xe[j] = x[2 * j]; xo[j] = x[2 * j + 1]; }",
            "for (int j = 0; j < half; ++j) { xe[j] = x[j]; xo[j] = x[half + j]; }"),
        "each group's sum of x over the group's first half": (
            "for (int c = g * group; c < (g + 1) * group; ++c) s += x[c];",
            "for (int c = g * group; c < g * group + group / 2; ++c) s += x[c];"),
        "nibbles swapped": [("lo * e + hi * o", "hi * e + lo * o")],
        "the rows' byte offset in codes (k, not k / 2)": ("const uint8_t* wr = w + (long)r * half;",
                                                           "const uint8_t* wr = w + (long)r * k;"),
        "(correct but slow) the naive loop": """
  const int groups = k / group;
  for (int r = 0; r < n; ++r) {
    float sum = 0.0f;
    for (int c = 0; c < k; ++c) {
      const uint8_t byte = w[(long)r * (k / 2) + c / 2];
      const int q = (c % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
      const long g = (long)r * groups + c / group;
      sum += (q - zero[g]) * scale[g] * x[c];
    }
    y[r] = sum;
  }
""",
    },
}
