// oneDNN's LSTM, GRU and tanh RNN layers (forward training and backward) for rnnlm's graphs, behind a C
// ABI that the C linker's `perform` calls through ctypes and, built with RNNLM_XLA_FFI, as XLA FFI handlers
// for the JAX linker.  Built on first use by rnnlm.engine_ops.dnnl against the onednn-cpu-gomp wheel; see that module
// for where the layouts come from.
//
// Layouts, float32, C order.  T steps, N batch rows, SLC input width, H state width, G gates (LSTM 4, GRU
// 3, RNN 1), the weights in rnnlm's layout and gate order (LSTM i, f, o, g; GRU z, r, h~):  x (T, N,
// SLC);  wl (G, H, SLC) and wi (G, H, H);  b (G, H);  h0 (N, H), and for the LSTM c0 (N, H);  y (T, N, H) every
// step's h;  hT (N, H) the last state, and for the LSTM cT the last cell;  ws: oneDNN's workspace (what
// the backward pass reads), as float32 words.  The weights' transposition is oneDNN's "ldgoi" layout,
// which the reorder into the kernel's packed layout reads anyway; the LSTM's gate order (oneDNN's is i,
// f, c~, o) is a copy of four contiguous blocks here (oneDNN's GRU, "vanilla_gru", has rnnlm's order and
// equations: h_t = z·h_{t-1} + (1 − z)·tanh(W_c x + U_c (r·h_{t-1}) + b_c); its "vanilla_rnn" with tanh is
// rnnlm's RNN, h_t = tanh(W x + U h_{t-1} + b)).  Both were graph operations
// once, whose gradients XLA ran as a chain of scatter-adds (3.7 ms of a 62 ms char LSTM step).  bf16 != 0:
// the kernel takes bfloat16 x, h and weights (float32 accumulation; the cell state, the bias and every
// gradient float32); the float32 arrays are converted on the way in, the states y, hT on the way out.
#include <oneapi/dnnl/dnnl.hpp>

#include "bf16.h"
#include "worker.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>

// rnn_own.cc: rnnlm's own GRU and LSTM layers (bf16 != 0: bfloat16 products, else float32)
namespace rnnlm::own_layers {
size_t gru_workspace_bytes(int T, int N, int H);
size_t lstm_workspace_bytes(int T, int N, int H);
void gru_forward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                 const float* b, const float* h0, float* y, float* hT, float* ws, const float* mask);
void gru_backward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                  const float* h0, const float* y, const float* ws, const float* dy, const float* dhT, float* dx,
                  float* dU, float* dW, float* db, float* dh0, const float* mask);
void lstm_forward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                  const float* b, const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws,
                  const float* mask);
void lstm_backward(int bf16, int T, int N, int D, int H, const float* x, const float* U, const float* W,
                   const float* h0, const float* c0, const float* y, const float* ws, const float* dy,
                   const float* dhT, const float* dcT, float* dx, float* dU, float* dW, float* db, float* dh0,
                   float* dc0, const float* mask);
}  // namespace rnnlm::own_layers

