// Activation quantization of a transformer's Linears (issue 4): every block
// Linear becomes an Int8Weight (model/int8_weight.h); the output head stays
// as it is (as in SmoothQuant's and LLM.int8()'s evaluations).
//   dynamic      int8 weights per channel, activations per token at run time
//   w8a8         static: one activation scale per Linear input, from an
//                observer (actquant/observer.h) over the calibration set,
//                collected block by block by the calibration driver, so each
//                Linear sees the inputs of the already-quantized ones before it
//   smoothquant  SmoothQuant's smoothing (actquant/smoothquant.h), then w8a8
//                (or, with per_token, dynamic)
//   llm-int8     per-token int8 with LLM.int8()'s f32 outlier columns
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "compress/actquant/observer.h"
#include "compress/actquant/smoothquant.h"
#include "compress/calib/calib.h"

namespace shrink::actquant {

struct ActQuantOptions {
  std::string method = "w8a8";  // dynamic | w8a8 | smoothquant | llm-int8
  ObserverSpec observer;        // static activation ranges (w8a8, smoothquant)
  bool per_token = false;       // smoothquant: per-token activation scales instead of static ones
  float alpha = 0.5f;           // smoothquant migration strength
  bool smooth_all = false;      // smoothquant: also o and down (SmoothOptions::all_groups)
  bool search_alpha = false;    // smoothquant: alpha per group (SmoothOptions::search_alpha)
  float outlier_threshold = 6.0f;  // llm-int8
};

struct ActLayerReport {
  std::string name, kind;
  int64_t rows = 0, cols = 0, bytes = 0;
  double weight_rel_err = 0;  // ||W - deq(Q)||^2 / ||W||^2 (W after any smoothing)
  float act_scale = 0;        // static scale (0: per token)
  float act_max = 0;          // max |x| the observer saw (static only)
  double seconds = 0;
};

struct ActQuantReport {
  std::vector<ActLayerReport> layers;
  std::vector<SmoothedGroup> smoothed;
  int64_t calib_tokens = 0;
  double seconds = 0;
};

bool is_activation_method(const std::string& method);
bool needs_calibration(const ActQuantOptions& opt);

// progress(layer, n_layers, what).
ActQuantReport quantize_activations(Transformer& model, const calib::CalibSet& calib, const ActQuantOptions& opt,
                                    const std::function<void(int, int, const std::string&)>& progress = {});

}  // namespace shrink::actquant
