// bfloat16 products for rnnlm's kernels: the rounding rnnlm's bf16 graphs use, and oneDNN's bf16 GEMMs
// (float32 accumulation) -- on AMX tiles through oneDNN's matmul primitive where the CPU has them.
// Included by output_dnnl.cc and rnn_own.cc.
#pragma once

#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <tuple>

// oneDNN's GEMM with bfloat16 A and B and float32 C: exported by libdnnl (DNNL_API, src/common/gemm.cpp;
// its benchdnn calls it) but declared in no public header of oneDNN 3.2.  dnnl_sgemm's signature otherwise.
extern "C" dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
                                               float alpha, const uint16_t* A, dnnl_dim_t lda, const uint16_t* B,
                                               dnnl_dim_t ldb, float beta, float* C, dnnl_dim_t ldc);

namespace rnnlm {

// The one oneDNN CPU engine of the library (its kernels and its layers).
inline dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

using bf16_t = uint16_t;  // bfloat16's bits

// Where the CPU has AMX, oneDNN's matmul primitive runs the bf16 products on its tiles (brg:avx512_core_amx),
// where gemm_bf16bf16f32 ran the logits' product at half that rate (2 vCPUs of a Xeon with AMX, a chunk of
// 256·128·8000: logits 0.57 against 1.26 ms, dh and dW 0.39 against 0.49–0.53).  One primitive per shape,
// made on first use and kept (a chunk's shapes repeat every step).
inline bool amx() {
  constexpr auto tiles = dnnl_cpu_isa_avx512_core_amx;
  static const bool yes = (dnnl_get_effective_cpu_isa() & tiles) == tiles;
  return yes;
}

// Where oneDNN has bfloat16 instructions (avx512_bf16's dot products, or AMX).
inline bool bf16_isa() {
  constexpr auto dot = dnnl_cpu_isa_avx512_core_bf16;
  static const bool yes = (dnnl_get_effective_cpu_isa() & dot) == dot;
  return yes;
}

inline void amx_gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const bf16_t* A, int64_t lda,
                     const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  using dnnl::memory;
  using Key = std::tuple<char, char, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float>;
  struct Product {
    memory::desc a, b, c;
    dnnl::matmul mm;
  };
  static std::mutex mu;
  dnnl::engine& eng = cpu_engine();
  static dnnl::stream st(eng);
  static std::map<Key, Product> made;
  std::lock_guard<std::mutex> lock(mu);
  auto it = made.find(Key{ta, tb, M, N, K, lda, ldb, ldc, beta});
  if (it == made.end()) {
    // a transposed operand is the same memory with its strides swapped
    const memory::desc a({M, K}, memory::data_type::bf16, ta == 'N' ? memory::dims{lda, 1} : memory::dims{1, lda});
    const memory::desc b({K, N}, memory::data_type::bf16, tb == 'N' ? memory::dims{ldb, 1} : memory::dims{1, ldb});
    const memory::desc c({M, N}, memory::data_type::f32, memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (beta != 0.0f) {  // C = A·B + beta·C
      dnnl::post_ops sum;
      sum.append_sum(beta);
      attr.set_post_ops(sum);
    }
    const dnnl::matmul::primitive_desc pd(eng, a, b, c, attr);
    it = made.emplace(Key{ta, tb, M, N, K, lda, ldb, ldc, beta}, Product{a, b, c, dnnl::matmul(pd)}).first;
  }
  const Product& p = it->second;
  p.mm.execute(st, {{DNNL_ARG_SRC, memory(p.a, eng, const_cast<bf16_t*>(A))},
                    {DNNL_ARG_WEIGHTS, memory(p.b, eng, const_cast<bf16_t*>(B))},
                    {DNNL_ARG_DST, memory(p.c, eng, C)}});
  st.wait();
}

// C = alpha·A·B + beta·C, row-major, the operands given by their first element and row stride (dnnl_sgemm's
// convention): bfloat16 operands on AMX or with gemm_bf16bf16f32, float32 ones with dnnl_sgemm.
inline void gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const bf16_t* A, int64_t lda,
                 const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (amx()) return amx_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
  if (dnnl_gemm_bf16bf16f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) != dnnl_success)
    throw std::runtime_error("dnnl_gemm_bf16bf16f32 failed");
}

inline void gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc, float alpha = 1.0f) {
  if (dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != dnnl_success)
    throw std::runtime_error("dnnl_sgemm failed");
}

// float32 -> bfloat16, to nearest with ties to even; a NaN stays a NaN (rounding its bits could carry
// into the exponent and make it an infinity or a zero).
inline bf16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t((u >> 16) | 0x40u);
  return bf16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline void to_bf16(const float* x, bf16_t* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i]);
}

}  // namespace rnnlm