namespace {

using namespace dnnl;
using rnnlm::guarded;
using rnnlm::last_error;
using rnnlm::worker;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu() { return rnnlm::cpu_engine(); }

memory::desc f32(const memory::dims& d, tag t) { return memory::desc(d, dt::f32, t); }

// The three cells.  Gate k of oneDNN's order is gate order[k] of rnnlm's (the LSTM's a swap, so its own
// inverse).
template <int gates, bool cell_state, class Fwd, class Bwd, int third, int fourth>
struct Cell {
  static constexpr int G = gates;
  static constexpr bool has_c = cell_state;  // the LSTM's cell state c beside h
  static constexpr bool own = gates > 1;     // rnn_own.cc has this cell's layer (the GRU's, the LSTM's)
  static constexpr int order[4] = {0, 1, third, fourth};
  using fwd_t = Fwd;
  using bwd_t = Bwd;
};
using Lstm = Cell<4, true, lstm_forward, lstm_backward, 3, 2>;
using Gru = Cell<3, false, gru_forward, gru_backward, 2, 3>;
using Rnn = Cell<1, false, vanilla_rnn_forward, vanilla_rnn_backward, 2, 3>;

// A (G, n) array with its gate blocks in the other order.
template <class Cell>
void permute_gates(const float* src, float* dst, size_t n) {
  for (int g = 0; g < Cell::G; ++g) std::memcpy(dst + g * n, src + Cell::order[g] * n, n * sizeof(float));
}

// wl, wi, b in oneDNN's gate order: copies of the user's, or buffers for their gradients.
template <class Cell>
struct Gates {
  size_t nl, ni, nb;
  std::unique_ptr<float[]> wl, wi, b;
  Gates(int SLC, int H)
      : nl(size_t(H) * SLC), ni(size_t(H) * H), nb(H), wl(new float[Cell::G * nl]),
        wi(new float[Cell::G * ni]), b(new float[Cell::G * nb]) {}
  void from(const float* l, const float* i, const float* bias) {
    permute_gates<Cell>(l, wl.get(), nl);
    permute_gates<Cell>(i, wi.get(), ni);
    permute_gates<Cell>(bias, b.get(), nb);
  }
  void to(float* l, float* i, float* bias) const {
    permute_gates<Cell>(wl.get(), l, nl);
    permute_gates<Cell>(wi.get(), i, ni);
    permute_gates<Cell>(b.get(), bias, nb);
  }
};

// The primitives for one shape and precision, made once (making them costs far more than running a small
// layer).  User arrays (float32, our layouts): x, y, st (h or c), wl, wi, b.  What the kernel reads and
// writes: xk, yk, hk (bfloat16 at bf16, else the same as the user's).
template <class Cell>
struct Plan {
  static constexpr int G = Cell::G;
  memory::desc x, y, st, wl, wi, b, xk, yk, hk, dwl, dwi;
  typename Cell::fwd_t::primitive_desc fwd_pd;
  typename Cell::bwd_t::primitive_desc bwd_pd;
  typename Cell::fwd_t fwd;
  typename Cell::bwd_t bwd;

  Plan(int T, int N, int SLC, int H, bool bf16)
      : x(f32({T, N, SLC}, tag::tnc)), y(f32({T, N, H}, tag::tnc)), st(f32({1, 1, N, H}, tag::ldnc)),
        wl(f32({1, 1, SLC, G, H}, tag::ldgoi)), wi(f32({1, 1, H, G, H}, tag::ldgoi)),
        b(f32({1, 1, G, H}, tag::ldgo)), dwl(f32({1, 1, SLC, G, H}, tag::ldigo)),
        dwi(f32({1, 1, H, G, H}, tag::ldigo)) {
    dt k = bf16 ? dt::bf16 : dt::f32;
    xk = memory::desc({T, N, SLC}, k, tag::tnc);
    yk = memory::desc({T, N, H}, k, tag::tnc);
    hk = memory::desc({1, 1, N, H}, k, tag::ldnc);
    auto wl_any = memory::desc({1, 1, SLC, G, H}, k, tag::any), wi_any = memory::desc({1, 1, H, G, H}, k, tag::any);
    auto dir = rnn_direction::unidirectional_left2right;
    // A scratchpad per call, ours: oneDNN's per-thread global one crashed when called from a thread other
    // than the one that made the primitive (oneDNN 3.2, copy_bias_to_ws, under XLA's worker threads).
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);
    // every gradient float32 (oneDNN 3.2 refuses bfloat16 ones for a bf16 LSTM), the weights' in "ldigo"
    // (it refuses "ldgoi" there), reordered into ours after
    if constexpr (Cell::has_c) {
      fwd_pd = {cpu(), prop_kind::forward_training, dir, xk, hk, st, wl_any, wi_any, b, yk, hk, st, attr};
      bwd_pd = {cpu(), prop_kind::backward, dir, xk, hk, st, wl_any, wi_any, b, yk, hk, st, x, st, st, dwl, dwi, b,
                y, st, st, fwd_pd, attr};
    } else if constexpr (G == 1) {  // rnnlm's RNN: tanh (other activations keep rnnlm's layer)
      const auto tanh = algorithm::eltwise_tanh;
      fwd_pd = {cpu(), prop_kind::forward_training, tanh, dir, xk, hk, wl_any, wi_any, b, yk, hk, attr};
      bwd_pd = {cpu(), prop_kind::backward, tanh, dir, xk, hk, wl_any, wi_any, b, yk, hk, x, st, dwl, dwi, b, y, st,
                fwd_pd, attr};
    } else {
      fwd_pd = {cpu(), prop_kind::forward_training, dir, xk, hk, wl_any, wi_any, b, yk, hk, attr};
      bwd_pd = {cpu(), prop_kind::backward, dir, xk, hk, wl_any, wi_any, b, yk, hk, x, st, dwl, dwi, b, y, st,
                fwd_pd, attr};
    }
    fwd = typename Cell::fwd_t(fwd_pd);
    bwd = typename Cell::bwd_t(bwd_pd);
  }
};

