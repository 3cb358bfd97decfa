// The output layer and its loss (rnnlm.engine_ops.output's SoftmaxNLL) on a CPU: oneDNN's sgemm for the
// three products with the vocabulary and one loop per row for the softmax, chunk by chunk so that a
// chunk's logits stay in the last-level cache.  Why not XLA's own dots: oneDNN's sgemm ran
// these shapes at 400–490 GFLOP/s against 330–455 for XLA's, and it adds each chunk's part of dW to the
// sum in the product (beta = 1) where XLA made a separate pass over dW per chunk (2.4 ms of a 45 ms step,
// 2048·128·8000, 2 vCPUs).
//
// Layouts, float32, C order.  N rows, K features, C classes.  h (N, K);  the weights either as rows, Wr
// (C, K) (rnnlm's V, whose transpose is Wo), or as Wo (K, C) (a tied embedding): `by_rows` says which,
// and dW comes back in the same layout;  c (C,);  y (N,) int32 in [0, C);  w (N,) row weights.  Outputs:
// nll (N,) = log Σ exp(z) − z_y with z = h·Wo + c;  with grads, p = w·(softmax(z) − onehot(y)) per row,
// dh = p·Woᵀ (N, K), dW = hᵀ·p in the weights' layout, dc = Σ_rows p (C,).  bf16 != 0: the products take
// h, the weights and p rounded to bfloat16 (to nearest, ties to even, as rnnlm's bf16 graphs round a
// product's operands) and accumulate in float32 (oneDNN's gemm_bf16bf16f32: 2.1× sgemm's rate here, with
// avx512_bf16; with AMX its matmul primitive, amx_gemm below); everything else stays float32.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <tuple>

#include "bf16.h"
#include "worker.h"

// glibc's vector expf (libmvec), which math.h declares only under -ffast-math: the softmax's exp runs
// 16 lanes at a time with AVX-512, without fast-math's other assumptions for the rest of the file.
extern "C" float expf(float) __attribute__((simd("notinbranch")));

namespace {

using rnnlm::amx;
using rnnlm::bf16_t;
using rnnlm::gemm;
using rnnlm::guarded;
using rnnlm::to_bf16;

// The bf16 products' operands: the weights, and room for one chunk of h and of p (none at float32).
struct Operands {
  std::unique_ptr<bf16_t[]> Wb, hb, pb;
  Operands(const float* W, int64_t C, int64_t K, int64_t rows, bool bf16) {
    if (!bf16) return;
    Wb.reset(new bf16_t[C * K]);
    hb.reset(new bf16_t[rows * K]);
    pb.reset(new bf16_t[rows * C]);
    to_bf16(W, Wb.get(), C * K);
  }
  bool bf16() const { return Wb != nullptr; }
};

// Every target in [0, C): checked before anything is computed or changed.
void check_targets(const int32_t* y, int64_t N, int64_t C) {
  for (int64_t i = 0; i < N; ++i)
    if (y[i] < 0 || y[i] >= C) throw std::out_of_range("target " + std::to_string(y[i]) + " outside the classes");
}

// One row of logits without the bias, z (C,), in place: returns the row's nll; with grads (dc not null)
// leaves p in z, adds p to dc and, given pb, writes p rounded to bfloat16 there too.
float row(float* z, const float* c, int64_t C, int32_t y, float w, float* dc, bf16_t* pb) {
  float m = z[0] + c[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < C; ++j) {  // (with std::max, GCC 12 left this loop scalar: 4× slower)
    const float v = z[j] + c[j];
    z[j] = v;
    m = v > m ? v : m;
  }
  const float zy = z[y];
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < C; ++j) {
    const float e = expf(z[j] - m);
    z[j] = e;
    s += e;
  }
  if (dc != nullptr) {
    const float r = w / s;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) {
      z[j] *= r;
      dc[j] += z[j];
    }
    z[y] -= w;
    dc[y] -= w;
    if (pb != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) pb[j] = to_bf16(z[j]);
    }
  }
  return std::log(s) + m - zy;
}

