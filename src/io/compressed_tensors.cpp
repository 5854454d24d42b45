// compressed_tensors.h: the pack-quantized layout checks, zero-point
// (un)packing and quantization_config (see the header for the conventions and
// where they come from).
#include "io/compressed_tensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"

namespace shrink {

using json = nlohmann::json;

std::string PackedScheme::name() const {
  std::string s = "int";
  s += std::to_string(bits);
  if (group > 0) {
    s += 'g';
    s += std::to_string(group);
  } else {
    s += group == 0 ? "ch" : "t";
  }
  s += symmetric ? " sym" : " asym";
  return s;
}

std::string Int8Scheme::name() const {
  if (outlier_threshold > 0) return "llm.int8";
  return static_input ? "w8a8 static" : "w8a8 per-token";
}

std::optional<std::pair<std::string, std::string>> split_packed_name(const std::string& name) {
  for (const char* suffix : kPackedSuffixes) {
    const size_t n = std::strlen(suffix);
    if (name.size() > n + 1 && name.compare(name.size() - n, n, suffix) == 0 && name[name.size() - n - 1] == '.')
      return std::make_pair(name.substr(0, name.size() - n - 1), std::string(suffix));
  }
  return std::nullopt;
}

namespace {

int64_t pack_factor(int bits) { return 32 / bits; }

int64_t int_at(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::I8: return t.ptr<const int8_t>()[i];
    case DType::I16: return t.ptr<const int16_t>()[i];
    case DType::I32: return t.ptr<const int32_t>()[i];
    case DType::I64: return t.ptr<const int64_t>()[i];
    default: fail("internal: int_at on ", dtype_name(t.dtype));
  }
}

bool is_int(DType t) { return t == DType::I8 || t == DType::I16 || t == DType::I32 || t == DType::I64; }

const Tensor& need(const std::map<std::string, Tensor>& tensors, const std::string& name, const std::string& src) {
  const auto it = tensors.find(name);
  SHRINK_CHECK(it != tensors.end(), src, ": packed linear is missing tensor '", name, "'");
  return it->second;
}

}  // namespace

std::vector<int64_t> packed_weight_shape(const Tensor& t, const std::string& what) {
  SHRINK_CHECK(is_int(t.dtype) && t.numel() == 2, what, ": weight_shape must be 2 integers, got ",
               dtype_name(t.dtype), " ", shape_str(t.shape));
  const int64_t rows = int_at(t, 0), cols = int_at(t, 1);
  SHRINK_CHECK(rows > 0 && cols > 0 && rows <= (int64_t(1) << 31) && cols <= (int64_t(1) << 31), what,
               ": weight_shape [", rows, ", ", cols, "] is not a valid matrix shape");
  return {rows, cols};
}