template <class Cell>
Plan<Cell>& plan(int T, int N, int SLC, int H, int bf16) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int, int, bool>, std::unique_ptr<Plan<Cell>>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = plans[{T, N, SLC, H, bf16 != 0}];
  if (!p) p = std::make_unique<Plan<Cell>>(T, N, SLC, H, bf16 != 0);
  return *p;
}

// A user array in the layout and type the primitive wants (packed weights, bfloat16): a reorder (which
// converts), or the user's buffer itself when they agree.
memory as(stream& s, const memory::desc& user, const memory::desc& want, const void* data) {
  memory u(user, cpu(), const_cast<void*>(data));
  if (want == user) return u;
  memory m(want, cpu());
  reorder(u, m).execute(s, u, m);
  return m;
}

// Where the kernel writes an output: the user's buffer, or a bfloat16 one that `back` converts into it.
memory out(const memory::desc& user, const memory::desc& kernel, void* data) {
  return kernel == user ? memory(user, cpu(), data) : memory(kernel, cpu());
}

void back(stream& s, memory& m, const memory::desc& user, void* data) {
  if (m.get_desc() == user) return;
  memory u(user, cpu(), data);
  reorder(m, u).execute(s, m, u);
}

memory wrap(const memory::desc& d, const void* p) { return memory(d, cpu(), const_cast<void*>(p)); }

using Args = std::unordered_map<int, memory>;

// What the forward pass reads, in the kernel's types; the backward pass reads it too.  c0: the LSTM's.
template <class Cell>
Args inputs(stream& s, const Plan<Cell>& p, const memory::desc& wl_want, const memory::desc& wi_want,
            const float* x, const float* wl, const float* wi, const float* b, const float* h0, const float* c0,
            const void* ws) {
  Args args{{DNNL_ARG_SRC_LAYER, as(s, p.x, p.xk, x)},
            {DNNL_ARG_SRC_ITER, as(s, p.st, p.hk, h0)},
            {DNNL_ARG_WEIGHTS_LAYER, as(s, p.wl, wl_want, wl)},
            {DNNL_ARG_WEIGHTS_ITER, as(s, p.wi, wi_want, wi)},
            {DNNL_ARG_BIAS, wrap(p.b, b)},
            {DNNL_ARG_WORKSPACE, wrap(p.fwd_pd.workspace_desc(), ws)}};
  if (Cell::has_c) args.insert({DNNL_ARG_SRC_ITER_C, wrap(p.st, c0)});
  return args;
}

// Whether a layer of this cell at this precision runs rnn_own.cc's rather than oneDNN's.  At float32 both
// cells' (oneDNN 3.2 trains its GRU on its reference path: ours 12–15% faster a layer; its LSTM's forward
// pass 5–9% slower than ours, the backward even).  At bf16 the GRU's wherever oneDNN has bfloat16
// instructions (2–3× its reference path with AMX, 1.4× with avx512_bf16 alone), the LSTM's where it has AMX
// (its brgemm LSTM there: 23–26 ms a layer against 17 for ours at the char preset's second; with
// avx512_bf16 alone the two measured even, so oneDNN's stays).  RNNLM_LAYERS=onednn keeps oneDNN's
// everywhere, RNNLM_LAYERS=own takes rnnlm's everywhere (for measuring them on another CPU).
template <class Cell>
bool own_layer(int bf16) {
  if constexpr (!Cell::own) return false;
  const char* env = std::getenv("RNNLM_LAYERS");
  const std::string want = env ? env : "";
  if (want == "onednn") return false;
  if (want == "own") return true;
  if (!bf16) return true;
  if constexpr (std::is_same_v<Cell, Gru>) return rnnlm::bf16_isa();
  return rnnlm::amx();
}

// A masked layer (padded rows: a per-step blend oneDNN's layers do not have) is always rnnlm's own.
template <class Cell>
bool own(int bf16, bool masked) {
  if (masked && !Cell::own) throw std::runtime_error("a masked layer needs rnnlm's own GRU or LSTM");
  return masked || own_layer<Cell>(bf16);
}

