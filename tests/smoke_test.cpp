#include <gtest/gtest.h>
#include "core/dtype.h"
TEST(DType, HalfRoundTrip) { EXPECT_EQ(shrink::f16_to_f32(shrink::f32_to_f16(1.5f)), 1.5f); }
