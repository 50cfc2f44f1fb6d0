#version 450
#extension GL_EXT_shader_16bit_storage : require
#extension GL_GOOGLE_include_directive : require
#define TABLE_T float16_t
#include "embedding.glsl"