template <class Cell>
size_t workspace_bytes(int T, int N, int SLC, int H, int bf16, int masked) {
  bool ours;
  try {
    ours = own<Cell>(bf16, masked);
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
  if (ours)
    return Cell::has_c ? rnnlm::own_layers::lstm_workspace_bytes(T, N, H)
                       : rnnlm::own_layers::gru_workspace_bytes(T, N, H);
  try {
    return plan<Cell>(T, N, SLC, H, bf16).fwd_pd.workspace_desc().get_size();
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

// cT: the LSTM's (else null); mask (T, N) or null (a full batch).
template <class Cell>
int forward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
            const float* b, const float* h0, const float* c0, float* y, float* hT, float* cT, void* ws,
            const float* mask) {
  return guarded([&] {
    if (own<Cell>(bf16, mask != nullptr)) {
      float* w = static_cast<float*>(ws);
      if constexpr (Cell::has_c)
        return rnnlm::own_layers::lstm_forward(bf16, T, N, SLC, H, x, wl, wi, b, h0, c0, y, hT, cT, w, mask);
      else if constexpr (Cell::own)
        return rnnlm::own_layers::gru_forward(bf16, T, N, SLC, H, x, wl, wi, b, h0, y, hT, w, mask);
    }
    auto& p = plan<Cell>(T, N, SLC, H, bf16);
    stream s(cpu());
    Gates<Cell> w(SLC, H);
    w.from(wl, wi, b);
    Args args = inputs(s, p, p.fwd_pd.weights_layer_desc(), p.fwd_pd.weights_iter_desc(), x, w.wl.get(),
                       w.wi.get(), w.b.get(), h0, c0, ws);
    memory yk = out(p.y, p.yk, y), hTk = out(p.st, p.hk, hT);
    args.insert({{DNNL_ARG_DST_LAYER, yk}, {DNNL_ARG_DST_ITER, hTk},
                 {DNNL_ARG_SCRATCHPAD, memory(p.fwd_pd.scratchpad_desc(), cpu())}});
    if (Cell::has_c) args.insert({DNNL_ARG_DST_ITER_C, wrap(p.st, cT)});
    p.fwd.execute(s, args);
    back(s, yk, p.y, y);
    back(s, hTk, p.st, hT);
    s.wait();
  });
}

// c0, cT, dcT, dc0: the LSTM's (else null).
template <class Cell>
int backward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
             const float* b, const float* h0, const float* c0, const float* y, const float* hT, const float* cT,
             const void* ws, const float* dy, const float* dhT, const float* dcT, float* dx, float* dwl, float* dwi,
             float* db, float* dh0, float* dc0, const float* mask) {
  return guarded([&] {
    if (own<Cell>(bf16, mask != nullptr)) {
      const float* w = static_cast<const float*>(ws);
      if constexpr (Cell::has_c)
        return rnnlm::own_layers::lstm_backward(bf16, T, N, SLC, H, x, wl, wi, h0, c0, y, w, dy, dhT, dcT, dx,
                                                dwl, dwi, db, dh0, dc0, mask);
      else if constexpr (Cell::own)
        return rnnlm::own_layers::gru_backward(bf16, T, N, SLC, H, x, wl, wi, h0, y, w, dy, dhT, dx, dwl, dwi, db,
                                               dh0, mask);
    }
    auto& p = plan<Cell>(T, N, SLC, H, bf16);
    stream s(cpu());
    Gates<Cell> w(SLC, H), dw(SLC, H);
    w.from(wl, wi, b);
    Args args = inputs(s, p, p.bwd_pd.weights_layer_desc(), p.bwd_pd.weights_iter_desc(), x, w.wl.get(),
                       w.wi.get(), w.b.get(), h0, c0, ws);
    memory dwl_k(p.dwl, cpu()), dwi_k(p.dwi, cpu());
    // oneDNN adds the weights' gradients to what the buffers hold
    std::memset(dwl_k.get_data_handle(), 0, p.dwl.get_size());
    std::memset(dwi_k.get_data_handle(), 0, p.dwi.get_size());
    std::memset(dw.b.get(), 0, p.b.get_size());
    // the forward outputs as the kernel wrote them (at bf16 converting back is exact)
    args.insert({{DNNL_ARG_DST_LAYER, as(s, p.y, p.yk, y)},  {DNNL_ARG_DST_ITER, as(s, p.st, p.hk, hT)},
                 {DNNL_ARG_DIFF_SRC_LAYER, wrap(p.x, dx)},   {DNNL_ARG_DIFF_SRC_ITER, wrap(p.st, dh0)},
                 {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl_k},       {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi_k},
                 {DNNL_ARG_DIFF_BIAS, wrap(p.b, dw.b.get())}, {DNNL_ARG_DIFF_DST_LAYER, wrap(p.y, dy)},
                 {DNNL_ARG_DIFF_DST_ITER, wrap(p.st, dhT)},
                 {DNNL_ARG_SCRATCHPAD, memory(p.bwd_pd.scratchpad_desc(), cpu())}});
    if (Cell::has_c)
      args.insert({{DNNL_ARG_DST_ITER_C, wrap(p.st, cT)}, {DNNL_ARG_DIFF_SRC_ITER_C, wrap(p.st, dc0)},
                   {DNNL_ARG_DIFF_DST_ITER_C, wrap(p.st, dcT)}});
    p.bwd.execute(s, args);
    back(s, dwl_k, p.wl, dw.wl.get());
    back(s, dwi_k, p.wi, dw.wi.get());
    s.wait();
    dw.to(dwl, dwi, db);
  });
}

}  // namespace

