#include "train/feature_losses.h"

#include <algorithm>

#include "core/error.h"
#include "train/ops.h"

namespace shrink::train {

Var mse(Var a, Var b) {
  SHRINK_CHECK(a->value.shape == b->value.shape, "mse: shapes ", shape_str(a->value.shape), " and ",
               shape_str(b->value.shape), " differ");
  const int64_t n = a->value.numel();
  SHRINK_CHECK(n > 0, "mse of empty tensors");
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a->v()[i]) - b->v()[i];
    total += d * d;
  }
  Var y = a->graph->make(Tensor::alloc(DType::F32, {1}), {a, b});
  y->v()[0] = float(total / n);
  if (y->requires_grad)
    y->backward = [=] {
      const float k = 2.0f * y->g()[0] / float(n);
      for (int64_t i = 0; i < n; ++i) {
        const float d = k * (a->v()[i] - b->v()[i]);
        if (a->requires_grad) a->g()[i] += d;
        if (b->requires_grad) b->g()[i] -= d;
      }
    };
  return y;
}

Var hidden_state_mse(Var student, Var teacher, Var projection) {
  SHRINK_CHECK(student->rows() == teacher->rows(), "hidden_state_mse: ", student->rows(), " student tokens vs ",
               teacher->rows(), " teacher tokens");
  if (!projection) {
    SHRINK_CHECK(student->cols() == teacher->cols(), "hidden_state_mse: widths ", student->cols(), " and ",
                 teacher->cols(), " differ: pass a projection (make_hidden_projection)");
    return mse(student, teacher);
  }
  SHRINK_CHECK(projection->value.ndim() == 2 && projection->value.dim(0) == teacher->cols() &&
                   projection->value.dim(1) == student->cols(),
               "hidden_state_mse: projection ", shape_str(projection->value.shape), " does not map width ",
               student->cols(), " to ", teacher->cols());
  return mse(linear(student, projection), teacher);
}

Parameter make_hidden_projection(const std::string& name, int64_t ds, int64_t dt) {
  SHRINK_CHECK(ds > 0 && dt > 0, "hidden projection of widths ", ds, " -> ", dt);
  Tensor w = Tensor::zeros(DType::F32, {dt, ds});
  for (int64_t i = 0; i < std::min(ds, dt); ++i) w.f32()[i * ds + i] = 1.0f;
  return Parameter(name, std::move(w));
}

}  // namespace shrink::train
