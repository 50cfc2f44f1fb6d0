#version 450
#extension GL_EXT_shader_16bit_storage : require
#extension GL_GOOGLE_include_directive : require
// Group norm of x [N, P, C] over each of G channel groups and all P
// positions, then per-channel scale and shift and an activation. One
// workgroup per (batch item, group); mean and variance in two passes over
// the data, which is exact where a one-pass E[x²]−E[x]² would cancel.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly buffer SBuf { float16_t scale[]; };
layout(std430, binding = 2) readonly buffer TBuf { float16_t shift[]; };
layout(std430, binding = 3) writeonly buffer DBuf { float dst[]; };

layout(push_constant) uniform Push {
	uint P, C, G, act;
	float eps;
} p;

shared float partial[256];

float reduceSum(float v) {
	uint lid = gl_LocalInvocationID.x;
	partial[lid] = v;
	barrier();
	for (uint s = 128; s > 0; s >>= 1) {
		if (lid < s) {
			partial[lid] += partial[lid + s];
		}
		barrier();
	}
	float total = partial[0];
	barrier();
	return total;
}

void main() {
	uint n = gl_WorkGroupID.x / p.G;
	uint g = gl_WorkGroupID.x % p.G;
	uint cg = p.C / p.G;
	uint count = p.P * cg;
	uint base = n * p.P * p.C + g * cg;
	uint lid = gl_LocalInvocationID.x;

	float s = 0.0;
	for (uint i = lid; i < count; i += 256) {
		uint pos = i / cg;
		s += x[base + pos * p.C + (i - pos * cg)];
	}
	float mean = reduceSum(s) / float(count);
	float v = 0.0;
	for (uint i = lid; i < count; i += 256) {
		uint pos = i / cg;
		float d = x[base + pos * p.C + (i - pos * cg)] - mean;
		v += d * d;
	}
	float inv = inversesqrt(reduceSum(v) / float(count) + p.eps);
	for (uint i = lid; i < count; i += 256) {
		uint pos = i / cg;
		uint c = i - pos * cg;
		uint idx = base + pos * p.C + c;
		uint ch = g * cg + c;
		dst[idx] = activate((x[idx] - mean) * inv * float(scale[ch]) + float(shift[ch]), p.act);
	}
}
