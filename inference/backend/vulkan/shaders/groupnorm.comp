#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm of x [N, P, C] over each of G channel groups and all P
// positions, then per-channel scale and shift and an activation. One
// workgroup per (batch item, group); mean and variance in two passes over
// the data, which is exact where a one-pass E[x²]−E[x]² would cancel; the
// statistics are fp32 whatever the activations' storage.
#include "buffers.glsl"
#include "common.glsl"

layout(local_size_x = 256) in;

BUF(0, readonly, ACT_T, x)
BUF(1, readonly, float16_t, scale)
BUF(2, readonly, float16_t, shift)
BUF(3, writeonly, ACT_T, dst)

layout(push_constant) uniform Push {
	REF(x) REF(scale) REF(shift) REF(dst)
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
		s += float(AT(x, base + pos * p.C + (i - pos * cg)));
	}
	float mean = reduceSum(s) / float(count);
	float v = 0.0;
	for (uint i = lid; i < count; i += 256) {
		uint pos = i / cg;
		float d = float(AT(x, base + pos * p.C + (i - pos * cg))) - mean;
		v += d * d;
	}
	float inv = inversesqrt(reduceSum(v) / float(count) + p.eps);
	for (uint i = lid; i < count; i += 256) {
		uint pos = i / cg;
		uint c = i - pos * cg;
		uint idx = base + pos * p.C + c;
		uint ch = g * cg + c;
		AT(dst, idx) = ACT_T(activate((float(AT(x, idx)) - mean) * inv * float(AT(scale, ch)) + float(AT(shift, ch)), p.act));
	}
}
