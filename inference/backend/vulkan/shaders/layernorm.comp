#version 450
#extension GL_GOOGLE_include_directive : require
// Layer norm of every row of x [R, C], then per-feature scale and shift.
// One workgroup per row, two-pass mean and variance in fp32.
#include "buffers.glsl"

layout(local_size_x = 64) in;

BUF(0, readonly, ACT_T, x)
BUF(1, readonly, float16_t, scale)
BUF(2, readonly, float16_t, shift)
BUF(3, writeonly, ACT_T, dst)

layout(push_constant) uniform Push {
	REF(x) REF(scale) REF(shift) REF(dst)
	uint R, C;
	float eps;
} p;

shared float partial[64];

float reduceSum(float v) {
	uint lid = gl_LocalInvocationID.x;
	partial[lid] = v;
	barrier();
	for (uint s = 32; s > 0; s >>= 1) {
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
	uint base = gl_WorkGroupID.x * p.C;
	uint lid = gl_LocalInvocationID.x;
	float s = 0.0;
	for (uint c = lid; c < p.C; c += 64) {
		s += float(AT(x, base + c));
	}
	float mean = reduceSum(s) / float(p.C);
	float v = 0.0;
	for (uint c = lid; c < p.C; c += 64) {
		float d = float(AT(x, base + c)) - mean;
		v += d * d;
	}
	float inv = inversesqrt(reduceSum(v) / float(p.C) + p.eps);
	for (uint c = lid; c < p.C; c += 64) {
		AT(dst, base + c) = ACT_T((float(AT(x, base + c)) - mean) * inv * float(AT(scale, c)) + float(AT(shift, c)));
	}
}
