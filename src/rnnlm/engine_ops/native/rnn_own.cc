// rnnlm's own GRU and LSTM layers, built from oneDNN's matmul primitive and GEMMs (rnn_dnnl.cc calls them
// in place of oneDNN's layers where own_layer() there says so).  Why: oneDNN 3.2 trains a bf16
// "vanilla_gru" on its reference path (`rnn,ref`: 6 ms forward, 24 ms backward for T=64, N=64, D=64,
// H=256 on 2 vCPUs of a Xeon with AMX, no faster than its float32 GRU), its float32 GRU on the same path
// (this layer over float32 operands: 12–15% faster), and its brgemm LSTM on AMX took 23–26 ms a layer
// against 17 for this one at the char preset's second; the matmul primitive runs bf16 products on the tiles
// (or with avx512_bf16's dot products).  So: per step one or two products against weights packed once per
// call, with the elementwise work between them in AVX-512, and the weights' and the input's gradients as
// products over all steps.  Unlike oneDNN's layers they take a padded batch's mask.
//
// The math is rnnlm's fused layer (rnnlm.engine_ops.recurrent), over float32 operands or at precision "bf16":
// every product's operands rounded to bfloat16, float32 sums, states and gates float32 (oneDNN's bf16
// layers keep the states in bfloat16 between steps).  `Op` below is the products' operand type, float or
// bf16_t.  Gate orders as rnnlm's --
//   GRU z, r, c:  z, r = σ(U_zr x_t + W_zr s_{t-1} + b_zr),  c = tanh(U_c x_t + W_c (r ⊙ s_{t-1}) + b_c),
//                 s_t = (1 − z) ⊙ c + z ⊙ s_{t-1};
//   LSTM i, f, o, g:  i, f, o = σ(·), g = tanh(·) of U x_t + W s_{t-1} + b;  c_t = f ⊙ c_{t-1} + i ⊙ g,
//                 s_t = o ⊙ tanh(c_t).
// Layouts as rnn_dnnl.cc's: x (T, N, D); U (G, H, D); W (G, H, H); b (G, H); h0, c0 (N, H); y (T, N, H).
// mask (T, N), or null for a full batch: as rnnlm's masked layer, every state is blended with the last,
// s_t = m s_t' + (1 − m) s_{t-1} (and c_t), so a padded row keeps its state through the padding.
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
#include <type_traits>
#include <vector>

#include "bf16.h"

extern "C" float expf(float) __attribute__((simd("notinbranch")));