void softmax_nll(int64_t N, int64_t K, int64_t C, int64_t rows, int by_rows, int bf16, const float* h,
                 const float* W, const float* c, const int32_t* y, const float* w, float* nll, float* dh, float* dW,
                 float* dc) {
  const bool grads = dh != nullptr;
  check_targets(y, N, C);
  rows = std::max<int64_t>(1, std::min(rows, N));
  const int threads = omp_get_max_threads();
  std::unique_ptr<float[]> z(new float[rows * C]);
  std::unique_ptr<float[]> dcs(new float[grads ? threads * C : 1]());  // each thread's part of dc
  if (grads && N == 0) std::fill(dW, dW + K * C, 0.0f);
  Operands op(W, C, K, rows, bf16 != 0 && N > 0);
  // Wo = Wrᵀ: the logits' product reads Wr transposed, dh's reads it as it is; dW = hᵀ·p is (K, C), or
  // pᵀ·h (C, K) in the rows' layout
  const char t_logits = by_rows ? 'T' : 'N', t_dh = by_rows ? 'N' : 'T';
  const int64_t ldw = by_rows ? K : C;
  for (int64_t a = 0; a < N; a += rows) {
    const int64_t n = std::min(rows, N - a);
    const float* hc = h + a * K;
    if (op.bf16()) {
      to_bf16(hc, op.hb.get(), n * K);
      gemm('N', t_logits, n, C, K, op.hb.get(), K, op.Wb.get(), ldw, 0.0f, z.get(), C);
    } else {
      gemm('N', t_logits, n, C, K, hc, K, W, ldw, 0.0f, z.get(), C);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float* dc_part = grads ? dcs.get() + omp_get_thread_num() * C : nullptr;
      bf16_t* pb = grads && op.bf16() ? op.pb.get() + i * C : nullptr;
      nll[a + i] = row(z.get() + i * C, c, C, y[a + i], w[a + i], dc_part, pb);
    }
    if (!grads) continue;
    const float beta = a == 0 ? 0.0f : 1.0f;  // the product adds the chunk's part to the sum
    if (op.bf16()) {
      const bf16_t *p = op.pb.get(), *hb = op.hb.get();
      gemm('N', t_dh, n, K, C, p, C, op.Wb.get(), ldw, 0.0f, dh + a * K, K);
      if (by_rows)
        gemm('T', 'N', C, K, n, p, C, hb, K, beta, dW, K);
      else
        gemm('T', 'N', K, C, n, hb, K, p, C, beta, dW, C);
      continue;
    }
    gemm('N', t_dh, n, K, C, z.get(), C, W, ldw, 0.0f, dh + a * K, K);
    if (by_rows)
      gemm('T', 'N', C, K, n, z.get(), C, hc, K, beta, dW, K);
    else
      gemm('T', 'N', K, C, n, hc, K, z.get(), C, beta, dW, C);
  }
  if (!grads) return;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < C; ++j) {
    float s = 0.0f;
    for (int t = 0; t < threads; ++t) s += dcs[t * C + j];
    dc[j] = s;
  }
}

// The loss and one SGD step on the weights, V (C, K) rows, updated in place: V −= lr·pᵀ·h (no bias;
// rnnlm.engine_ops.output's SoftmaxNLLSGD, the tutorial's sgd_step).  For few rows (N·C within a chunk):
// each thread takes one range of V's rows (classes) for all three products -- its logits, its part of dh
// and its rows' update -- so that part of V stays in its core's cache from one step to the next and dW is
// never written (C=8000, K=100, N=4, 2 vCPUs: 0.14 ms, against 0.63 for the three products over all of V,
// a dW and a pass to apply it).  The row's softmax needs every class: each thread keeps its classes'
// exp(z − its max) and sum, and after one barrier rescales them by the row's max and sum.
void softmax_nll_sgd(int64_t N, int64_t K, int64_t C, float lr, const float* h, float* V, const int32_t* y,
                     const float* w, float* nll, float* dh) {
  check_targets(y, N, C);
  if (N == 0) return;
  const int threads = omp_get_max_threads();
  std::unique_ptr<float[]> z(new float[N * C]);
  std::unique_ptr<float[]> stats(new float[2 * threads * N]);  // each thread's max and sum of exp per row
  std::unique_ptr<float[]> zy(new float[N]);                    // the targets' logits
  std::unique_ptr<float[]> dhs(new float[threads * N * K]);     // each thread's part of dh
#pragma omp parallel num_threads(threads)
  {
    const int T = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = C * t / T, n_c = C * (t + 1) / T - c0;
    float* zt = z.get() + c0;  // this thread's columns of the logits (leading dimension C)
    float* Vt = V + c0 * K;
    float *m_t = stats.get() + t * N, *s_t = stats.get() + (T + t) * N, *dh_t = dhs.get() + t * N * K;
    // (oneDNN's sgemm runs on the calling thread inside a parallel region)
    if (n_c > 0) gemm('N', 'T', N, n_c, K, h, K, Vt, K, 0.0f, zt, C);
    for (int64_t i = 0; i < N; ++i) {
      float* zi = zt + i * C;
      if (y[i] >= c0 && y[i] < c0 + n_c) zy[i] = zi[y[i] - c0];
      float m = -INFINITY, s = 0.0f;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < n_c; ++j) m = zi[j] > m ? zi[j] : m;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < n_c; ++j) {
        const float e = expf(zi[j] - m);
        zi[j] = e;
        s += e;
      }
      m_t[i] = m;
      s_t[i] = s;
    }
