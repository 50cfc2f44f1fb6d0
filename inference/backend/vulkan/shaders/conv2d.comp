#version 450
#extension GL_GOOGLE_include_directive : require
// 1×1 and 3×3 convolution of NHWC x by [Cout, Cin, k, k] weights, stride
// 1 or 2, padding k/2, as an implicit GEMM: M = N·Ho·Wo, K = Cin·k·k.
#define CONV 1
#include "gemm.glsl"