namespace rnnlm::own_layers {
namespace {

using dnnl::memory;
using dt = memory::data_type;

dnnl::engine& cpu() { return rnnlm::cpu_engine(); }

// A product's operand from a float32 value: itself, or rounded to bfloat16.
template <class Op>
inline Op op(float x) {
  if constexpr (std::is_same_v<Op, float>) return x;
  else return to_bf16(x);
}

template <class Op>
constexpr dt op_type = std::is_same_v<Op, float> ? dt::f32 : dt::bf16;

// A product of one step, A (M, K) rows times B (K, N) of one operand type into C (M, N) float32, with B packed
// once in the layout oneDNN's kernel reads (a plain B is repacked at every call).  B is given by its
// strides, so a transposed weight matrix is the same memory.  A's rows must be dense or the kernel
// falls back from AMX to a slower one: lda is a row's width wherever it can be.
struct StepProduct {
  memory::desc a, b_user, c;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul mm;
  StepProduct(dt type, int64_t M, int64_t K, int64_t N, int64_t lda, memory::dims b_strides, int64_t ldc)
      : a({M, K}, type, memory::dims{lda, 1}), b_user({K, N}, type, b_strides),
        c({M, N}, dt::f32, memory::dims{ldc, 1}),
        pd(cpu(), a, memory::desc({K, N}, type, memory::format_tag::any), c), mm(pd) {}
};

template <class Op>
StepProduct& step_product(int64_t M, int64_t K, int64_t N, int64_t lda, memory::dims b_strides, int64_t ldc) {
  using Key = std::tuple<dt, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<StepProduct>> made;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = made[Key{op_type<Op>, M, K, N, lda, b_strides[0], b_strides[1], ldc}];
  if (!p) p = std::make_unique<StepProduct>(op_type<Op>, M, K, N, lda, b_strides, ldc);
  return *p;
}

// One step product bound to its packed weights for a call: run(A, C) computes C = A·B.
template <class Op>
class Bound {
 public:
  Bound(StepProduct& p, dnnl::stream& s, const Op* B)
      : p_(p), s_(s), a_(p.a, cpu(), DNNL_MEMORY_NONE), c_(p.c, cpu(), DNNL_MEMORY_NONE),
        b_(p.pd.weights_desc(), cpu()) {
    memory user(p.b_user, cpu(), const_cast<Op*>(B));
    dnnl::reorder(user, b_).execute(s, user, b_);
  }
  void run(const Op* A, float* C) {
    a_.set_data_handle(const_cast<Op*>(A));
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

// An array as a product's operand: float32 as it is (no copy), or a bfloat16 copy.
template <class Op>
class Operand {
 public:
  Operand(const float* x, int64_t n) {
    if constexpr (std::is_same_v<Op, float>) {
      p_ = x;
    } else {
      own_.reset(new Op[n]);
      to_bf16(x, own_.get(), n);
      p_ = own_.get();
    }
  }
  const Op* get() const { return p_; }

 private:
  std::unique_ptr<Op[]> own_;
  const Op* p_ = nullptr;
};

// [U | W] as operands, (G·H, D + H): row o is U's row o then W's, so that one product per step takes
// [x_t | s] (N, D + H) and no (T·N, G·H) input part is made and read back (a 12–17 MB pass at these sizes).
template <class Op>
std::unique_ptr<Op[]> joined(const float* U, const float* W, int64_t rows, int64_t D, int64_t H) {
  const int64_t K = D + H;
  std::unique_ptr<Op[]> out(new Op[rows * K]);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t d = 0; d < D; ++d) out[o * K + d] = op<Op>(U[o * D + d]);
    for (int64_t j = 0; j < H; ++j) out[o * K + D + j] = op<Op>(W[o * H + j]);
  }
  return out;
}

// Every step's [x_t | s_{t-1}] rows (T·N, D + H) as operands: x filled in here, s_0 = h0; the step
// loop writes each s_t into the next step's rows.
template <class Op>
std::unique_ptr<Op[]> inputs_and_states(const float* x, const float* h0, int64_t T, int64_t N, int64_t D,
                                        int64_t H) {
  const int64_t K = D + H, rows = T * N;
  std::unique_ptr<Op[]> xs(new Op[rows * K]);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < D; ++d) xs[r * K + d] = op<Op>(x[r * D + d]);
    if (r < N)
      for (int64_t j = 0; j < H; ++j) xs[r * K + D + j] = op<Op>(h0[r * H + j]);
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

// Over all T·N rows, from some gates' dA (rows, n) dense as operands: their rows of dW = dAᵀ·s_{t-1}, where
// s_{t-1} is h0 for the first step's rows and y's first T−1 steps after.  float32 states are operands as
// they are (two products, no copy); bfloat16 ones are rounded into one array first.
template <class Op>
void state_grads(int64_t T, int64_t N, int64_t H, int64_t n, const Op* dA, const float* h0, const float* y,
                 float* dW) {
  if constexpr (std::is_same_v<Op, float>) {
    gemm('T', 'N', n, H, N, dA, n, h0, H, 0.0f, dW, H);
    if (T > 1) gemm('T', 'N', n, H, (T - 1) * N, dA + N * n, n, y, H, 1.0f, dW, H);
  } else {
    std::unique_ptr<Op[]> sp(new Op[T * N * H]);
    to_bf16(h0, sp.get(), N * H);
    to_bf16(y, sp.get() + N * H, (T - 1) * N * H);
    gemm('T', 'N', n, H, T * N, dA, n, sp.get(), H, 0.0f, dW, H);
  }
}

// Over all rows, from some gates' dA (rows, n) dense as operands: their rows of dU = dAᵀ·x, and their
// part of dx = dA·U (added to what dx holds when `add`); xb and these gates' rows of U, Ub, as operands.
template <class Op>
void input_grads(int64_t rows, int64_t n, int64_t D, const Op* dA, const Op* xb, const Op* Ub, float* dU, float* dx,
                 bool add) {
  gemm('T', 'N', n, D, rows, dA, n, xb, D, 0.0f, dU, D);
  gemm('N', 'N', rows, D, n, dA, n, Ub, D, add ? 1.0f : 0.0f, dx, D);
}

}  // namespace

size_t gru_workspace_bytes(int T, int N, int H) { return size_t(T) * N * 3 * H * sizeof(float); }
size_t lstm_workspace_bytes(int T, int N, int H) { return size_t(T) * N * 6 * H * sizeof(float); }

template <class Op>
void gru_forward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* b,
                 const float* h0, float* y, float* hT, float* ws, const float* mask) {
  const int64_t G = 3 * int64_t(H), K = int64_t(D) + H;
  dnnl::stream s(cpu());
  // [x_t | s_{t-1}]·[U_zr | W_zr]ᵀ, then [x_t | r ⊙ s_{t-1}]·[U_c | W_c]ᵀ: B is [U | W] transposed
  auto UW = joined<Op>(U, W, G, D, H);
  auto xs = inputs_and_states<Op>(x, h0, T, N, D, H);
  Bound<Op> zr(step_product<Op>(N, K, 2 * H, K, {1, K}, 2 * H), s, UW.get());
  Bound<Op> cand(step_product<Op>(N, K, H, K, {1, K}, H), s, UW.get() + 2 * H * K);
  std::vector<Op> xr(size_t(N) * K);  // [x_t | r ⊙ s_{t-1}]
  std::vector<float> q(size_t(N) * 2 * H);
  for (int t = 0; t < T; ++t) {
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    const Op* xs_t = xs.get() + int64_t(t) * N * K;
    float* a = ws + int64_t(t) * N * G;  // z, r, c of step t: (N, 3H)
    zr.run(xs_t, q.data());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * 2 * H;
      const float* sn = sp + int64_t(n) * H;
      Op* xrn = xr.data() + int64_t(n) * K;
      std::memcpy(xrn, xs_t + int64_t(n) * K, sizeof(Op) * D);
#pragma omp simd
      for (int j = 0; j < 2 * H; ++j) an[j] = sigmoid(qn[j] + b[j]);
#pragma omp simd
      for (int j = 0; j < H; ++j) xrn[D + j] = op<Op>(an[H + j] * sn[j]);
    }
    cand.run(xr.data(), q.data());
    Op* next = t + 1 < T ? xs.get() + int64_t(t + 1) * N * K + D : nullptr;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* an = a + int64_t(n) * G;
      const float* qn = q.data() + int64_t(n) * H;
      const float* sn = sp + int64_t(n) * H;
      float* yn = y + (int64_t(t) * N + n) * H;
      const float m = mask ? mask[int64_t(t) * N + n] : 1.0f;  // (1 exactly: the blend is then s_t' itself)
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float c = tanh_(qn[j] + b[2 * H + j]), z = an[j];
        an[2 * H + j] = c;
        yn[j] = m * ((1.0f - z) * c + z * sn[j]) + (1.0f - m) * sn[j];
      }
      if (next)
        for (int j = 0; j < H; ++j) next[int64_t(n) * K + j] = op<Op>(yn[j]);
    }
  }
  std::memcpy(hT, y + int64_t(T - 1) * N * H, sizeof(float) * N * H);
  s.wait();
}

