#version 450
#extension GL_GOOGLE_include_directive : require
// dst = act(x · wᵀ + bias) + residual for x [M, K] and w [N, K].
#include "gemm.glsl"