extern "C" {

const char* rnnlm_error() { return last_error.c_str(); }

// Bytes of the workspace for this shape (the forward pass writes it, the backward pass reads it); 0 on error.
// masked: the layer will be given a mask (so it is rnnlm's own).
size_t rnnlm_lstm_workspace_bytes(int T, int N, int SLC, int H, int bf16, int masked) {
  return workspace_bytes<Lstm>(T, N, SLC, H, bf16, masked);
}

size_t rnnlm_gru_workspace_bytes(int T, int N, int SLC, int H, int bf16, int masked) {
  return workspace_bytes<Gru>(T, N, SLC, H, bf16, masked);
}

size_t rnnlm_rnn_workspace_bytes(int T, int N, int SLC, int H, int bf16, int masked) {
  return workspace_bytes<Rnn>(T, N, SLC, H, bf16, masked);
}

// mask: (T, N), 1 a real step and 0 padding (the state carried through), or null for a full batch; the
// GRU's and the LSTM's only.
int rnnlm_lstm_forward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                       const float* b, const float* h0, const float* c0, float* y, float* hT, float* cT,
                       void* ws, const float* mask) {
  return forward<Lstm>(T, N, SLC, H, bf16, x, wl, wi, b, h0, c0, y, hT, cT, ws, mask);
}

int rnnlm_gru_forward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                      const float* b, const float* h0, float* y, float* hT, void* ws, const float* mask) {
  return forward<Gru>(T, N, SLC, H, bf16, x, wl, wi, b, h0, nullptr, y, hT, nullptr, ws, mask);
}

int rnnlm_rnn_forward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                      const float* b, const float* h0, float* y, float* hT, void* ws, const float* mask) {
  return forward<Rnn>(T, N, SLC, H, bf16, x, wl, wi, b, h0, nullptr, y, hT, nullptr, ws, mask);
}

int rnnlm_lstm_backward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                        const float* b, const float* h0, const float* c0, const float* y, const float* hT,
                        const float* cT, const void* ws, const float* dy, const float* dhT, const float* dcT,
                        float* dx, float* dwl, float* dwi, float* db, float* dh0, float* dc0, const float* mask) {
  return backward<Lstm>(T, N, SLC, H, bf16, x, wl, wi, b, h0, c0, y, hT, cT, ws, dy, dhT, dcT, dx, dwl, dwi, db,
                        dh0, dc0, mask);
}

int rnnlm_gru_backward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                       const float* b, const float* h0, const float* y, const float* hT, const void* ws,
                       const float* dy, const float* dhT, float* dx, float* dwl, float* dwi, float* db,
                       float* dh0, const float* mask) {
  return backward<Gru>(T, N, SLC, H, bf16, x, wl, wi, b, h0, nullptr, y, hT, nullptr, ws, dy, dhT, nullptr, dx,
                       dwl, dwi, db, dh0, nullptr, mask);
}

