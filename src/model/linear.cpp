#include "model/linear.h"

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/ops.h"
#include <cstdlib>
#include <optional>
#include <vector>

#include "kernels/repack_x16.h"
#include "kernels/qdot.h"

namespace shrink {

DenseWeight::DenseWeight(Tensor w) : w_(std::move(w)) {
  SHRINK_CHECK(w_.ndim() == 2, "a dense weight must be 2-D, got ", shape_str(w_.shape));
  SHRINK_CHECK(w_.dtype == DType::F32 || w_.dtype == DType::F16 || w_.dtype == DType::BF16,
               "dense weights must be f32, f16 or bf16, got ", dtype_name(w_.dtype));
}

void DenseWeight::matmul(const float* x, float* y, int64_t n) const {
  kernels::matmul(w_.dtype, w_.data, x, y, n, w_.dim(0), w_.dim(1));
}

std::string DenseWeight::kind() const { return std::string(dtype_name(w_.dtype)); }

BlockWeight::BlockWeight(Tensor w) : w_(std::move(w)) {
  SHRINK_CHECK(w_.ndim() == 2, "a block-quantized weight must be 2-D, got ", shape_str(w_.shape));
  SHRINK_CHECK(is_block_quantized(w_.dtype), dtype_name(w_.dtype), " is not a block-quantized type");
  SHRINK_CHECK(w_.dim(1) % dtype_traits(w_.dtype).block_elems == 0, "rows of ", w_.dim(1), " values do not split into ",
               dtype_name(w_.dtype), " blocks of ", dtype_traits(w_.dtype).block_elems);
}

const std::vector<uint8_t>& BlockWeight::repacked() const {
  std::call_once(repack_once_, [&] {
    const int64_t rows = w_.dim(0), cols = w_.dim(1);
    if (!kernels::x16_supported(w_.dtype) || rows < kernels::kX16Rows || !kernels::x16_available()) return;
    // Opt-in until it pays: measured slower than the ggml layout when streaming from DRAM (docs/quantization.md).
    if (const char* on = std::getenv("SHRINK_REPACK"); !on || !*on || *on == '0') return;
    repacked_.resize(static_cast<size_t>(kernels::x16_bytes(w_.dtype, rows, cols)));
    kernels::x16_repack(w_.dtype, w_.data, rows, cols, repacked_.data());
  });
  return repacked_;
}

void BlockWeight::matmul(const float* x, float* y, int64_t n) const {
  if (n == 1 && !repacked().empty()) {
    const int64_t rows = w_.dim(0), cols = w_.dim(1), tiled = rows / kernels::kX16Rows * kernels::kX16Rows;
    kernels::x16_gemv(w_.dtype, repacked_.data(), x, y, tiled, cols);
    if (tiled < rows)
      kernels::qgemv(w_.dtype, static_cast<const char*>(w_.data) + tiled * dtype_bytes(w_.dtype, cols), x, y + tiled,
                     rows - tiled, cols);
    return;
  }
  if (kernels::qdot_supported(w_.dtype)) {
    kernels::qmatmul(w_.dtype, w_.data, x, y, n, w_.dim(0), w_.dim(1));
    return;
  }
  // Types without a dot kernel (IQ4_NL): widen row panels to f32 and multiply.
  const int64_t rows = w_.dim(0), cols = w_.dim(1), panel = 64;
  const int64_t row_bytes = dtype_bytes(w_.dtype, cols);
  std::vector<float> wf(panel * cols), yp(n * panel);
  for (int64_t r0 = 0; r0 < rows; r0 += panel) {
    const int64_t nr = std::min(panel, rows - r0);
    convert_to_f32(w_.dtype, static_cast<const char*>(w_.data) + r0 * row_bytes, wf.data(), nr * cols);
    kernels::matmul(DType::F32, wf.data(), x, yp.data(), n, nr, cols);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < nr; ++r) y[t * rows + r0 + r] = yp[t * nr + r];
  }
}

std::shared_ptr<WeightRepr> make_weight(Tensor w) {
  if (is_block_quantized(w.dtype)) return std::make_shared<BlockWeight>(std::move(w));
  return std::make_shared<DenseWeight>(std::move(w));
}