std::vector<int64_t> check_packed_linear(const std::map<std::string, Tensor>& tensors, const std::string& base,
                                         const PackedScheme& s, const std::string& src) {
  SHRINK_CHECK(s.bits >= 2 && s.bits <= 8, src, ": ", base, ": ", s.bits, "-bit codes are not supported (2..8)");
  const std::vector<int64_t> shape = packed_weight_shape(need(tensors, base + ".weight_shape", src), src + ": " + base);
  const int64_t rows = shape[0], cols = shape[1], G = s.n_groups(cols);
  const Tensor& packed = need(tensors, base + ".weight_packed", src);
  const std::vector<int64_t> want = {rows, (cols + pack_factor(s.bits) - 1) / pack_factor(s.bits)};
  SHRINK_CHECK(packed.dtype == DType::I32 && packed.shape == want, src, ": ", base, ".weight_packed is ",
               dtype_name(packed.dtype), " ", shape_str(packed.shape), " but weight_shape [", rows, ", ", cols, "] at ",
               s.bits, " bits needs I32 ", shape_str(want));
  const Tensor& scale = need(tensors, base + ".weight_scale", src);
  const bool float_scale = scale.dtype == DType::F32 || scale.dtype == DType::F16 || scale.dtype == DType::BF16;
  const bool scale_ok = s.group == -1 ? scale.numel() == 1 : scale.shape == std::vector<int64_t>{rows, G};
  SHRINK_CHECK(float_scale && scale_ok, src, ": ", base, ".weight_scale is ", dtype_name(scale.dtype), " ",
               shape_str(scale.shape), "; ", s.name(), " of [", rows, ", ", cols, "] needs a float ",
               s.group == -1 ? std::string("[1]") : shape_str({rows, G}));
  SHRINK_CHECK(all_finite(scale), src, ": ", base, ".weight_scale has NaN or Inf values");
  SHRINK_CHECK(!tensors.count(base + ".weight_g_idx"), src, ": ", base,
               ".weight_g_idx: activation-order group indices are not supported");
  const auto zit = tensors.find(base + ".weight_zero_point");
  if (s.symmetric) {
    SHRINK_CHECK(zit == tensors.end(), src, ": ", base, ": symmetric scheme with a zero point tensor");
    return shape;
  }
  SHRINK_CHECK(zit != tensors.end(), src, ": asymmetric ", base, " has no weight_zero_point");
  const Tensor& z = zit->second;
  SHRINK_CHECK(z.dtype == DType::I32 && z.numel() == scale.numel() && z.ndim() == scale.ndim(), src, ": ", base,
               ".weight_zero_point is ", dtype_name(z.dtype), " ", shape_str(z.shape),
               ", expected I32 like the scales");
  const int32_t maxq = (1 << s.bits) - 1;
  for (int64_t i = 0; i < z.numel(); ++i)
    SHRINK_CHECK(z.ptr<const int32_t>()[i] >= 0 && z.ptr<const int32_t>()[i] <= maxq, src, ": ", base,
                 ".weight_zero_point: zero ", z.ptr<const int32_t>()[i], " is outside 0..", maxq);
  return shape;
}

std::vector<int64_t> check_int8_linear(const std::map<std::string, Tensor>& tensors, const std::string& base,
                                       const Int8Scheme& s, const std::string& src) {
  const Tensor& w = need(tensors, base + ".weight", src);
  SHRINK_CHECK(w.dtype == DType::I8 && w.ndim() == 2 && w.dim(0) > 0 && w.dim(1) > 0, src, ": ", base,
               ".weight of an int-quantized linear must be I8 [out, in], got ", dtype_name(w.dtype), " ",
               shape_str(w.shape));
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const Tensor& scale = need(tensors, base + ".weight_scale", src);
  const bool float_scale = scale.dtype == DType::F32 || scale.dtype == DType::F16 || scale.dtype == DType::BF16;
  const bool shape_ok = scale.shape == std::vector<int64_t>{rows, 1} || scale.shape == std::vector<int64_t>{rows};
  SHRINK_CHECK(float_scale && shape_ok, src, ": ", base, ".weight_scale is ", dtype_name(scale.dtype), " ",
               shape_str(scale.shape), "; int8 per-channel weights of [", rows, ", ", cols, "] need a float [", rows,
               ", 1]");
  SHRINK_CHECK(all_finite(scale), src, ": ", base, ".weight_scale has NaN or Inf values");
  SHRINK_CHECK(!tensors.count(base + ".weight_g_idx"), src, ": ", base,
               ".weight_g_idx: activation-order group indices are not supported");
  const auto in = tensors.find(base + ".input_scale");
  if (!s.static_input) {
    SHRINK_CHECK(in == tensors.end(), src, ": ", base,
                 ".input_scale is stored but the scheme's activations are dynamic (per token)");
    return {rows, cols};
  }
  SHRINK_CHECK(in != tensors.end(), src, ": ", base, ": static activations need an input_scale tensor");
  const Tensor& x = in->second;
  const bool x_float = x.dtype == DType::F32 || x.dtype == DType::F16 || x.dtype == DType::BF16;
  SHRINK_CHECK(x_float && x.numel() == 1, src, ": ", base, ".input_scale must be one float, got ",
               dtype_name(x.dtype), " ", shape_str(x.shape));
  const float v = x.to(DType::F32).f32()[0];
  SHRINK_CHECK(std::isfinite(v) && v > 0, src, ": ", base, ".input_scale ", v, " is not a positive number");
  return {rows, cols};
}