int rnnlm_rnn_backward(int T, int N, int SLC, int H, int bf16, const float* x, const float* wl, const float* wi,
                       const float* b, const float* h0, const float* y, const float* hT, const void* ws,
                       const float* dy, const float* dhT, float* dx, float* dwl, float* dwi, float* db,
                       float* dh0, const float* mask) {
  return backward<Rnn>(T, N, SLC, H, bf16, x, wl, wi, b, h0, nullptr, y, hT, nullptr, ws, dy, dhT, nullptr, dx,
                       dwl, dwi, db, dh0, nullptr, mask);
}

// 1 where a GRU (cell 0) or LSTM (cell 1) layer at bf16 (bf16 != 0) or float32 runs rnn_own.cc's, else 0
// (own_layer above).
int rnnlm_own_layer(int cell, int bf16) {
  return (cell == 0 ? own_layer<Gru>(bf16) : cell == 1 && own_layer<Lstm>(bf16)) ? 1 : 0;
}

// Runs fn(arg) on the thread that runs oneDNN (benchmarks run PyTorch's step there: one OpenMP team).
void rnnlm_dnnl_on_worker(void (*fn)(void*), void* arg) {
  worker().run([&] { fn(arg); });
}

}  // extern "C"

#ifdef RNNLM_XLA_FFI
// The same calls as XLA FFI handlers (registered by rnnlm.engine_ops.dnnl for the JAX linker, CPU).
namespace {
using namespace rnnlm::xla_ffi;

// The LSTM's; `_masked`: the same with the mask (T, N) after the other arguments.
ffi::Error lstm_forward_ffi(In x, In wl, In wi, In b, In h0, In c0, Out y, Out hT, Out cT, Out ws, int32_t bf16,
                            const float* mask) {
  auto d = x.dimensions();
  return ffi_status(
      rnnlm_lstm_forward(d[0], d[1], d[2], h0.dimensions()[1], bf16, x.typed_data(), wl.typed_data(),
                                    wi.typed_data(), b.typed_data(), h0.typed_data(), c0.typed_data(),
                                    y->typed_data(), hT->typed_data(), cT->typed_data(), ws->typed_data(), mask));
}

ffi::Error forward_ffi(In x, In wl, In wi, In b, In h0, In c0, Out y, Out hT, Out cT, Out ws, int32_t bf16) {
  return lstm_forward_ffi(x, wl, wi, b, h0, c0, y, hT, cT, ws, bf16, nullptr);
}

ffi::Error forward_masked_ffi(In x, In wl, In wi, In b, In h0, In c0, In mask, Out y, Out hT, Out cT, Out ws,
                              int32_t bf16) {
  return lstm_forward_ffi(x, wl, wi, b, h0, c0, y, hT, cT, ws, bf16, mask.typed_data());
}

ffi::Error lstm_backward_ffi(In x, In wl, In wi, In b, In h0, In c0, In y, In hT, In cT, In ws, In dy, In dhT,
                             In dcT, Out dx, Out dwl, Out dwi, Out db, Out dh0, Out dc0, int32_t bf16,
                             const float* mask) {
  auto d = x.dimensions();
  return ffi_status(rnnlm_lstm_backward(
      d[0], d[1], d[2], h0.dimensions()[1], bf16, x.typed_data(), wl.typed_data(), wi.typed_data(), b.typed_data(),
      h0.typed_data(), c0.typed_data(), y.typed_data(), hT.typed_data(), cT.typed_data(), ws.typed_data(),
      dy.typed_data(), dhT.typed_data(), dcT.typed_data(), dx->typed_data(), dwl->typed_data(),
      dwi->typed_data(), db->typed_data(), dh0->typed_data(), dc0->typed_data(), mask));
}

ffi::Error backward_ffi(In x, In wl, In wi, In b, In h0, In c0, In y, In hT, In cT, In ws, In dy, In dhT,
                        In dcT, Out dx, Out dwl, Out dwi, Out db, Out dh0, Out dc0, int32_t bf16) {
  return lstm_backward_ffi(x, wl, wi, b, h0, c0, y, hT, cT, ws, dy, dhT, dcT, dx, dwl, dwi, db, dh0, dc0, bf16,
                           nullptr);
}

ffi::Error backward_masked_ffi(In x, In wl, In wi, In b, In h0, In c0, In y, In hT, In cT, In ws, In dy, In dhT,
                               In dcT, In mask, Out dx, Out dwl, Out dwi, Out db, Out dh0, Out dc0, int32_t bf16) {
  return lstm_backward_ffi(x, wl, wi, b, h0, c0, y, hT, cT, ws, dy, dhT, dcT, dx, dwl, dwi, db, dh0, dc0, bf16,
                           mask.typed_data());
}

// The GRU's and the RNN's (one state, h): the same arguments.
template <class Cell>
ffi::Error h_forward(In x, In wl, In wi, In b, In h0, Out y, Out hT, Out ws, int32_t bf16, const float* mask) {
  auto d = x.dimensions();
  return ffi_status(forward<Cell>(d[0], d[1], d[2], h0.dimensions()[1], bf16, x.typed_data(), wl.typed_data(),
                                  wi.typed_data(), b.typed_data(), h0.typed_data(), nullptr, y->typed_data(),
                                  hT->typed_data(), nullptr, ws->typed_data(), mask));
}

template <class Cell>
ffi::Error h_forward_ffi(In x, In wl, In wi, In b, In h0, Out y, Out hT, Out ws, int32_t bf16) {
  return h_forward<Cell>(x, wl, wi, b, h0, y, hT, ws, bf16, nullptr);
}

ffi::Error gru_forward_masked_ffi(In x, In wl, In wi, In b, In h0, In mask, Out y, Out hT, Out ws, int32_t bf16) {
  return h_forward<Gru>(x, wl, wi, b, h0, y, hT, ws, bf16, mask.typed_data());
}

template <class Cell>
ffi::Error h_backward(In x, In wl, In wi, In b, In h0, In y, In hT, In ws, In dy, In dhT, Out dx, Out dwl,
                      Out dwi, Out db, Out dh0, int32_t bf16, const float* mask) {
  auto d = x.dimensions();
  return ffi_status(backward<Cell>(d[0], d[1], d[2], h0.dimensions()[1], bf16, x.typed_data(), wl.typed_data(),
                                   wi.typed_data(), b.typed_data(), h0.typed_data(), nullptr, y.typed_data(),
                                   hT.typed_data(), nullptr, ws.typed_data(), dy.typed_data(), dhT.typed_data(),
                                   nullptr, dx->typed_data(), dwl->typed_data(), dwi->typed_data(),
                                   db->typed_data(), dh0->typed_data(), nullptr, mask));
}

template <class Cell>
ffi::Error h_backward_ffi(In x, In wl, In wi, In b, In h0, In y, In hT, In ws, In dy, In dhT, Out dx, Out dwl,
                          Out dwi, Out db, Out dh0, int32_t bf16) {
  return h_backward<Cell>(x, wl, wi, b, h0, y, hT, ws, dy, dhT, dx, dwl, dwi, db, dh0, bf16, nullptr);
}

ffi::Error gru_backward_masked_ffi(In x, In wl, In wi, In b, In h0, In y, In hT, In ws, In dy, In dhT, In mask,
                                   Out dx, Out dwl, Out dwi, Out db, Out dh0, int32_t bf16) {
  return h_backward<Gru>(x, wl, wi, b, h0, y, hT, ws, dy, dhT, dx, dwl, dwi, db, dh0, bf16, mask.typed_data());
}

auto h_forward_binding() {
  return ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Ret<In>().Ret<In>().Ret<In>()
      .Attr<int32_t>("bf16");
}

auto h_backward_binding() {
  return ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
      .Arg<In>().Arg<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Attr<int32_t>("bf16");
}
}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_lstm_forward_xla, forward_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Ret<In>().Ret<In>().Ret<In>().Ret<In>().Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_lstm_backward_xla, backward_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Ret<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>()
                                  .Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_lstm_forward_masked_xla, forward_masked_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Arg<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_lstm_backward_masked_xla, backward_masked_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Arg<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>().Ret<In>()
                                  .Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_gru_forward_masked_xla, gru_forward_masked_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Ret<In>().Ret<In>().Ret<In>().Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_gru_backward_masked_xla, gru_backward_masked_ffi,
                              ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>()
                                  .Arg<In>().Arg<In>().Arg<In>().Arg<In>().Arg<In>().Ret<In>().Ret<In>()
                                  .Ret<In>().Ret<In>().Ret<In>().Attr<int32_t>("bf16"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_gru_forward_xla, h_forward_ffi<Gru>, h_forward_binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_gru_backward_xla, h_backward_ffi<Gru>, h_backward_binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_rnn_forward_xla, h_forward_ffi<Rnn>, h_forward_binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_rnn_backward_xla, h_backward_ffi<Rnn>, h_backward_binding());
#endif
