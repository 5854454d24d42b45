// Benchmarks of the sign-matrix kernels (kernels/sign_gemv.h) behind OneBit
// and ternary weights: GEMV on llama-500m-like and teacher-9M shapes (weights/s
// and packed bytes/s; compare BM_Gemv's f32 figures on the same shapes), and
// sign_matmul() per token for small n (GEMV loop) and larger n (unpack + sgemm).
//   shrink_bench --benchmark_filter='Sign'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/sign_gemv.h"

namespace shrink::kernels {
namespace {

// Deterministic planes with zero padding bits (ternary: "+1" and "-1" never both set).
std::vector<uint64_t> random_planes(SignCode code, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(code, cols), wpr = sign_words_per_row(cols);
  std::vector<uint64_t> p(static_cast<size_t>(rows * rw));
  uint64_t s = 88172645463325252ull;
  auto next = [&] { return s ^= s << 13, s ^= s >> 7, s ^= s << 17; };
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < wpr; ++k) {
      const uint64_t valid = cols - 64 * k >= 64 ? ~0ull : (1ull << (cols - 64 * k)) - 1;
      if (code == SignCode::Binary) {
        p[r * rw + k] = next() & valid;
      } else {
        const uint64_t nz = (next() | next()) & valid, sign = next();  // 3/4 non-zero, split by sign
        p[r * rw + 2 * k] = nz & sign, p[r * rw + 2 * k + 1] = nz & ~sign;
      }
    }
  return p;
}

const char* code_name(SignCode c) { return c == SignCode::Binary ? "onebit" : "ternary"; }

void BM_SignGemv(benchmark::State& state) {
  const SignCode code = state.range(0) ? SignCode::Ternary : SignCode::Binary;
  const int64_t rows = state.range(1), cols = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto S = random_planes(code, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  for (auto _ : state) {
    sign_gemv_threads(code, S.data(), x.data(), y.data(), rows, cols, threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * int64_t(S.size()) * 8);
  state.counters["Gweights/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * rows * cols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(code_name(code)) + " " + sign_gemv_isa());
}
BENCHMARK(BM_SignGemv)
    ->ArgNames({"ternary", "rows", "cols", "threads"})
    ->ArgsProduct({{0, 1}, {4096}, {1536}, {1, 2}})
    ->ArgsProduct({{0, 1}, {1536}, {4096}, {1, 2}})
    ->ArgsProduct({{0, 1}, {768}, {256}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Prefill: n tokens against one 4096 x 1536 matrix through sign_matmul()
// (multi-token kernel up to a threshold, unpack + sgemm beyond); tokens/s.
void BM_SignMatmul(benchmark::State& state) {
  const SignCode code = state.range(0) ? SignCode::Ternary : SignCode::Binary;
  const int64_t n = state.range(1), rows = 4096, cols = 1536;
  const auto S = random_planes(code, rows, cols);
  std::vector<float> x(static_cast<size_t>(n * cols), 0.5f), y(static_cast<size_t>(n * rows));
  for (auto _ : state) {
    sign_matmul(code, S.data(), x.data(), y.data(), n, rows, cols);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);  // tokens
  state.SetLabel(code_name(code));
}
BENCHMARK(BM_SignMatmul)
    ->ArgNames({"ternary", "n"})
    ->ArgsProduct({{0, 1}, {1, 4, 16, 17, 64, 128, 129, 256}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The multi-token kernel alone on one thread (AVX-512 only), to set
// sign_matmul's kBatchMaxTokens against BM_SignMatmul's sgemm path.
void BM_SignTokens(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
    state.SkipWithError("needs AVX-512");
    return;
  }
  const SignCode code = state.range(0) ? SignCode::Ternary : SignCode::Binary;
  const int64_t n = state.range(1), rows = 4096, cols = 1536;
  const auto S = random_planes(code, rows, cols);
  std::vector<float> x(static_cast<size_t>(n * cols), 0.5f), y(static_cast<size_t>(n * rows));
  for (auto _ : state) {
    sign_tokens_avx512(code, S.data(), x.data(), n, y.data(), rows, rows, cols);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);  // tokens
  state.SetLabel(code_name(code));
}
BENCHMARK(BM_SignTokens)
    ->ArgNames({"ternary", "n"})
    ->ArgsProduct({{0, 1}, {1, 4, 16, 64, 256}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shrink::kernels
