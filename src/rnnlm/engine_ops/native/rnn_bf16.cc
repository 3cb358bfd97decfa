// rnnlm's GRU and LSTM layers at bf16, built from oneDNN's matmul primitive (rnn_dnnl.cc calls them in
// place of oneDNN's own layers where own_bf16() there says so).  Why: oneDNN 3.2 trains a bf16
// "vanilla_gru" on its reference path (`rnn,ref`: 6 ms forward, 24 ms backward for T=64, N=64, D=64,
// H=256 on 2 vCPUs of a Xeon with AMX, no faster than its float32 GRU), and its brgemm LSTM on AMX
// took 23–26 ms a layer against 17 for this one at the char preset's second; the matmul primitive runs the
// products on the tiles (or with avx512_bf16's dot products).  So: per step one or two products against
// weights packed once per call, with the elementwise work between them in AVX-512, and the weights' and
// the input's gradients as products over all steps.
//
// The math is rnnlm's fused layer at precision "bf16" (rnnlm.engine_ops.recurrent): every product's
// operands rounded to bfloat16, float32 sums, states and gates float32 (oneDNN's bf16 layers keep the
// states in bfloat16 between steps).  Gate orders as rnnlm's --
//   GRU z, r, c:  z, r = σ(U_zr x_t + W_zr s_{t-1} + b_zr),  c = tanh(U_c x_t + W_c (r ⊙ s_{t-1}) + b_c),
//                 s_t = (1 − z) ⊙ c + z ⊙ s_{t-1};
//   LSTM i, f, o, g:  i, f, o = σ(·), g = tanh(·) of U x_t + W s_{t-1} + b;  c_t = f ⊙ c_{t-1} + i ⊙ g,
//                 s_t = o ⊙ tanh(c_t).
// Layouts as rnn_dnnl.cc's: x (T, N, D); U (G, H, D); W (G, H, H); b (G, H); h0, c0 (N, H); y (T, N, H).
// Workspaces (float32): the GRU's z, r, c of every step (T, N, 3H); the LSTM's i, f, o, g, tanh(c), c
// (T, N, 6H).
#include <omp.h>

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

namespace rnnlm::bf16_layers {
namespace {

using dnnl::memory;
using dt = memory::data_type;

dnnl::engine& cpu() { return rnnlm::cpu_engine(); }

// A product of one step, A (M, K) bf16 rows times B (K, N) bf16 into C (M, N) float32, with B packed
// once in the layout oneDNN's kernel reads (a plain B is repacked at every call).  B is given by its
// strides, so a transposed weight matrix is the same memory.  A's rows must be dense or the kernel
// falls back from AMX to a slower one: lda is a row's width wherever it can be.
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

// [U | W] in bfloat16, (G·H, D + H): row o is U's row o then W's, so that one product per step takes
// [x_t | s] (N, D + H) and no (T·N, G·H) input part is made and read back (a 12–17 MB pass at these sizes).
std::unique_ptr<bf16_t[]> joined(const float* U, const float* W, int64_t rows, int64_t D, int64_t H) {
  const int64_t K = D + H;
  std::unique_ptr<bf16_t[]> out(new bf16_t[rows * K]);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t d = 0; d < D; ++d) out[o * K + d] = to_bf16(U[o * D + d]);
    for (int64_t j = 0; j < H; ++j) out[o * K + D + j] = to_bf16(W[o * H + j]);
  }
  return out;
}

// Every step's [x_t | s_{t-1}] rows (T·N, D + H) in bfloat16: x filled in here, s_0 = h0; the step
// loop writes each s_t into the next step's rows.
std::unique_ptr<bf16_t[]> inputs_and_states(const float* x, const float* h0, int64_t T, int64_t N, int64_t D,
                                            int64_t H) {
  const int64_t K = D + H, rows = T * N;
  std::unique_ptr<bf16_t[]> xs(new bf16_t[rows * K]);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < D; ++d) xs[r * K + d] = to_bf16(x[r * D + d]);
    if (r < N)
      for (int64_t j = 0; j < H; ++j) xs[r * K + D + j] = to_bf16(h0[r * H + j]);
  }
  return xs;
}