template <class Op>
void lstm_forward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* b,
                  const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws, const float* mask) {
  const int64_t G = 4 * int64_t(H), K = int64_t(D) + H, WS = 6 * int64_t(H);
  dnnl::stream s(cpu());
  auto UW = joined<Op>(U, W, G, D, H);
  auto xs = inputs_and_states<Op>(x, h0, T, N, D, H);
  Bound<Op> step(step_product<Op>(N, K, G, K, {1, K}, G), s, UW.get());
  std::vector<float> q(size_t(N) * G);
  for (int t = 0; t < T; ++t) {
    // c_{t-1}: c0, or the workspace's c of step t-1 (row stride 6H)
    const float* cp = t ? ws + int64_t(t - 1) * N * WS + 5 * H : c0;
    const int64_t cps = t ? WS : H;
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    step.run(xs.get() + int64_t(t) * N * K, q.data());
    Op* next = t + 1 < T ? xs.get() + int64_t(t + 1) * N * K + D : nullptr;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* qn = q.data() + int64_t(n) * G;
      const float* cpn = cp + int64_t(n) * cps;
      const float* sn = sp + int64_t(n) * H;
      float* an = ws + (int64_t(t) * N + n) * WS;
      float* yn = y + (int64_t(t) * N + n) * H;
      const float m = mask ? mask[int64_t(t) * N + n] : 1.0f;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float i = sigmoid(qn[j] + b[j]), f = sigmoid(qn[H + j] + b[H + j]),
                    o = sigmoid(qn[2 * H + j] + b[2 * H + j]), g = tanh_(qn[3 * H + j] + b[3 * H + j]);
        const float c = f * cpn[j] + i * g, tc = tanh_(c);  // tanh of the cell before the blend
        an[j] = i;
        an[H + j] = f;
        an[2 * H + j] = o;
        an[3 * H + j] = g;
        an[4 * H + j] = tc;
        an[5 * H + j] = m * c + (1.0f - m) * cpn[j];
        yn[j] = m * (o * tc) + (1.0f - m) * sn[j];
      }
      if (next)
        for (int j = 0; j < H; ++j) next[int64_t(n) * K + j] = op<Op>(yn[j]);
    }
  }
  std::memcpy(hT, y + int64_t(T - 1) * N * H, sizeof(float) * N * H);
  for (int n = 0; n < N; ++n)
    std::memcpy(cT + int64_t(n) * H, ws + (int64_t(T - 1) * N + n) * WS + 5 * H, sizeof(float) * H);
  s.wait();
}

