// rnnlm's GRU layer at bf16 on AMX (rnn_dnnl.cc calls it for its GRU where oneDNN reports AMX tiles).
// Why: oneDNN 3.2 trains a bf16 "vanilla_gru" on its reference path (`rnn,ref`: 6 ms forward, 24 ms backward
// for T=64, N=64, D=64, H=256 on 2 vCPUs of a Xeon with AMX -- no faster than its float32 GRU), while its
// matmul primitive runs the same products on the tiles.  So the layer is built here from matmuls: the
// input products of every step as one GEMM, two small ones per step against weights packed once per
// call, and the weights' and the input's gradients as GEMMs over all steps.
//
// The math is rnnlm's fused GRU layer at precision "bf16" (rnnlm.engine_ops.recurrent), in its gate order
// z, r, h~: every product's operands rounded to bfloat16, sums, states and gates float32 --
//   z, r = σ(U_zr x_t + W_zr s_{t-1} + b_zr),  c = tanh(U_c x_t + W_c (r ⊙ s_{t-1}) + b_c),
//   s_t = (1 − z) ⊙ c + z ⊙ s_{t-1}.
// (oneDNN's bf16 layer also keeps s_t in bfloat16 between steps; this one keeps it float32, as rnnlm's
// graphs do.)  Layouts as rnn_dnnl.cc's: x (T, N, D); U (3, H, D); W (3, H, H); b (3, H); h0 (N, H);
// y (T, N, H); the workspace holds every step's z, r, c: (T, N, 3H) float32.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "bf16.h"

extern "C" float expf(float) __attribute__((simd("notinbranch")));

namespace rnnlm::gru_bf16 {
namespace {

using dnnl::memory;
using dt = memory::data_type;

dnnl::engine& cpu() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A product of one step, A (M, K) bf16 rows times B (K, N) bf16 into C (M, N) float32, with B packed
// once in the layout oneDNN's AMX kernel reads (a plain B is repacked at every call).  B is given by
// its strides, so a transposed weight matrix is the same memory.
struct StepProduct {
  memory::desc a, b_user, c;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul mm;
  StepProduct(int64_t M, int64_t K, int64_t N, int64_t lda, memory::dims b_strides, int64_t ldc)
      : a({M, K}, dt::bf16, memory::dims{lda, 1}), b_user({K, N}, dt::bf16, b_strides),
        c({M, N}, dt::f32, memory::dims{ldc, 1}),
        pd(cpu(), a, memory::desc({K, N}, dt::bf16, memory::format_tag::any), c), mm(pd) {}
};

StepProduct& step_product(int64_t M, int64_t K, int64_t N, int64_t lda, memory::dims b_strides, int64_t ldc) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<StepProduct>> made;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = made[Key{M, K, N, lda, b_strides[0], b_strides[1], ldc}];
  if (!p) p = std::make_unique<StepProduct>(M, K, N, lda, b_strides, ldc);
  return *p;
}

// One step product bound to its packed weights for a call: run(A, C) computes C = A·B.
class Bound {
 public:
  Bound(StepProduct& p, dnnl::stream& s, const bf16_t* B)
      : p_(p), s_(s), a_(p.a, cpu(), DNNL_MEMORY_NONE), c_(p.c, cpu(), DNNL_MEMORY_NONE),
        b_(p.pd.weights_desc(), cpu()) {
    memory user(p.b_user, cpu(), const_cast<bf16_t*>(B));
    dnnl::reorder(user, b_).execute(s, user, b_);
  }
  void run(const bf16_t* A, float* C) {
    a_.set_data_handle(const_cast<bf16_t*>(A));
    c_.set_data_handle(C);
    p_.mm.execute(s_, {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, b_}, {DNNL_ARG_DST, c_}});
  }

 private:
  StepProduct& p_;
  dnnl::stream& s_;
  memory a_, c_, b_;
};

inline float sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }
// tanh from expf alone (glibc's vector tanhf needs 2.35): 2σ(2a) − 1, within 1e-7 of tanhf
inline float tanh_(float a) { return 2.0f / (1.0f + expf(-2.0f * a)) - 1.0f; }

std::unique_ptr<bf16_t[]> rounded(const float* x, int64_t n) {
  std::unique_ptr<bf16_t[]> out(new bf16_t[n]);
  to_bf16(x, out.get(), n);
  return out;
}

}  // namespace