// Per-thread rows of a bias gradient's partial sums, and their total.
std::unique_ptr<float[]> per_thread(int64_t G) {
  return std::unique_ptr<float[]>(new float[size_t(omp_get_max_threads()) * G]());
}

void thread_sums(const float* parts, int64_t G, float* out) {
  for (int64_t j = 0; j < G; ++j) {
    float sum = 0.0f;
    for (int k = 0; k < omp_get_max_threads(); ++k) sum += parts[size_t(k) * G + j];
    out[j] = sum;
  }
}

// Every step's previous state s_{t-1} in bfloat16, (T·N, H): h0, then y's first T−1 steps.
std::unique_ptr<bf16_t[]> previous_states(const float* h0, const float* y, int64_t T, int64_t N, int64_t H) {
  std::unique_ptr<bf16_t[]> sp(new bf16_t[T * N * H]);
  to_bf16(h0, sp.get(), N * H);
  to_bf16(y, sp.get() + N * H, (T - 1) * N * H);
  return sp;
}

// Over all rows, from some gates' dA (rows, n) dense in bfloat16: their rows of dU = dAᵀ·x, and their
// part of dx = dA·U (added to what dx holds when `add`); xb and these gates' rows of U, Ub, rounded.
void input_grads(int64_t rows, int64_t n, int64_t D, const bf16_t* dA, const bf16_t* xb, const bf16_t* Ub,
                 float* dU, float* dx, bool add) {
  gemm('T', 'N', n, D, rows, dA, n, xb, D, 0.0f, dU, D);
  gemm('N', 'N', rows, D, n, dA, n, Ub, D, add ? 1.0f : 0.0f, dx, D);
}

}  // namespace

size_t gru_workspace_bytes(int T, int N, int H) { return size_t(T) * N * 3 * H * sizeof(float); }
size_t lstm_workspace_bytes(int T, int N, int H) { return size_t(T) * N * 6 * H * sizeof(float); }

void gru_forward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* b,
                 const float* h0, float* y, float* hT, float* ws) {
  const int64_t G = 3 * int64_t(H), K = int64_t(D) + H;
  dnnl::stream s(cpu());
  // [x_t | s_{t-1}]·[U_zr | W_zr]ᵀ, then [x_t | r ⊙ s_{t-1}]·[U_c | W_c]ᵀ: B is [U | W] transposed
  auto UW = joined(U, W, G, D, H);
  auto xs = inputs_and_states(x, h0, T, N, D, H);
  Bound zr(step_product(N, K, 2 * H, K, {1, K}, 2 * H), s, UW.get());
  Bound cand(step_product(N, K, H, K, {1, K}, H), s, UW.get() + 2 * H * K);
  std::vector<bf16_t> xr(size_t(N) * K);  // [x_t | r ⊙ s_{t-1}]
  std::vector<float> q(size_t(N) * 2 * H);
  for (int t = 0; t < T; ++t) {
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    const bf16_t* xs_t = xs.get() + int64_t(t) * N * K;
    float* a = ws + int64_t(t) * N * G;  // z, r, c of step t: (N, 3H)
    zr.run(xs_t, q.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * 2 * H;
      const float* sn = sp + int64_t(n) * H;
      bf16_t* xrn = xr.data() + int64_t(n) * K;
      std::memcpy(xrn, xs_t + int64_t(n) * K, sizeof(bf16_t) * D);
#pragma omp simd
      for (int j = 0; j < 2 * H; ++j) an[j] = sigmoid(qn[j] + b[j]);
#pragma omp simd
      for (int j = 0; j < H; ++j) xrn[D + j] = to_bf16(an[H + j] * sn[j]);
    }
    cand.run(xr.data(), q.data());
    bf16_t* next = t + 1 < T ? xs.get() + int64_t(t + 1) * N * K + D : nullptr;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * H;
      const float* sn = sp + int64_t(n) * H;
      float* yn = y + (int64_t(t) * N + n) * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float c = tanh_(qn[j] + b[2 * H + j]), z = an[j];
        an[2 * H + j] = c;
        yn[j] = (1.0f - z) * c + z * sn[j];
      }
      if (next)
        for (int j = 0; j < H; ++j) next[int64_t(n) * K + j] = to_bf16(yn[j]);
    }
  }
  std::memcpy(hT, y + int64_t(T - 1) * N * H, sizeof(float) * N * H);
  s.wait();
}

