#include "compress/quant/target.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>

#include "compress/quant/onebit.h"
#include "core/error.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_grid.h"
#include "model/group_weight.h"

namespace shrink::quant {

QuantTarget QuantTarget::of_block(DType t) {
  QuantTarget q;
  q.is_block = true;
  q.block = t;
  return q;
}

QuantTarget QuantTarget::parse(const std::string& s) {
  std::string lower = s;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "onebit" || lower == "ternary") {
    QuantTarget q;
    q.sign = lower == "onebit" ? Sign::OneBit : Sign::Ternary;
    return q;
  }
  std::optional<DType> t;
  try {
    t = parse_dtype(s);
  } catch (const Error&) {
    // not a dtype name: a group spec
  }
  if (t) {
    SHRINK_CHECK(*t == DType::F32 || *t == DType::F16 || *t == DType::BF16 || kernels::has_block_quantizer(*t),
                 "shrink cannot write ", dtype_name(*t), " blocks");
    return of_block(*t);
  }
  // A group spec throws its own error (bits, group, code) once the name reads like one.
  const bool group_like = lower.rfind("int", 0) == 0 || lower.rfind("nf", 0) == 0 || lower.rfind("fp", 0) == 0;
  SHRINK_CHECK(group_like, "unknown quantization type '", s,
               "': a ggml block type (q8_0, q6_k, q5_k, q5_0, q4_k, q4_0, q3_k, q2_k, iq4_nl, ...) or a group format "
               "(int4g128, int3g64sym, int8ch, nf4g64, fp8e4m3ch, ...)");
  QuantTarget q;
  q.spec = QuantSpec::parse(s);
  return q;
}

std::string QuantTarget::name() const {
  if (is_sign()) return sign == Sign::OneBit ? "onebit" : "ternary";
  return is_block ? std::string(dtype_name(block)) : spec.name();
}

bool QuantTarget::fits(int64_t cols) const {
  return !is_block || cols % dtype_traits(block).block_elems == 0;
}

int64_t QuantTarget::chunk(int64_t cols) const {
  if (is_sign()) return cols;  // the scales are fitted to the whole matrix
  if (is_block) return is_block_quantized(block) ? dtype_traits(block).block_elems : cols;
  return spec.group == -1 ? cols : spec.group_len(cols);
}

DType fallback_block_type(DType t, int64_t cols) {
  auto fits = [&](DType d) { return cols % dtype_traits(d).block_elems == 0; };
  if (fits(t)) return t;
  DType f = DType::F16;
  switch (t) {
    case DType::Q2_K: case DType::Q3_K: f = DType::Q4_0; break;
    case DType::Q4_K: f = DType::Q5_0; break;
    case DType::Q5_K: f = DType::Q5_1; break;
    case DType::Q6_K: f = DType::Q8_0; break;
    default: break;
  }
  return fits(f) ? f : DType::F16;
}

QuantTarget fit_target(const QuantTarget& t, int64_t cols) {
  if (!t.is_block || t.fits(cols)) return t;
  return QuantTarget::of_block(fallback_block_type(t.block, cols));
}

namespace {

kernels::SignCode sign_code(const QuantTarget& t) {
  return t.sign == QuantTarget::Sign::Ternary ? kernels::SignCode::Ternary : kernels::SignCode::Binary;
}

std::shared_ptr<WeightRepr> rtn_groups(const QuantSpec& spec, const Tensor& w, const float* importance) {
  const int64_t rows = w.dim(0), cols = w.dim(1), g = spec.group_len(cols);
  const Codebook cb(spec);
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  const bool per_tensor = spec.group == -1;
  const int64_t ng = per_tensor ? 1 : (cols + g - 1) / g;
  std::vector<float> scale(static_cast<size_t>(per_tensor ? 1 : rows * ng)), zero(scale.size());
  if (per_tensor) {
    const GroupParams p = choose_group_params(cb, spec, w.f32(), rows * cols, nullptr);
    scale[0] = p.scale, zero[0] = p.zero;
  }
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < ng; ++k) {
      const float* x = w.f32() + r * cols;
      const int64_t c0 = per_tensor ? 0 : k * g, n = per_tensor ? cols : std::min(g, cols - c0);
      GroupParams p{scale[0], zero[0]};
      if (!per_tensor) {
        p = choose_group_params(cb, spec, x + c0, n, importance ? importance + c0 : nullptr);
        scale[r * ng + k] = p.scale, zero[r * ng + k] = p.zero;
      }
      for (int64_t c = c0; c < c0 + n; ++c) codes[r * cols + c] = cb.encode(x[c], p);
    }
  return std::make_shared<GroupQuantWeight>(spec, rows, cols, codes, std::move(scale), std::move(zero));
}

}  // namespace

std::shared_ptr<WeightRepr> quantize_matrix(const QuantTarget& t, const Tensor& w, const float* importance) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "quantize_matrix needs a 2-D f32 matrix");
  if (t.is_sign()) return onebit_quantize(w, sign_code(t), importance);
  if (!t.is_block) return rtn_groups(t.spec, w, importance);
  if (t.is_dense()) return make_weight(w.to(t.block));
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SHRINK_CHECK(t.fits(cols), "rows of ", cols, " values do not split into ", dtype_name(t.block), " blocks");
  Tensor q = Tensor::alloc(t.block, {rows, cols});
  kernels::quantize_rows(t.block, w.f32(), q.data, rows, cols, importance);
  return make_weight(std::move(q));
}

// ------------------------------------------------------------ column quantizers