// ---------------------------------------------------------------- zero points

std::vector<int64_t> ct_zero_point_file_shape(const std::vector<int64_t>& canon_shape, const PackedScheme& s) {
  if (s.group == -1) return {1};
  SHRINK_CHECK(canon_shape.size() == 2, "zero point: expected a 2-D tensor, got ", shape_str(canon_shape));
  return {(canon_shape[0] + pack_factor(s.bits) - 1) / pack_factor(s.bits), canon_shape[1]};
}

Tensor ct_zero_point_to_file(const Tensor& canon, const PackedScheme& s) {
  SHRINK_CHECK(canon.dtype == DType::I32, "zero point: expected I32, got ", dtype_name(canon.dtype));
  const int32_t offset = 1 << (s.bits - 1);
  if (s.group == -1) {  // "tensor": unpacked, signed, zp_dtype int8
    Tensor t = Tensor::alloc(DType::I8, {1});
    t.ptr<int8_t>()[0] = static_cast<int8_t>(canon.ptr<const int32_t>()[0] - offset);
    return t;
  }
  // pack_to_int32(zp, packed_dim=0): along the rows, the stored (offset) value is our zero.
  const int64_t rows = canon.dim(0), G = canon.dim(1), pf = pack_factor(s.bits);
  Tensor t = Tensor::zeros(DType::I32, ct_zero_point_file_shape(canon.shape, s));
  auto* out = t.ptr<uint32_t>();
  const auto* in = canon.ptr<const int32_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < G; ++g)
      out[(r / pf) * G + g] |= (uint32_t(in[r * G + g]) & ((1u << s.bits) - 1)) << (s.bits * (r % pf));
  return t;
}

Tensor ct_zero_point_from_file(const Tensor& file, const PackedScheme& s, int64_t rows, const std::string& what) {
  const int32_t offset = 1 << (s.bits - 1);
  if (s.group == -1) {
    SHRINK_CHECK(is_int(file.dtype) && file.numel() == 1, what,
                 ": per-tensor weight_zero_point must be one integer, got ", dtype_name(file.dtype), " ",
                 shape_str(file.shape));
    const int64_t zp = int_at(file, 0);
    SHRINK_CHECK(zp >= -offset && zp < offset, what, ": zero point ", zp, " is outside the ", s.bits, "-bit range");
    Tensor t = Tensor::alloc(DType::I32, {1});
    t.ptr<int32_t>()[0] = static_cast<int32_t>(zp + offset);
    return t;
  }
  const int64_t pf = pack_factor(s.bits);
  SHRINK_CHECK(file.dtype == DType::I32 && file.ndim() == 2 && file.dim(0) == (rows + pf - 1) / pf, what,
               ": weight_zero_point is ", dtype_name(file.dtype), " ", shape_str(file.shape), "; ", rows,
               " rows packed ", pf, " per int32 need I32 [", (rows + pf - 1) / pf, ", n_groups]");
  const int64_t G = file.dim(1);
  Tensor t = Tensor::alloc(DType::I32, {rows, G});
  const auto* in = file.ptr<const uint32_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < G; ++g)
      t.ptr<int32_t>()[r * G + g] = int32_t((in[(r / pf) * G + g] >> (s.bits * (r % pf))) & ((1u << s.bits) - 1));
  return t;
}

DType ct_scale_dtype(const Tensor& scale, DType model_dtype) {
  if (scale.dtype == model_dtype || model_dtype == DType::F32) return model_dtype;
  const Tensor f = scale.to(DType::F32);
  const Tensor back = f.to(model_dtype).to(DType::F32);
  return std::memcmp(f.data, back.data, size_t(f.nbytes())) == 0 ? model_dtype : DType::F32;
}

// ---------------------------------------------------------------- quantization_config

namespace {

json weights_args(const PackedScheme& s) {
  // Only fields every compressed-tensors version knows (QuantizationArgs forbids extra keys).
  json w;
  w["num_bits"] = s.bits;
  w["type"] = "int";
  w["symmetric"] = s.symmetric;
  w["group_size"] = s.group > 0 ? json(s.group) : json(nullptr);
  w["strategy"] = s.group > 0 ? "group" : s.group == 0 ? "channel" : "tensor";
  w["block_structure"] = nullptr;
  w["dynamic"] = false;
  w["actorder"] = nullptr;
  w["observer"] = "minmax";
  w["observer_kwargs"] = json::object();
  return w;
}

}  // namespace