#pragma omp barrier
    for (int64_t i = 0; i < N; ++i) {
      float m = -INFINITY, s = 0.0f;
      for (int u = 0; u < T; ++u) m = std::max(m, stats[u * N + i]);
      for (int u = 0; u < T; ++u)
        if (stats[(T + u) * N + i] > 0.0f) s += stats[(T + u) * N + i] * std::exp(stats[u * N + i] - m);
      if (t == 0) nll[i] = std::log(s) + m - zy[i];
      if (n_c == 0) continue;
      const float r = w[i] * std::exp(m_t[i] - m) / s;  // this thread's exp(z − m_t) → w·softmax
      float* zi = zt + i * C;
#pragma omp simd
      for (int64_t j = 0; j < n_c; ++j) zi[j] *= r;
      if (y[i] >= c0 && y[i] < c0 + n_c) zi[y[i] - c0] -= w[i];
    }
    if (n_c > 0) {
      gemm('N', 'N', N, K, n_c, zt, C, Vt, K, 0.0f, dh_t, K);  // before its rows change
      gemm('T', 'N', n_c, K, N, zt, C, h, K, 1.0f, Vt, K, -lr);
    } else {
      std::fill(dh_t, dh_t + N * K, 0.0f);
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t e = 0; e < N * K; ++e) {
      float v = 0.0f;
      for (int u = 0; u < T; ++u) v += dhs[u * N * K + e];
      dh[e] = v;
    }
  }
}

}  // namespace

extern "C" {

// 1 where the bf16 products run oneDNN's matmul primitive on AMX (amx_gemm), else 0.
int rnnlm_bf16_amx() { return amx() ? 1 : 0; }

// V (C, K) updated in place; nll (N,) and dh (N, K) out.  0, or 1 with the message for rnnlm_error().
int rnnlm_softmax_nll_sgd(int64_t N, int64_t K, int64_t C, float lr, const float* h, float* V, const int32_t* y,
                          const float* w, float* nll, float* dh) {
  return guarded([&] { softmax_nll_sgd(N, K, C, lr, h, V, y, w, nll, dh); });
}

// dh, dW, dc null: the loss only (nll).  0, or 1 with the message for rnnlm_error().
int rnnlm_softmax_nll(int64_t N, int64_t K, int64_t C, int64_t rows, int by_rows, int bf16, const float* h,
                      const float* W, const float* c, const int32_t* y, const float* w, float* nll, float* dh,
                      float* dW, float* dc) {
  return guarded([&] { softmax_nll(N, K, C, rows, by_rows, bf16, h, W, c, y, w, nll, dh, dW, dc); });
}

}  // extern "C"

#ifdef RNNLM_XLA_FFI
// The same call as XLA FFI handlers (registered by rnnlm.engine_ops.dnnl for the JAX linker, CPU).
namespace {
using namespace rnnlm::xla_ffi;
using Ids = ffi::Buffer<ffi::S32>;

int64_t classes(In W, int32_t by_rows) { return W.dimensions()[by_rows ? 0 : 1]; }

ffi::Error loss_ffi(In h, In W, In c, Ids y, In w, Out nll, int64_t rows, int32_t by_rows, int32_t bf16) {
  auto d = h.dimensions();
  return ffi_status(
      rnnlm_softmax_nll(d[0], d[1], classes(W, by_rows), rows, by_rows, bf16, h.typed_data(), W.typed_data(),
                                  c.typed_data(), y.typed_data(), w.typed_data(), nll->typed_data(), nullptr,
                                  nullptr, nullptr));
}

ffi::Error grads_ffi(In h, In W, In c, Ids y, In w, Out nll, Out dh, Out dW, Out dc, int64_t rows, int32_t by_rows,
                     int32_t bf16) {
  auto d = h.dimensions();
  return ffi_status(
      rnnlm_softmax_nll(d[0], d[1], classes(W, by_rows), rows, by_rows, bf16, h.typed_data(), W.typed_data(),
                                  c.typed_data(), y.typed_data(), w.typed_data(), nll->typed_data(),
                                  dh->typed_data(), dW->typed_data(), dc->typed_data()));
}
}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_softmax_nll_xla, loss_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<Ids>().Arg<In>().Ret<In>()
                                  .Attr<int64_t>("rows").Attr<int32_t>("by_rows")
                                  .Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_softmax_nll_grads_xla, grads_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<Ids>().Arg<In>().Ret<In>()
                                  .Ret<In>().Ret<In>().Ret<In>().Attr<int64_t>("rows").Attr<int32_t>("by_rows")
                                  .Attr<int32_t>("bf16"));
#endif