template <class Op>
void gru_backward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* h0,
                  const float* y, const float* ws, const float* dy, const float* dhT, float* dx, float* dU,
                  float* dW, float* db, float* dh0, const float* mask) {
  const int64_t rows = int64_t(T) * N, G = 3 * int64_t(H), NH = int64_t(N) * H;
  dnnl::stream s(cpu());
  Operand<Op> Wb(W, G * H);
  // dac·W_c and dzr·W_zr: W as it is (rows: the outputs, which are now the product's K)
  Bound<Op> back_c(step_product<Op>(N, H, H, H, {H, 1}, H), s, Wb.get() + 2 * int64_t(H) * H);
  Bound<Op> back_zr(step_product<Op>(N, 2 * H, H, 2 * H, {H, 1}, H), s, Wb.get());
  // every step's gradient of the gates' pre-activations, in bfloat16 for the products after the loop, as
  // two dense arrays (z, r) and c (oneDNN's AMX kernel takes no row stride wider than a row), and those
  // products' other operands: s_{t-1} and r ⊙ s_{t-1}
  std::unique_ptr<Op[]> dzrb(new Op[rows * 2 * H]), dcb(new Op[rows * H]);
  std::unique_ptr<Op[]> srb(new Op[rows * H]);
  auto dbp = per_thread(G);
  // keep: the part of dh that the mask blend passes straight to s_{t-1}, (1 − m)·dh
  std::vector<float> dh(dhT, dhT + NH), dac(NH), dsr(NH), dsm(NH), dzr(size_t(N) * 2 * H), keep(NH);
  for (int t = T - 1; t >= 0; --t) {
    const float* sp = t ? y + int64_t(t - 1) * N * H : h0;
    const float* a = ws + int64_t(t) * N * G;
    const float* dyt = dy + int64_t(t) * N * H;
    Op* dzr_t = dzrb.get() + int64_t(t) * N * 2 * H;
    Op* dc_t = dcb.get() + int64_t(t) * N * H;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = a + int64_t(n) * G;
      const float* sn = sp + int64_t(n) * H;
      float* dhn = dh.data() + int64_t(n) * H;
      float* dacn = dac.data() + int64_t(n) * H;
      float* keepn = keep.data() + int64_t(n) * H;
      Op* dcn = dc_t + int64_t(n) * H;
      Op* srn = srb.get() + (int64_t(t) * N + n) * H;
      const float m = mask ? mask[int64_t(t) * N + n] : 1.0f;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float dht = dhn[j] + dyt[int64_t(n) * H + j];
        keepn[j] = (1.0f - m) * dht;
        dhn[j] = m * dht;
        const float z = an[j], c = an[2 * H + j];
        dacn[j] = dhn[j] * (1.0f - z) * (1.0f - c * c);
        dcn[j] = op<Op>(dacn[j]);
        srn[j] = op<Op>(an[H + j] * sn[j]);
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
      Op* dzrbn = dzr_t + int64_t(n) * 2 * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float z = an[j], r = an[H + j], c = an[2 * H + j];
        dzrn[j] = dhn[j] * (sn[j] - c) * z * (1.0f - z);
        dzrn[H + j] = dsrn[j] * sn[j] * r * (1.0f - r);
        dzrbn[j] = op<Op>(dzrn[j]);
        dzrbn[H + j] = op<Op>(dzrn[H + j]);
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
      const float* keepn = keep.data() + int64_t(n) * H;
      float* dbn = dbp.get() + size_t(omp_get_thread_num()) * G;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        dbn[j] += dzrn[j];
        dbn[H + j] += dzrn[H + j];
        dbn[2 * H + j] += dacn[j];
        dhn[j] = dhn[j] * an[j] + dsrn[j] * an[H + j] + dsmn[j] + keepn[j];
      }
    }
  }
  std::memcpy(dh0, dh.data(), sizeof(float) * NH);
  s.wait();
  thread_sums(dbp.get(), G, db);
  // over all T·N rows: dW_zr = dA_zrᵀ·s_{t-1}, dW_c = dA_cᵀ·(r ⊙ s_{t-1}); dU and dx
  const int64_t HH = int64_t(H) * H, HD = int64_t(H) * D;
  state_grads<Op>(T, N, H, 2 * H, dzrb.get(), h0, y, dW);
  gemm('T', 'N', H, H, rows, dcb.get(), H, srb.get(), H, 0.0f, dW + 2 * HH, H);
  Operand<Op> xb(x, rows * D), Ub(U, G * D);
  input_grads(rows, 2 * H, D, dzrb.get(), xb.get(), Ub.get(), dU, dx, false);
  input_grads(rows, H, D, dcb.get(), xb.get(), Ub.get() + 2 * HD, dU + 2 * HD, dx, true);
}