void lstm_forward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* b,
                  const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws) {
  const int64_t G = 4 * int64_t(H), K = int64_t(D) + H, WS = 6 * int64_t(H);
  dnnl::stream s(cpu());
  auto UW = joined(U, W, G, D, H);
  auto xs = inputs_and_states(x, h0, T, N, D, H);
  Bound step(step_product(N, K, G, K, {1, K}, G), s, UW.get());
  std::vector<float> q(size_t(N) * G);
  for (int t = 0; t < T; ++t) {
    // c_{t-1}: c0, or the workspace's c of step t-1 (row stride 6H)
    const float* cp = t ? ws + int64_t(t - 1) * N * WS + 5 * H : c0;
    const int64_t cps = t ? WS : H;
    step.run(xs.get() + int64_t(t) * N * K, q.data());
    bf16_t* next = t + 1 < T ? xs.get() + int64_t(t + 1) * N * K + D : nullptr;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* qn = q.data() + int64_t(n) * G;
      const float* cpn = cp + int64_t(n) * cps;
      float* an = ws + (int64_t(t) * N + n) * WS;
      float* yn = y + (int64_t(t) * N + n) * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float i = sigmoid(qn[j] + b[j]), f = sigmoid(qn[H + j] + b[H + j]),
                    o = sigmoid(qn[2 * H + j] + b[2 * H + j]), g = tanh_(qn[3 * H + j] + b[3 * H + j]);
        const float c = f * cpn[j] + i * g, tc = tanh_(c);
        an[j] = i;
        an[H + j] = f;
        an[2 * H + j] = o;
        an[3 * H + j] = g;
        an[4 * H + j] = tc;
        an[5 * H + j] = c;
        yn[j] = o * tc;
      }
      if (next)
        for (int j = 0; j < H; ++j) next[int64_t(n) * K + j] = to_bf16(yn[j]);
    }
  }
  std::memcpy(hT, y + int64_t(T - 1) * N * H, sizeof(float) * N * H);
  for (int n = 0; n < N; ++n)
    std::memcpy(cT + int64_t(n) * H, ws + (int64_t(T - 1) * N + n) * WS + 5 * H, sizeof(float) * H);
  s.wait();
}

void gru_backward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* h0,
                  const float* y, const float* ws, const float* dy, const float* dhT, float* dx, float* dU,
                  float* dW, float* db, float* dh0) {
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
  std::unique_ptr<bf16_t[]> srb(new bf16_t[rows * H]);
  auto dbp = per_thread(G);
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
      bf16_t* srn = srb.get() + (int64_t(t) * N + n) * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        dhn[j] += dyt[int64_t(n) * H + j];
        const float z = an[j], c = an[2 * H + j];
        dacn[j] = dhn[j] * (1.0f - z) * (1.0f - c * c);
        dcn[j] = to_bf16(dacn[j]);
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
  thread_sums(dbp.get(), G, db);
  // over all T·N rows: dW_zr = dA_zrᵀ·s_{t-1}, dW_c = dA_cᵀ·(r ⊙ s_{t-1}); dU and dx
  const int64_t HH = int64_t(H) * H, HD = int64_t(H) * D;
  auto spb = previous_states(h0, y, T, N, H);
  gemm('T', 'N', 2 * H, H, rows, dzrb.get(), 2 * H, spb.get(), H, 0.0f, dW, H);
  gemm('T', 'N', H, H, rows, dcb.get(), H, srb.get(), H, 0.0f, dW + 2 * HH, H);
  auto xb = rounded(x, rows * D), Ub = rounded(U, G * D);
  input_grads(rows, 2 * H, D, dzrb.get(), xb.get(), Ub.get(), dU, dx, false);
  input_grads(rows, H, D, dcb.get(), xb.get(), Ub.get() + 2 * HD, dU + 2 * HD, dx, true);
}

