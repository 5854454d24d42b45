// Runs a kernel test under each decode walk (narrow and wide: kernels/row_slabs.h).
// A CPU takes one of them by default, so without this the other would go
// untested on that CPU.
#pragma once
#include <gtest/gtest.h>

#include "kernels/row_slabs.h"

namespace shrink::test {

template <class F>
void for_each_walk(F&& body) {
  struct Restore {
    ~Restore() { kernels::set_wide_walk(-1); }
  } restore;
  for (int wide : {0, 1}) {
    SCOPED_TRACE(wide ? "wide walk" : "narrow walk");
    kernels::set_wide_walk(wide);
    body();
  }
}

}  // namespace shrink::test