namespace {

// A ggml block type: choose() quantizes each row's block with ggml's quantizer
// (fixing its scales), round_column() snaps to that block's grid.
class BlockColumnQuantizer : public ColumnQuantizer {
 public:
  BlockColumnQuantizer(DType t, int64_t rows, int64_t cols)
      : t_(t), out_(Tensor::alloc(t, {rows, cols})), grids_(size_t(rows * (cols / dtype_traits(t).block_elems))),
        codes_(size_t(rows * cols)) {
    SHRINK_CHECK(kernels::has_block_grid(t), dtype_name(t), " has no affine grid: GPTQ cannot target it");
    rows_ = rows, cols_ = cols, chunk_ = dtype_traits(t).block_elems;
    row_bytes_ = dtype_bytes(t, cols);
  }
  void choose(const float* wt, int64_t c0, const float* importance) override {
    const int64_t nb = cols_ / chunk_, b = c0 / chunk_;
    std::vector<float> x(static_cast<size_t>(chunk_));
    for (int64_t r = 0; r < rows_; ++r) {
      for (int64_t j = 0; j < chunk_; ++j) x[j] = wt[(c0 + j) * rows_ + r];
      char* blk = block(r, b);
      kernels::quantize_row(t_, x.data(), blk, chunk_, importance ? importance + c0 : nullptr);
      kernels::block_grid(t_, blk, &grids_[r * nb + b]);
    }
  }
  void round_column(int64_t c, const float* w, float* q) override {
    const int64_t nb = cols_ / chunk_, b = c / chunk_;
    const int e = static_cast<int>(c % chunk_);
    for (int64_t r = 0; r < rows_; ++r) {
      const kernels::BlockGrid& g = grids_[r * nb + b];
      const int code = kernels::grid_code(g, e, w[r]);
      codes_[r * cols_ + c] = static_cast<uint8_t>(code);
      q[r] = kernels::grid_value(g, e, code);
    }
  }
  std::shared_ptr<WeightRepr> finish() override {
    const int64_t nb = cols_ / chunk_;
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t b = 0; b < nb; ++b) kernels::block_set_codes(t_, block(r, b), codes_.data() + r * cols_ + b * chunk_);
    return make_weight(std::move(out_));
  }

 private:
  char* block(int64_t r, int64_t b) {
    return static_cast<char*>(out_.data) + r * row_bytes_ + b * dtype_traits(t_).block_bytes;
  }
  DType t_;
  Tensor out_;
  int64_t row_bytes_ = 0;
  std::vector<kernels::BlockGrid> grids_;  // [row][block]
  std::vector<uint8_t> codes_;
};

class GroupColumnQuantizer : public ColumnQuantizer {
 public:
  GroupColumnQuantizer(const QuantSpec& spec, int64_t rows, int64_t cols) : spec_(spec), cb_(spec) {
    rows_ = rows, cols_ = cols, chunk_ = spec.group == -1 ? cols : spec.group_len(cols);
    ng_ = (cols + chunk_ - 1) / chunk_;
    const size_t np = spec.group == -1 ? 1 : size_t(rows * ng_);
    scale_.resize(np), zero_.resize(np), codes_.resize(size_t(rows * cols));
  }
  void choose(const float* wt, int64_t c0, const float* importance) override {
    const int64_t n = std::min(chunk_, cols_ - c0), k = c0 / chunk_;
    if (spec_.group == -1) {  // one range for the whole matrix (columns are contiguous: all of wt)
      const GroupParams p = choose_group_params(cb_, spec_, wt, rows_ * cols_, nullptr);
      scale_[0] = p.scale, zero_[0] = p.zero;
      return;
    }
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows_; ++r) {
      for (int64_t j = 0; j < n; ++j) x[j] = wt[(c0 + j) * rows_ + r];
      const GroupParams p = choose_group_params(cb_, spec_, x.data(), n, importance ? importance + c0 : nullptr);
      scale_[r * ng_ + k] = p.scale, zero_[r * ng_ + k] = p.zero;
    }
  }
  void round_column(int64_t c, const float* w, float* q) override {
    const int64_t k = c / chunk_;
    for (int64_t r = 0; r < rows_; ++r) {
      const size_t i = spec_.group == -1 ? 0 : size_t(r * ng_ + k);
      const GroupParams p{scale_[i], zero_[i]};
      const uint8_t code = cb_.encode(w[r], p);
      codes_[r * cols_ + c] = code;
      q[r] = cb_.decode(code, p);
    }
  }
  std::shared_ptr<WeightRepr> finish() override {
    return std::make_shared<GroupQuantWeight>(spec_, rows_, cols_, codes_, std::move(scale_), std::move(zero_));
  }

 private:
  QuantSpec spec_;
  Codebook cb_;
  int64_t ng_ = 0;
  std::vector<float> scale_, zero_;
  std::vector<uint8_t> codes_;
};

}  // namespace

std::unique_ptr<ColumnQuantizer> ColumnQuantizer::make(const QuantTarget& t, int64_t rows, int64_t cols) {
  SHRINK_CHECK(!t.is_dense(), "column quantization needs a quantized target, got ", t.name());
  SHRINK_CHECK(t.fits(cols), "rows of ", cols, " values do not split into ", t.name(), " blocks");
  if (t.is_sign()) return make_sign_column_quantizer(sign_code(t), rows, cols);
  if (t.is_block) return std::make_unique<BlockColumnQuantizer>(t.block, rows, cols);
  return std::make_unique<GroupColumnQuantizer>(t.spec, rows, cols);
}

}  // namespace shrink::quant
