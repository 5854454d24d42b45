#include "train/feature_losses.h"

#include <algorithm>
#include <cmath>

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

Var relation_kl(Var student, Var teacher) {
  SHRINK_CHECK(student->value.shape == teacher->value.shape, "relation_kl: shapes ", shape_str(student->value.shape),
               " and ", shape_str(teacher->value.shape), " differ");
  SHRINK_CHECK(!teacher->requires_grad, "relation_kl: the teacher's rows must be a constant");
  const int64_t rows = student->rows(), cols = student->cols();
  // The floor keeps log and 1/s finite where a student probability underflowed.
  constexpr double kFloor = 1e-30;
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float *s = student->v() + r * cols, *t = teacher->v() + r * cols;
    bool any = false;
    for (int64_t j = 0; j < cols; ++j)
      if (t[j] > 0) {
        total += t[j] * (std::log(double(t[j])) - std::log(std::max(double(s[j]), kFloor)));
        any = true;
      }
    counted += any;
  }
  SHRINK_CHECK(counted > 0, "relation_kl: the teacher's rows are all zero");
  Var y = student->graph->make(Tensor::alloc(DType::F32, {1}), {student, teacher});
  y->v()[0] = float(total / counted);
  if (y->requires_grad)
    y->backward = [=] {
      const double k = double(y->g()[0]) / counted;
      for (int64_t i = 0; i < rows * cols; ++i)
        if (teacher->v()[i] > 0) student->g()[i] -= float(k * teacher->v()[i] / std::max(double(student->v()[i]), kFloor));
    };
  return y;
}

Parameter make_hidden_projection(const std::string& name, int64_t ds, int64_t dt) {
  SHRINK_CHECK(ds > 0 && dt > 0, "hidden projection of widths ", ds, " -> ", dt);
  Tensor w = Tensor::zeros(DType::F32, {dt, ds});
  for (int64_t i = 0; i < std::min(ds, dt); ++i) w.f32()[i * ds + i] = 1.0f;
  return Parameter(name, std::move(w));
}

}  // namespace shrink::train