namespace {

json int8_input_args(const Int8Scheme& s) {
  json a;
  a["num_bits"] = 8;
  a["type"] = "int";
  a["symmetric"] = true;
  a["group_size"] = nullptr;
  a["strategy"] = s.static_input ? "tensor" : "token";
  a["block_structure"] = nullptr;
  a["dynamic"] = !s.static_input;
  a["actorder"] = nullptr;
  a["observer"] = s.static_input ? json("minmax") : json(nullptr);
  a["observer_kwargs"] = json::object();
  return a;
}

// One config group per distinct scheme; with a single group it targets every Linear.
template <typename S>
void add_groups(json& groups, const std::map<std::string, S>& modules, bool only_group, const char* format,
                bool mixed, const std::function<void(json&, const S&)>& fill) {
  std::vector<S> schemes;
  for (const auto& [_, s] : modules)
    if (std::find(schemes.begin(), schemes.end(), s) == schemes.end()) schemes.push_back(s);
  for (const S& scheme : schemes) {
    json targets = json::array();
    if (only_group && schemes.size() == 1) {
      targets.push_back("Linear");
    } else {
      for (const auto& [name, s] : modules)
        if (s == scheme) targets.push_back(name);
    }
    json g = {{"targets", targets}, {"input_activations", nullptr}, {"output_activations", nullptr}};
    fill(g, scheme);
    if (mixed) g["format"] = format;
    groups["group_" + std::to_string(groups.size())] = g;
  }
}

}  // namespace

json ct_quantization_config(const std::map<std::string, PackedScheme>& modules,
                            const std::vector<std::string>& ignore,
                            const std::map<std::string, Int8Scheme>& int8_modules) {
  const bool mixed = !modules.empty() && !int8_modules.empty();
  json groups = json::object();
  add_groups<PackedScheme>(groups, modules, !mixed, "pack-quantized", mixed,
                           [](json& g, const PackedScheme& s) { g["weights"] = weights_args(s); });
  // Groups differ only by their activations; the LLM.int8() threshold is not part of quantization_config.
  std::map<std::string, Int8Scheme> int8;
  for (const auto& [name, s] : int8_modules) int8[name] = Int8Scheme{s.static_input, 0};
  add_groups<Int8Scheme>(groups, int8, !mixed, "int-quantized", mixed, [](json& g, const Int8Scheme& s) {
    g["weights"] = weights_args(PackedScheme{8, 0, true});
    g["input_activations"] = int8_input_args(s);
  });
  json qc;
  qc["quant_method"] = "compressed-tensors";
  qc["format"] = mixed ? "mixed-precision" : modules.empty() ? "int-quantized" : "pack-quantized";
  qc["quantization_status"] = "compressed";
  qc["config_groups"] = groups;
  qc["ignore"] = ignore;
  qc["kv_cache_scheme"] = nullptr;
  qc["global_compression_ratio"] = nullptr;
  return qc;
}

namespace {

std::string str_field(const json& j, const char* key, const std::string& def) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? def : it->is_string() ? it->get<std::string>() : "?";
}

