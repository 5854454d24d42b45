// llama.cpp importance-matrix files ("imatrix"): the per-input-column mean of
// x^2 that each weight matrix saw on calibration text, which llama-quantize
// uses to weight its rounding error (ggml_quantize_chunk's `imatrix`). Both
// on-disk forms are read and written:
//
// GGUF imatrix (llama.cpp tools/imatrix/imatrix.cpp, IMatrixCollector::save_imatrix):
//   metadata  general.type = "imatrix" (string), imatrix.datasets (array of string: the
//             calibration files), imatrix.chunk_count (u32: chunks of text processed),
//             imatrix.chunk_size (u32: tokens per chunk, n_ctx / n_parallel)
//   tensors   for each weight W, in sorted name order, all F32:
//             "<W>.in_sum2"  ne = {cols, n_mat}: sum over tokens of x_c^2 (not normalised)
//             "<W>.counts"   ne = {1, n_mat}:    tokens seen, per matrix
//             (ggml writes n_dims = ggml_n_dims(), so a dense weight, n_mat = 1, has 1-D
//             tensors {cols} and {1}; n_mat > 1 is a MoE weight with one row per expert.)
//             Newer llama.cpp also writes "<W>.in_sum" (sum of x); readers ignore it, as we do.
//
// Legacy binary imatrix.dat (same file, save_imatrix_legacy; read by
// tools/quantize/quantize.cpp load_legacy_imatrix), little-endian:
//   int32 n_entries
//   n_entries x { int32 name_len, name bytes (no NUL), int32 ncall, int32 nval,
//                 float values[nval] }     values = (sum / count) * ncall,
//                                          ncall = ceil(count / chunk_size)
//   int32 last_chunk, int32 dataset_len, dataset bytes   (optional trailer)
// i.e. a legacy value is the mean x^2 scaled by the number of chunks; the
// quantizer divides by ncall again.
//
// Per-column importance, as llama-quantize computes it before passing it to
// ggml_quantize_chunk (quantize.cpp load_imatrix): GGUF sum / count per matrix
// (1.0 for a matrix with count 0: "never got any input"); legacy value / ncall
// (the raw value if ncall is 0).
//
// Keys are GGUF weight names ("blk.0.attn_q.weight", "output.weight"). A shrink
// Linear named "blk.0.attn_q" (model/transformer.cpp) owns the GGUF tensor
// "blk.0.attn_q.weight": imatrix_weight_name() adds the suffix.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shrink {

struct ImatrixEntry {
  // n_mat x cols values, matrix-major: the sum over observed tokens of x_c^2.
  std::vector<float> sum_sq;
  // n_mat counts: tokens observed by each matrix. For a matrix read from a
  // legacy file the unit is chunks (ncall) and sum_sq is the stored value, so
  // sum_sq / count is the mean either way.
  std::vector<float> counts;

  int64_t n_mat() const { return static_cast<int64_t>(counts.size()); }
  int64_t cols() const { return counts.empty() ? 0 : static_cast<int64_t>(sum_sq.size() / counts.size()); }
  bool operator==(const ImatrixEntry&) const = default;
};

struct ImportanceMatrix {
  std::map<std::string, ImatrixEntry> entries;  // by GGUF weight name
  std::vector<std::string> datasets;            // calibration files, oldest first
  int64_t chunk_count = 0;                      // chunks of calibration text processed
  int64_t chunk_size = 0;                       // tokens per chunk; 0 = unknown (legacy files)
  std::string path;                             // where it was read from (for messages); "" if built
  std::string format;                           // "gguf" or "legacy" when read
};

// Reads either format (GGUF by its magic, else legacy) and validates it:
// throws shrink::Error "<path>: <problem>" on truncation, absurd counts or
// sizes, NaN/Inf or negative values, negative counts, or sums and counts
// whose shapes disagree.
ImportanceMatrix read_imatrix(const std::string& path);

// Writers (atomic). GGUF writes sums and counts as they are; legacy converts
// to llama.cpp's scaled means (see above) and skips entries with no data.
void write_imatrix_gguf(const ImportanceMatrix& m, const std::string& path);
void write_imatrix_legacy(const ImportanceMatrix& m, const std::string& path);
// By extension: ".dat" -> legacy, ".gguf" -> GGUF; anything else is an error.
void write_imatrix(const ImportanceMatrix& m, const std::string& path);

// Per-column mean x^2 of one entry (n_mat x cols values), exactly what
// llama-quantize hands to ggml_quantize_chunk.
std::vector<float> imatrix_mean_sq(const ImatrixEntry& e);

// "blk.0.attn_q" -> "blk.0.attn_q.weight"; and back ("" when `weight_name`
// does not end in ".weight").
std::string imatrix_weight_name(const std::string& linear_name);
std::string imatrix_linear_name(const std::string& weight_name);

// Builds a matrix from per-Linear means of x^2 (what quant::collect_importance
// returns, keyed by Linear name), each observed over `tokens` tokens in chunks
// of `chunk_size`: sum = mean * tokens, count = tokens.
ImportanceMatrix imatrix_from_mean_sq(const std::map<std::string, std::vector<float>>& mean_sq_by_linear,
                                      int64_t tokens, int64_t chunk_size, std::vector<std::string> datasets);

// A Linear as the importance lookup sees it: its name and input width.
struct LinearShape {
  std::string name;  // shrink Linear name, e.g. "blk.0.attn_q", "output"
  int64_t cols = 0;  // in_features
};

// Per-column mean x^2 for each Linear, keyed by Linear name: the shape
// quant::collect_importance returns. A Linear with no entry is left out of
// the result and its name appended to *missing (llama-quantize then rounds
// that tensor without importance, as for output.weight, which llama-imatrix
// skips by default). Throws naming the file when an entry's column count
// differs from the Linear's, when an entry holds several matrices (MoE), or
// when no entry matches any Linear (an imatrix of another model).
std::map<std::string, std::vector<float>> imatrix_for_linears(const ImportanceMatrix& m,
                                                              const std::vector<LinearShape>& linears,
                                                              std::vector<std::string>* missing = nullptr);

}  // namespace shrink