void lstm_backward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* h0,
                   const float* c0, const float* y, const float* ws, const float* dy, const float* dhT,
                   const float* dcT, float* dx, float* dU, float* dW, float* db, float* dh0, float* dc0) {
  const int64_t rows = int64_t(T) * N, G = 4 * int64_t(H), NH = int64_t(N) * H, WS = 6 * int64_t(H);
  dnnl::stream s(cpu());
  auto Wb = rounded(W, G * H);
  // dA·W: W as it is (rows: the outputs, which are now the product's K)
  Bound back(step_product(N, G, H, G, {H, 1}, H), s, Wb.get());
  // every step's gradient of the gates' pre-activations (T·N, 4H), in bfloat16 for the products
  std::unique_ptr<bf16_t[]> dAb(new bf16_t[rows * G]);
  auto dbp = per_thread(G);
  std::vector<float> dh(dhT, dhT + NH), dc(dcT, dcT + NH);
  for (int t = T - 1; t >= 0; --t) {
    const float* cp = t ? ws + (int64_t(t - 1) * N) * WS + 5 * H : c0;
    const int64_t cps = t ? WS : H;
    bf16_t* dA = dAb.get() + int64_t(t) * N * G;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = ws + (int64_t(t) * N + n) * WS;
      const float* cpn = cp + int64_t(n) * cps;
      const float* dyn = dy + (int64_t(t) * N + n) * H;
      float* dhn = dh.data() + int64_t(n) * H;
      float* dcn = dc.data() + int64_t(n) * H;
      bf16_t* dAn = dA + int64_t(n) * G;
      float* dbn = dbp.get() + size_t(omp_get_thread_num()) * G;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float i = an[j], f = an[H + j], o = an[2 * H + j], g = an[3 * H + j], tc = an[4 * H + j];
        const float dht = dhn[j] + dyn[j], dcc = dcn[j] + dht * o * (1.0f - tc * tc);
        const float di = dcc * g * i * (1.0f - i), df = dcc * cpn[j] * f * (1.0f - f),
                    dO = dht * tc * o * (1.0f - o), dg = dcc * i * (1.0f - g * g);
        dAn[j] = to_bf16(di);
        dAn[H + j] = to_bf16(df);
        dAn[2 * H + j] = to_bf16(dO);
        dAn[3 * H + j] = to_bf16(dg);
        dbn[j] += di;
        dbn[H + j] += df;
        dbn[2 * H + j] += dO;
        dbn[3 * H + j] += dg;
        dcn[j] = dcc * f;
      }
    }
    back.run(dA, dh.data());  // the gradient of s_{t-1} (before step t-1's own dy) = dA·W
  }
  std::memcpy(dh0, dh.data(), sizeof(float) * NH);
  std::memcpy(dc0, dc.data(), sizeof(float) * NH);
  s.wait();
  thread_sums(dbp.get(), G, db);
  // over all T·N rows: dW = dAᵀ·s_{t-1}, dU, dx
  auto spb = previous_states(h0, y, T, N, H);
  gemm('T', 'N', G, H, rows, dAb.get(), G, spb.get(), H, 0.0f, dW, H);
  auto xb = rounded(x, rows * D), Ub = rounded(U, G * D);
  input_grads(rows, G, D, dAb.get(), xb.get(), Ub.get(), dU, dx, false);
}

}  // namespace rnnlm::bf16_layers