size_t workspace_bytes(int T, int N, int H) { return size_t(T) * N * 3 * H * sizeof(float); }

void forward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* b,
             const float* h0, float* y, float* hT, float* ws) {
  const int64_t rows = int64_t(T) * N, G = 3 * int64_t(H);
  dnnl::stream s(cpu());
  auto Ub = rounded(U, G * D), Wb = rounded(W, G * H), xb = rounded(x, rows * D);
  // every step's input part, P = x·Uᵀ (T·N, 3H), into the workspace; the step adds the rest in place
  float* A = ws;
  gemm('N', 'T', rows, G, D, xb.get(), D, Ub.get(), D, 0.0f, A, G);
  // s·W_zrᵀ and (r ⊙ s)·W_cᵀ: W's rows are the outputs, so B is W transposed (strides 1, H)
  Bound zr(step_product(N, H, 2 * H, H, {1, H}, 2 * H), s, Wb.get());
  Bound cand(step_product(N, H, H, H, {1, H}, H), s, Wb.get() + 2 * int64_t(H) * H);
  // sb: s_{t-1} in bfloat16 for the first product, then r ⊙ s_{t-1} for the second, then s_t
  std::vector<bf16_t> sb(size_t(N) * H);
  std::vector<float> q(size_t(N) * 2 * H);
  to_bf16(h0, sb.data(), int64_t(N) * H);
  for (int t = 0; t < T; ++t) {
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    float* a = A + int64_t(t) * N * G;  // z, r, c of step t: (N, 3H)
    float* st = y + int64_t(t) * N * H;
    zr.run(sb.data(), q.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * 2 * H;
      const float* sn = sp + int64_t(n) * H;
      bf16_t* srn = sb.data() + int64_t(n) * H;
#pragma omp simd
      for (int j = 0; j < 2 * H; ++j) an[j] = sigmoid(an[j] + qn[j] + b[j]);
#pragma omp simd
      for (int j = 0; j < H; ++j) srn[j] = to_bf16(an[H + j] * sn[j]);
    }
    cand.run(sb.data(), q.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * H;
      const float* sn = sp + int64_t(n) * H;
      float* yn = st + int64_t(n) * H;
      bf16_t* sbn = sb.data() + int64_t(n) * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float c = tanh_(an[2 * H + j] + qn[j] + b[2 * H + j]), z = an[j];
        an[2 * H + j] = c;
        yn[j] = (1.0f - z) * c + z * sn[j];
        sbn[j] = to_bf16(yn[j]);
      }
    }
  }
  std::memcpy(hT, y + int64_t(T - 1) * N * H, sizeof(float) * N * H);
  s.wait();
}