Linear::Linear(std::string name, std::shared_ptr<WeightRepr> weight, Tensor bias)
    : name_(std::move(name)), weight_(std::move(weight)), bias_(std::move(bias)) {
  SHRINK_CHECK(weight_, name_, ": Linear without a weight");
  if (!bias_.empty())
    SHRINK_CHECK(bias_.dtype == DType::F32 && bias_.numel() == weight_->out_features(), name_, ": bias of shape ",
                 shape_str(bias_.shape), " does not match ", weight_->out_features(), " outputs");
}

Linear Linear::dense(std::string name, Tensor weight, const Tensor* bias) {
  Tensor b;
  if (bias) b = bias->dtype == DType::F32 ? *bias : bias->to(DType::F32);
  return Linear(std::move(name), make_weight(std::move(weight)), std::move(b));
}

void Linear::forward(const float* x, float* y, int64_t n) const {
  weight_->matmul(x, y, n);
  if (!bias_.empty()) kernels::add_bias(y, bias_.f32(), n, out_features());
}

namespace {
// How a single-token product of this Linear can share a kernel pass with others: its weight's ggml
// type, and whether it reads the repacked copy (then only with whole groups of 16 rows). None for
// dense weights and types without a dot kernel.
struct SharedPass {
  DType type;
  bool repacked;
  bool operator==(const SharedPass&) const = default;
};
std::optional<SharedPass> shared_pass(const Linear& l) {
  const auto* b = dynamic_cast<const BlockWeight*>(&l.weight());
  if (!b || !kernels::qdot_supported(b->tensor().dtype)) return std::nullopt;
  if (!b->decodes_repacked()) return SharedPass{b->tensor().dtype, false};
  if (b->tensor().dim(0) % kernels::kX16Rows) return std::nullopt;
  return SharedPass{b->tensor().dtype, true};
}

// One kernel pass of the Linears `members` of ls (all of pass's kind) on x.
void run_pass(SharedPass pass, const std::vector<const Linear*>& ls, const std::vector<size_t>& members, const float* x,
              const std::vector<float*>& ys) {
  const int64_t cols = ls[members[0]]->in_features();
  if (pass.repacked) {
    std::vector<kernels::X16Part> parts;
    for (size_t j : members)
      parts.push_back({static_cast<const BlockWeight&>(ls[j]->weight()).repacked().data(), ys[j], ls[j]->out_features()});
    kernels::x16_gemv_parts(pass.type, parts.data(), static_cast<int>(parts.size()), x, cols);
  } else {
    std::vector<kernels::QGemvPart> parts;
    for (size_t j : members)
      parts.push_back({static_cast<const BlockWeight&>(ls[j]->weight()).tensor().data, ys[j], ls[j]->out_features()});
    kernels::qgemv_parts(pass.type, parts.data(), static_cast<int>(parts.size()), x, cols);
  }
  for (size_t j : members)
    if (!ls[j]->bias().empty()) kernels::add_bias(ys[j], ls[j]->bias().f32(), 1, ls[j]->out_features());
}
}  // namespace

void forward_shared_input(const std::vector<const Linear*>& ls, const float* x, const std::vector<float*>& ys, int64_t n) {
  SHRINK_CHECK(ls.size() == ys.size(), "forward_shared_input: ", ls.size(), " Linears but ", ys.size(), " outputs");
  for (const Linear* l : ls)
    SHRINK_CHECK(l->in_features() == ls[0]->in_features(), "forward_shared_input: ", l->name(), " reads ",
                 l->in_features(), " values, ", ls[0]->name(), " ", ls[0]->in_features());
  // One pass per kind (ggml type, layout) among them (a Q4_K_M mix runs q/k as one and a Q6_K v
  // alone); the rest one by one.
  std::vector<bool> done(ls.size(), false);
  for (size_t i = 0; i < ls.size(); ++i) {
    if (done[i]) continue;
    const std::optional<SharedPass> pass = n == 1 ? shared_pass(*ls[i]) : std::nullopt;
    if (!pass) {
      ls[i]->forward(x, ys[i], n);
      continue;
    }
    std::vector<size_t> members;
    for (size_t j = i; j < ls.size(); ++j)
      if (!done[j] && shared_pass(*ls[j]) == pass) {
        members.push_back(j);
        done[j] = true;
      }
    run_pass(*pass, ls, members, x, ys);
  }
}

}  // namespace shrink