template <class Op>
void lstm_backward(int T, int N, int D, int H, const float* x, const float* U, const float* W, const float* h0,
                   const float* c0, const float* y, const float* ws, const float* dy, const float* dhT,
                   const float* dcT, float* dx, float* dU, float* dW, float* db, float* dh0, float* dc0,
                   const float* mask) {
  const int64_t rows = int64_t(T) * N, G = 4 * int64_t(H), NH = int64_t(N) * H, WS = 6 * int64_t(H);
  dnnl::stream s(cpu());
  Operand<Op> Wb(W, G * H);
  // dA·W: W as it is (rows: the outputs, which are now the product's K)
  Bound<Op> back(step_product<Op>(N, G, H, G, {H, 1}, H), s, Wb.get());
  // every step's gradient of the gates' pre-activations (T·N, 4H), in bfloat16 for the products
  std::unique_ptr<Op[]> dAb(new Op[rows * G]);
  auto dbp = per_thread(G);
  // keep: the part of dh that the mask blend passes straight to s_{t-1}, (1 − m)·dh
  std::vector<float> dh(dhT, dhT + NH), dc(dcT, dcT + NH), keep(mask ? NH : 0);
  for (int t = T - 1; t >= 0; --t) {
    const float* cp = t ? ws + (int64_t(t - 1) * N) * WS + 5 * H : c0;
    const int64_t cps = t ? WS : H;
    Op* dA = dAb.get() + int64_t(t) * N * G;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const float* an = ws + (int64_t(t) * N + n) * WS;
      const float* cpn = cp + int64_t(n) * cps;
      const float* dyn = dy + (int64_t(t) * N + n) * H;
      float* dhn = dh.data() + int64_t(n) * H;
      float* dcn = dc.data() + int64_t(n) * H;
      Op* dAn = dA + int64_t(n) * G;
      float* dbn = dbp.get() + size_t(omp_get_thread_num()) * G;
      float* keepn = mask ? keep.data() + int64_t(n) * H : nullptr;
      const float m = mask ? mask[int64_t(t) * N + n] : 1.0f;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const float i = an[j], f = an[H + j], o = an[2 * H + j], g = an[3 * H + j], tc = an[4 * H + j];
        const float dh_all = dhn[j] + dyn[j], dc_all = dcn[j];
        if (keepn) keepn[j] = (1.0f - m) * dh_all;
        const float dht = m * dh_all, dcc = m * dc_all + dht * o * (1.0f - tc * tc);
        const float di = dcc * g * i * (1.0f - i), df = dcc * cpn[j] * f * (1.0f - f),
                    dO = dht * tc * o * (1.0f - o), dg = dcc * i * (1.0f - g * g);
        dAn[j] = op<Op>(di);
        dAn[H + j] = op<Op>(df);
        dAn[2 * H + j] = op<Op>(dO);
        dAn[3 * H + j] = op<Op>(dg);
        dbn[j] += di;
        dbn[H + j] += df;
        dbn[2 * H + j] += dO;
        dbn[3 * H + j] += dg;
        dcn[j] = dcc * f + (1.0f - m) * dc_all;
      }
    }
    back.run(dA, dh.data());  // the gradient of s_{t-1} (before step t-1's own dy) = dA·W
    if (mask) {
#pragma omp parallel for simd schedule(static)
      for (int64_t k = 0; k < NH; ++k) dh[k] += keep[k];
    }
  }
  std::memcpy(dh0, dh.data(), sizeof(float) * NH);
  std::memcpy(dc0, dc.data(), sizeof(float) * NH);
  s.wait();
  thread_sums(dbp.get(), G, db);
  // over all T·N rows: dW = dAᵀ·s_{t-1}, dU, dx
  state_grads<Op>(T, N, H, G, dAb.get(), h0, y, dW);
  Operand<Op> xb(x, rows * D), Ub(U, G * D);
  input_grads(rows, G, D, dAb.get(), xb.get(), Ub.get(), dU, dx, false);
}