void backward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* h0,
              const float* y, const float* ws, const float* dy, const float* dhT, float* dx, float* dU, float* dW,
              float* db, float* dh0) {
  const int64_t rows = int64_t(T) * N, G = 3 * int64_t(H), NH = int64_t(N) * H;
  dnnl::stream s(cpu());
  auto Wb = rounded(W, G * H);
  // dac·W_c and dzr·W_zr: W as it is (rows: the outputs, which are now the product's K)
  Bound back_c(step_product(N, H, H, H, {H, 1}, H), s, Wb.get() + 2 * int64_t(H) * H);
  Bound back_zr(step_product(N, 2 * H, H, 2 * H, {H, 1}, H), s, Wb.get());
  // every step's gradient of the gates' pre-activations, in bfloat16 for the products after the loop, as
  // two dense arrays (z, r) and c (oneDNN's AMX kernel takes no row stride wider than a row), and those
  // products' other operands: s_{t-1} and r ⊙ s_{t-1}
  std::unique_ptr<bf16_t[]> dzrb(new bf16_t[rows * 2 * H]), dcb(new bf16_t[rows * H]);
  std::unique_ptr<bf16_t[]> spb(new bf16_t[rows * H]), srb(new bf16_t[rows * H]);
  std::unique_ptr<float[]> dbp(new float[size_t(omp_get_max_threads()) * G]());
  std::vector<float> dh(dhT, dhT + NH), dac(NH), dsr(NH), dsm(NH), dzr(size_t(N) * 2 * H);
  for (int t = T - 1; t >= 0; --t) {
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    const float* a = ws + int64_t(t) * N * G;
    const float* dyt = dy + int64_t(t) * N * H;
    bf16_t* dzr_t = dzrb.get() + int64_t(t) * N * 2 * H;
    bf16_t* dc_t = dcb.get() + int64_t(t) * N * H;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = a + int64_t(n) * G;
      const float* sn = sp + int64_t(n) * H;
      float* dhn = dh.data() + int64_t(n) * H;
      float* dacn = dac.data() + int64_t(n) * H;
      bf16_t* dcn = dc_t + int64_t(n) * H;
      bf16_t* spn = spb.get() + (int64_t(t) * N + n) * H;
      bf16_t* srn = srb.get() + (int64_t(t) * N + n) * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        dhn[j] += dyt[int64_t(n) * H + j];
        const float z = an[j], c = an[2 * H + j];
        dacn[j] = dhn[j] * (1.0f - z) * (1.0f - c * c);
        dcn[j] = to_bf16(dacn[j]);
        spn[j] = to_bf16(sn[j]);
        srn[j] = to_bf16(an[H + j] * sn[j]);
      }
    }
    back_c.run(dc_t, dsr.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = a + int64_t(n) * G;
      const float* sn = sp + int64_t(n) * H;
      const float* dhn = dh.data() + int64_t(n) * H;
      const float* dsrn = dsr.data() + int64_t(n) * H;
      float* dzrn = dzr.data() + int64_t(n) * 2 * H;
      bf16_t* dzrbn = dzr_t + int64_t(n) * 2 * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float z = an[j], r = an[H + j], c = an[2 * H + j];
        dzrn[j] = dhn[j] * (sn[j] - c) * z * (1.0f - z);
        dzrn[H + j] = dsrn[j] * sn[j] * r * (1.0f - r);
        dzrbn[j] = to_bf16(dzrn[j]);
        dzrbn[H + j] = to_bf16(dzrn[H + j]);
      }
    }
    back_zr.run(dzr_t, dsm.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = a + int64_t(n) * G;
      float* dhn = dh.data() + int64_t(n) * H;
      const float* dsrn = dsr.data() + int64_t(n) * H;
      const float* dsmn = dsm.data() + int64_t(n) * H;
      const float* dzrn = dzr.data() + int64_t(n) * 2 * H;
      const float* dacn = dac.data() + int64_t(n) * H;
      float* dbn = dbp.get() + size_t(omp_get_thread_num()) * G;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        dbn[j] += dzrn[j];
        dbn[H + j] += dzrn[H + j];
        dbn[2 * H + j] += dacn[j];
        dhn[j] = dhn[j] * an[j] + dsrn[j] * an[H + j] + dsmn[j];
      }
    }
  }
  std::memcpy(dh0, dh.data(), sizeof(float) * NH);
  s.wait();
  // the bias's gradient: the per-thread sums of dA (float32, before rounding)
  for (int64_t j = 0; j < G; ++j) {
    float sum = 0.0f;
    for (int k = 0; k < omp_get_max_threads(); ++k) sum += dbp[size_t(k) * G + j];
    db[j] = sum;
  }
  // over all T·N rows: dW_zr = dA_zrᵀ·s_{t-1}, dW_c = dA_cᵀ·(r ⊙ s_{t-1}), dU = dAᵀ·x, dx = dA·U
  auto xb = rounded(x, rows * D), Ub = rounded(U, G * D);
  const int64_t HH = int64_t(H) * H, HD = int64_t(H) * D;
  gemm('T', 'N', 2 * H, H, rows, dzrb.get(), 2 * H, spb.get(), H, 0.0f, dW, H);
  gemm('T', 'N', H, H, rows, dcb.get(), H, srb.get(), H, 0.0f, dW + 2 * HH, H);
  gemm('T', 'N', 2 * H, D, rows, dzrb.get(), 2 * H, xb.get(), D, 0.0f, dU, D);
  gemm('T', 'N', H, D, rows, dcb.get(), H, xb.get(), D, 0.0f, dU + 2 * HD, D);
  gemm('N', 'N', rows, D, 2 * H, dzrb.get(), 2 * H, Ub.get(), D, 0.0f, dx, D);
  gemm('N', 'N', rows, D, H, dcb.get(), H, Ub.get() + 2 * HD, D, 1.0f, dx, D);
}

}  // namespace rnnlm::gru_bf16