PackedScheme parse_weights(const json& w, const std::string& where) {
  SHRINK_CHECK(w.is_object(), where, ": \"weights\" must be an object");
  PackedScheme s;
  const auto nb = w.find("num_bits");
  SHRINK_CHECK(nb != w.end() && nb->is_number_integer(), where, ": weights.num_bits must be an integer");
  s.bits = nb->get<int>();
  SHRINK_CHECK(s.bits >= 2 && s.bits <= 8, where, ": ", s.bits, "-bit weights are not supported (pack-quantized 2..8)");
  const std::string type = str_field(w, "type", "int");
  SHRINK_CHECK(type == "int", where, ": weights of type '", type, "' are not pack-quantized integers");
  const auto sym = w.find("symmetric");
  SHRINK_CHECK(sym == w.end() || sym->is_boolean(), where, ": weights.symmetric must be true or false");
  s.symmetric = sym == w.end() || sym->get<bool>();  // QuantizationArgs' default
  const auto gs = w.find("group_size");
  const bool has_gs = gs != w.end() && !gs->is_null();
  SHRINK_CHECK(!has_gs || gs->is_number_integer(), where, ": weights.group_size must be an integer or null");
  const int64_t group_size = has_gs ? gs->get<int64_t>() : 0;
  // Strategy inferred from group_size when absent, as QuantizationArgs does.
  const std::string strategy =
      str_field(w, "strategy", !has_gs ? "tensor" : group_size > 0 ? "group" : group_size == -1 ? "channel" : "?");
  if (strategy == "group") {
    SHRINK_CHECK(group_size > 0, where, ": strategy \"group\" needs a positive group_size");
    s.group = group_size;
  } else if (strategy == "channel") {
    s.group = 0;
  } else if (strategy == "tensor") {
    s.group = -1;
  } else {
    fail(where, ": weight strategy '", strategy, "' is not supported (group, channel, tensor)");
  }
  const auto dyn = w.find("dynamic");
  SHRINK_CHECK(dyn == w.end() || (dyn->is_boolean() && !dyn->get<bool>()), where,
               ": dynamic weight quantization is not supported");
  return s;
}

// compressed-tensors matches exact names and "re:" patterns from the start of the name (re.match).
bool name_matches(const std::string& target, const std::string& name) {
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(name, std::regex(target.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      fail("quantization_config: invalid target pattern '", target, "'");
    }
  }
  return target == name;
}

// One config group as read: its format and raw arguments, checked when a module resolves to it.
struct CtGroup {
  std::string where, format;
  std::vector<std::string> targets;
  json args;
};

struct CtGroups {
  std::vector<CtGroup> groups;
  std::vector<std::string> ignore;
};

CtGroups parse_groups(const json& qc, const std::string& src) {
  SHRINK_CHECK(qc.is_object(), src, ": quantization_config must be an object");
  const std::string method = str_field(qc, "quant_method", "");
  SHRINK_CHECK(method == "compressed-tensors", src, ": quantization_config quant_method '", method,
               "' is not supported (only compressed-tensors pack-quantized and int-quantized)");
  const std::string format = str_field(qc, "format", "");
  SHRINK_CHECK(format == "pack-quantized" || format == "int-quantized" || format == "mixed-precision", src,
               ": compressed-tensors format '", format, "' is not supported (pack-quantized, int-quantized)");
  const auto cg = qc.find("config_groups");
  SHRINK_CHECK(cg != qc.end() && cg->is_object(), src, ": quantization_config has no config_groups");
  CtGroups out;
  for (const auto& [gname, g] : cg->items()) {
    CtGroup grp{src + ": config group '" + gname + "'", "", {}, g};
    SHRINK_CHECK(g.is_object(), grp.where, " must be an object");
    grp.format = str_field(g, "format", format);
    const auto t = g.find("targets");
    SHRINK_CHECK(t != g.end() && t->is_array(), grp.where, ": \"targets\" must be a list");
    for (const auto& e : *t) {
      SHRINK_CHECK(e.is_string(), grp.where, ": targets must be strings");
      grp.targets.push_back(e.get<std::string>());
    }
    out.groups.push_back(std::move(grp));
  }
  if (const auto ig = qc.find("ignore"); ig != qc.end() && ig->is_array())
    for (const auto& e : *ig)
      if (e.is_string()) out.ignore.push_back(e.get<std::string>());
  return out;
}

// The group that quantizes module m: exact name, then pattern, then class
// name (the most specific target wins); throws when m is ignored or untargeted.
const CtGroup& group_for(const CtGroups& gs, const std::string& m, const std::string& src) {
  for (const auto& i : gs.ignore)
    SHRINK_CHECK(!name_matches(i, m), src, ": module '", m, "' has quantized weights but quantization_config ignores it");
  for (int pass = 0; pass < 3; ++pass)
    for (const auto& g : gs.groups)
      for (const auto& target : g.targets) {
        const bool hit = pass == 0   ? target == m
                         : pass == 1 ? target.rfind("re:", 0) == 0 && name_matches(target, m)
                                     : target == "Linear";
        if (hit) return g;
      }
  fail(src, ": no quantization_config group targets module '", m, "'");
}

