// compressed-tensors "pack-quantized" weights (the format llm-compressor
// writes and vLLM / transformers load) <-> shrink's canonical tensors.
//
// Conventions, as read in the compressed-tensors sources (vllm-project/
// compressed-tensors: compressors/quantized_compressors/pack_quantized.py,
// base.py, quantization/utils/helpers.py, lifecycle/initialize.py, quant_args.py):
//   - Integer codes are signed, q in [-2^(b-1), 2^(b-1) - 1]; value = scale * (q - zp).
//     Symmetric: zp = 0 and scale = max|x| / ((2^b - 1) / 2); asymmetric:
//     scale = (max - min) / (2^b - 1), zp = round(-2^(b-1) - min / scale) (signed).
//   - pack_to_int32 adds 2^(b-1) to every code and packs 32 // b of them per int32
//     (code i of a word in bits [b*i, b*(i+1)); a row is zero-padded to whole
//     words; b = 3, 5, 6, 7 leave the top 2/2/2/4 bits of each word unused).
//     weight_packed is I32 {out, ceil(in / (32 // b))}.
//   - weight_scale has the model's dtype: {out, ceil(in / group_size)} (group),
//     {out, 1} (channel), {1} (tensor).
//   - weight_zero_point is written only when asymmetric; for group and channel
//     strategies it is packed the same way along dim 0 (offset by 2^(b-1)):
//     I32 {ceil(out / (32 // b)), n_groups}; for "tensor" it stays unpacked
//     (zp_dtype, int8 for int codes).
//   - weight_shape is the original {out, in} (torch.tensor(shape): I64).
//   - config.json "quantization_config": {quant_method: "compressed-tensors",
//     format: "pack-quantized", config_groups: {name: {targets, weights: {num_bits,
//     type: "int", symmetric, strategy, group_size, ...}}}, ignore: [...]}.
//     Targets are class names ("Linear"), exact module names, or "re:" regexes
//     (matched from the start of the name). The weights object forbids unknown keys.
// So an offset code is shrink's code (GroupQuantWeight: value = scale * (code -
// zero), symmetric zero = 2^(b-1)) and an offset zero point is shrink's zero:
// nothing is recoded, only the zero points are (un)packed.
//
// Not representable, refused with an error: float codebooks (NF4, FP4, FP8 —
// compressed-tensors stores FP8 as "float-quantized" and FP4 as "nvfp4-pack-
// quantized", different layouts), non-integer or out-of-range zero points,
// activation-order group indices (weight_g_idx), activation quantization
// (except W8A8, below).
//
// W8A8 (weights and activations int8) is the "int-quantized" format (llm-
// compressor's W8A8 preset, compressed-tensors quant_scheme.py INT8_W8A8;
// int-quantized is an alias of naive-quantized: the codes are stored unpacked
// in the weight's own name; vLLM loads it as CompressedTensorsW8A8Int8):
//   base.weight         I8 {out, in}; value = weight_scale[row] * q (symmetric)
//   base.weight_scale   float {out, 1} (strategy "channel")
//   base.input_scale    float {1}: static activations (strategy "tensor",
//                       dynamic false); absent for per-token (strategy
//                       "token", dynamic true), scaled by each row's absmax
//   config group: weights {num_bits: 8, type: int, symmetric: true, strategy:
//   channel, dynamic: false}, input_activations {num_bits: 8, type: int,
//   symmetric: true, strategy: token|tensor, dynamic: true|false}.
// LLM.int8() has no compressed-tensors form: shrink writes it as per-token
// W8A8 plus config.json "shrink_outlier_threshold" (a top-level key, since
// compressed-tensors' own objects may forbid unknown keys), which shrink's
// loader honours and other loaders ignore (they run plain per-token W8A8).
//
// Canonical form in a ModelFile (q/k rows interleaved like every canonical
// weight; the HF reader/writer permutes and (un)packs): a linear "base"
// (e.g. "blk.0.attn_q") listed in ModelFile::packed has, instead of base.weight,
//   base.weight_packed      I32 {rows, ceil(cols / (32 / bits))}  (as in the file)
//   base.weight_scale       F32/F16/BF16 {rows, n_groups}, or {1} per tensor
//   base.weight_zero_point  I32 {rows, n_groups} or {1}: the offset (unsigned)
//                           zero, 0..2^bits-1; asymmetric only
//   base.weight_shape       I64 {2}: {rows, cols}
// and an int-quantized linear listed in ModelFile::int8 has the file's
// tensors (base.weight I8, base.weight_scale, base.input_scale).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace shrink {