// The entry points rnn_dnnl.cc calls: bf16 != 0 the products' operands in bfloat16, else float32.
void gru_forward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                 const float* b, const float* h0, float* y, float* hT, float* ws, const float* mask) {
  if (bf16) return gru_forward<bf16_t>(T, N, D, H, x, U, W, b, h0, y, hT, ws, mask);
  gru_forward<float>(T, N, D, H, x, U, W, b, h0, y, hT, ws, mask);
}

void lstm_forward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                  const float* b, const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws,
                  const float* mask) {
  if (bf16) return lstm_forward<bf16_t>(T, N, D, H, x, U, W, b, h0, c0, y, hT, cT, ws, mask);
  lstm_forward<float>(T, N, D, H, x, U, W, b, h0, c0, y, hT, cT, ws, mask);
}

void gru_backward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                  const float* h0, const float* y, const float* ws, const float* dy, const float* dhT, float* dx,
                  float* dU, float* dW, float* db, float* dh0, const float* mask) {
  if (bf16) return gru_backward<bf16_t>(T, N, D, H, x, U, W, h0, y, ws, dy, dhT, dx, dU, dW, db, dh0, mask);
  gru_backward<float>(T, N, D, H, x, U, W, h0, y, ws, dy, dhT, dx, dU, dW, db, dh0, mask);
}

void lstm_backward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                   const float* h0, const float* c0, const float* y, const float* ws, const float* dy,
                   const float* dhT, const float* dcT, float* dx, float* dU, float* dW, float* db, float* dh0,
                   float* dc0, const float* mask) {
  if (bf16)
    return lstm_backward<bf16_t>(T, N, D, H, x, U, W, h0, c0, y, ws, dy, dhT, dcT, dx, dU, dW, db, dh0, dc0, mask);
  lstm_backward<float>(T, N, D, H, x, U, W, h0, c0, y, ws, dy, dhT, dcT, dx, dU, dW, db, dh0, dc0, mask);
}

}  // namespace rnnlm::own_layers