const json* non_null(const json& g, const char* key) {
  const auto it = g.find(key);
  return it == g.end() || it->is_null() ? nullptr : &*it;
}

// input_activations of an int-quantized group: true for static (per-tensor) scales, false for per-token.
bool parse_int8_inputs(const json* a, const std::string& where) {
  SHRINK_CHECK(a, where, ": int8 weights with float activations (W8A16) are not supported; ",
               "int-quantized loads as W8A8 (input_activations int8)");
  SHRINK_CHECK(a->is_object(), where, ": \"input_activations\" must be an object");
  const auto nb = a->find("num_bits");
  SHRINK_CHECK(nb != a->end() && nb->is_number_integer() && nb->get<int>() == 8 && str_field(*a, "type", "int") == "int",
               where, ": input activations must be 8-bit integers");
  const auto sym = a->find("symmetric");
  SHRINK_CHECK(sym == a->end() || (sym->is_boolean() && sym->get<bool>()), where,
               ": asymmetric input activations (input_zero_point) are not supported");
  const std::string strategy = str_field(*a, "strategy", "tensor");
  const auto dyn = a->find("dynamic");
  const bool dynamic = dyn != a->end() && dyn->is_boolean() && dyn->get<bool>();
  SHRINK_CHECK(dyn == a->end() || dyn->is_null() || dyn->is_boolean(), where,
               ": input_activations.dynamic '", dyn->dump(), "' is not supported (true or false)");
  if (strategy == "token" && dynamic) return false;
  SHRINK_CHECK(strategy == "tensor" && !dynamic, where, ": input activations with strategy '", strategy,
               "' and dynamic ", dynamic ? "true" : "false",
               " are not supported (token + dynamic, or tensor + static)");
  return true;
}

}  // namespace

std::map<std::string, PackedScheme> ct_resolve_schemes(const json& qc, const std::vector<std::string>& modules,
                                                       const std::string& src) {
  const CtGroups gs = parse_groups(qc, src);
  std::map<std::string, PackedScheme> out;
  for (const auto& m : modules) {
    const CtGroup& g = group_for(gs, m, src);
    SHRINK_CHECK(g.format == "pack-quantized", g.where, ": module '", m, "' has packed weights but the group's format '",
                 g.format, "' is not pack-quantized");
    for (const char* act : {"input_activations", "output_activations"})
      SHRINK_CHECK(!non_null(g.args, act), g.where, ": ", act, " quantization is not supported with packed weights");
    const json* w = non_null(g.args, "weights");
    SHRINK_CHECK(w, g.where, " has no weights scheme");
    out[m] = parse_weights(*w, g.where);
  }
  return out;
}

std::map<std::string, Int8Scheme> ct_resolve_int8_schemes(const json& qc, const std::vector<std::string>& modules,
                                                         const std::string& src) {
  const CtGroups gs = parse_groups(qc, src);
  std::map<std::string, Int8Scheme> out;
  for (const auto& m : modules) {
    const CtGroup& g = group_for(gs, m, src);
    SHRINK_CHECK(g.format == "int-quantized" || g.format == "naive-quantized", g.where, ": module '", m,
                 "' has an int8 weight but the group's format '", g.format, "' is not int-quantized");
    const json* w = non_null(g.args, "weights");
    SHRINK_CHECK(w, g.where, " has no weights scheme");
    const PackedScheme ws = parse_weights(*w, g.where);
    SHRINK_CHECK(ws.bits == 8 && ws.symmetric && ws.group == 0, g.where, ": int-quantized weights ", ws.name(),
                 " are not supported (only int8 symmetric per channel, W8A8)");
    SHRINK_CHECK(!non_null(g.args, "output_activations"), g.where, ": output activation quantization is not supported");
    Int8Scheme s;
    s.static_input = parse_int8_inputs(non_null(g.args, "input_activations"), g.where);
    out[m] = s;
  }
  return out;
}

}  // namespace shrink
