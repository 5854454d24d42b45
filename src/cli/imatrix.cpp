// shrink imatrix MODEL --calib FILE [--calib-tokens N --seq-len L] -o imatrix.gguf|imatrix.dat
// Computes llama.cpp's importance matrix (per input column of every block
// linear, the mean of x^2 over calibration tokens) and saves it in either of
// llama.cpp's formats (io/imatrix.h), for llama-quantize --imatrix or shrink.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "compress/calib/calib.h"
#include "compress/quant/quantize.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"
#include "io/imatrix.h"
#include "model/transformer.h"

namespace shrink::cli {

namespace {

struct ImatrixArgs {
  ModelArgs m;
  std::string calib_file, out;
  int64_t calib_tokens = 32768;
  int seq_len = 512;
};

bool has_ext(std::string path, const std::string& ext) {
  for (char& c : path) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
}

void run_imatrix(const ImatrixArgs& a) {
  const double t0 = now_seconds();
  // Fail on a bad output name before minutes of work.
  SHRINK_CHECK(has_ext(a.out, ".gguf") || has_ext(a.out, ".dat"), a.out,
               ": name the output .gguf (llama.cpp's current imatrix format) or .dat (the legacy format)");
  const std::filesystem::path dir = std::filesystem::absolute(a.out).parent_path();
  SHRINK_CHECK(is_directory(dir.string()), a.out, ": directory ", dir.string(), " does not exist");
  ModelFile f = open_model(a.m, true);
  const calib::CalibSet calib =
      calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
  const int64_t n_seqs = static_cast<int64_t>(calib.seqs.size());
  std::fprintf(stderr, "calibration: %lld sequences of %d tokens from %s\n", static_cast<long long>(n_seqs), a.seq_len,
               a.calib_file.c_str());
  if (a.seq_len > f.config.max_seq_len)
    std::fprintf(stderr, "warning: --seq-len %d is longer than the model's training context (%d tokens)\n", a.seq_len,
                 f.config.max_seq_len);
  Transformer model(f);

  // collect_importance runs whole sequences; feeding it a few at a time gives
  // progress lines. Its per-part means are re-weighted by tokens into sums.
  const int64_t step = std::max<int64_t>(1, n_seqs / 50);
  std::map<std::string, std::vector<double>> sums;
  int64_t tokens = 0;
  const double t1 = now_seconds();
  for (int64_t i = 0; i < n_seqs; i += step) {
    calib::CalibSet part;
    part.seqs.assign(calib.seqs.begin() + i, calib.seqs.begin() + std::min(n_seqs, i + step));
    const int64_t part_tokens = part.tokens();
    for (const auto& [name, mean] : quant::collect_importance(model, part)) {
      // Like llama-imatrix without --process-output, only the blocks' linears are
      // kept. (collect_importance sees the head on each sequence's last token only.)
      if (name == model.output().name()) continue;
      std::vector<double>& s = sums[name];
      s.resize(mean.size());
      for (size_t c = 0; c < mean.size(); ++c) s[c] += double(mean[c]) * double(part_tokens);
    }
    tokens += part_tokens;
    const double dt = now_seconds() - t1, rate = tokens / std::max(dt, 1e-9);
    char buf[160];
    std::snprintf(buf, sizeof buf, "imatrix: %lld/%lld sequences, %.0f tokens/s, ETA %.0f s",
                  static_cast<long long>(std::min(n_seqs, i + step)), static_cast<long long>(n_seqs), rate,
                  double(calib.tokens() - tokens) / rate);
    progress_line(buf, tokens == calib.tokens());
  }

  std::map<std::string, std::vector<float>> mean_sq;
  for (const auto& [name, s] : sums) {
    std::vector<float>& m = mean_sq[name];
    m.resize(s.size());
    for (size_t c = 0; c < s.size(); ++c) m[c] = float(s[c] / double(tokens));
  }
  const ImportanceMatrix im = imatrix_from_mean_sq(mean_sq, tokens, a.seq_len, {a.calib_file});
  write_imatrix(im, a.out);
  std::printf("wrote %s (%s): %zu entries, %lld tokens in %lld chunks of %d, %.1f s\n", a.out.c_str(),
              has_ext(a.out, ".dat") ? "legacy imatrix.dat" : "GGUF imatrix", im.entries.size(),
              static_cast<long long>(tokens), static_cast<long long>(im.chunk_count), a.seq_len,
              now_seconds() - t0);
}

}  // namespace

void add_imatrix(CLI::App& app) {
  auto a = std::make_shared<ImatrixArgs>();
  auto* cmd = app.add_subcommand(
      "imatrix",
      "Compute a llama.cpp importance matrix (per input column of each block linear, the mean of x^2 over "
      "calibration text) and save it for llama-quantize --imatrix or shrink quantize");
  cmd->footer(
      "The text is cut into back-to-back windows of --seq-len tokens, each starting with BOS (llama-imatrix's\n"
      "chunks); every token of every window counts. As llama-imatrix does by default, the output head is left\n"
      "out. Output format by extension: .gguf = llama.cpp's GGUF imatrix (in_sum2/counts tensors, imatrix.*\n"
      "metadata), .dat = the legacy binary imatrix.dat. Keys are GGUF tensor names (blk.N.attn_q.weight).");
  add_model_args(cmd, a->m);
  cmd->add_option("--calib", a->calib_file, "Calibration text")->required()->check(CLI::ExistingFile);
  cmd->add_option("--calib-tokens", a->calib_tokens, "Calibration tokens to use (at most what the text holds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", a->seq_len, "Tokens per window (llama-imatrix -c)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("-o,--output", a->out, "Output: imatrix.gguf or imatrix.dat")->required();
  cmd->callback([a] { run_imatrix(*a); });
}

}  // namespace shrink::cli
