#version 450
#extension GL_GOOGLE_include_directive : require
#define TABLE_T float16_t
#include "embedding.glsl"