// The weight scheme of one pack-quantized linear.
struct PackedScheme {
  int bits = 4;
  int64_t group = 128;  // > 0: strategy "group" with this group_size; 0: "channel"; -1: "tensor"
  bool symmetric = false;
  bool operator==(const PackedScheme&) const = default;
  std::string name() const;  // "int4g128", "int8ch sym", ... for messages
  int64_t n_groups(int64_t cols) const { return group > 0 ? (cols + group - 1) / group : 1; }
};

// The W8A8 scheme of one int-quantized linear (weights: int8 symmetric per channel).
struct Int8Scheme {
  bool static_input = false;    // one stored input_scale; else per-token scales at run time
  float outlier_threshold = 0;  // > 0: LLM.int8() (shrink-specific, per-token only)
  bool operator==(const Int8Scheme&) const = default;
  std::string name() const;  // "w8a8 static", "w8a8 per-token", "llm.int8"
};

// Suffixes of the tensors that accompany (or, for weight_packed, replace) a
// quantized linear's weight.
inline constexpr const char* kPackedSuffixes[] = {"weight_packed", "weight_scale", "weight_zero_point", "weight_shape",
                                                  "weight_g_idx",  "input_scale",  "input_zero_point"};

// "x.weight_scale" -> {"x", "weight_scale"}; nullopt when the name has none of kPackedSuffixes.
std::optional<std::pair<std::string, std::string>> split_packed_name(const std::string& name);

// The {rows, cols} a weight_shape tensor (I32 or I64 {2}) holds; checked.
std::vector<int64_t> packed_weight_shape(const Tensor& t, const std::string& what);

// Checks the canonical tensors of packed linear `base` against its scheme
// (shapes, dtypes, zero range) and returns {rows, cols}.
std::vector<int64_t> check_packed_linear(const std::map<std::string, Tensor>& tensors, const std::string& base,
                                         const PackedScheme& s, const std::string& src);

// Checks the tensors of int-quantized linear `base` against its scheme and
// returns {rows, cols}.
std::vector<int64_t> check_int8_linear(const std::map<std::string, Tensor>& tensors, const std::string& base,
                                       const Int8Scheme& s, const std::string& src);

// weight_zero_point, canonical {rows, G} (unsigned) <-> the file's form:
// packed along dim 0 for group/channel, signed I8 {1} for tensor.
Tensor ct_zero_point_to_file(const Tensor& canon, const PackedScheme& s);
Tensor ct_zero_point_from_file(const Tensor& file, const PackedScheme& s, int64_t rows, const std::string& what);
// The file shape ct_zero_point_to_file produces.
std::vector<int64_t> ct_zero_point_file_shape(const std::vector<int64_t>& canon_shape, const PackedScheme& s);

// The dtype a weight_scale is written in: the model's dtype when every scale
// survives the round trip through it (then loading gives the same weights),
// else F32.
DType ct_scale_dtype(const Tensor& scale, DType model_dtype);

// config.json's "quantization_config" for packed and int-quantized modules
// (HF module name -> scheme; one scheme: targets ["Linear"], several: one
// group per scheme naming its modules; both formats: "mixed-precision" with a
// format per group) and the dense Linear modules to leave alone.
nlohmann::json ct_quantization_config(const std::map<std::string, PackedScheme>& modules,
                                      const std::vector<std::string>& ignore,
                                      const std::map<std::string, Int8Scheme>& int8_modules = {});
// The scheme of each packed module (HF names) under quantization_config qc;
// throws for other formats, unsupported arguments and modules no group targets.
std::map<std::string, PackedScheme> ct_resolve_schemes(const nlohmann::json& qc,
                                                       const std::vector<std::string>& modules,
                                                       const std::string& src);
// The same for int-quantized (W8A8) modules; outlier_threshold is left 0
// (it is not part of quantization_config).
std::map<std::string, Int8Scheme> ct_resolve_int8_schemes(const nlohmann::json& qc,
                                                         const std::vector<std::string>& modules,
                                                         const std::string& src);

}  // namespace shrink
