#version 450
#extension GL_EXT_shader_16bit_storage : require
// Layer norm of every row of x [R, C], then per-feature scale and shift.
// One workgroup per row, two-pass mean and variance.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly buffer SBuf { float16_t scale[]; };
layout(std430, binding = 2) readonly buffer TBuf { float16_t shift[]; };
layout(std430, binding = 3) writeonly buffer DBuf { float dst[]; };

layout(push_constant) uniform Push {
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
		s += x[base + c];
	}
	float mean = reduceSum(s) / float(p.C);
	float v = 0.0;
	for (uint c = lid; c < p.C; c += 64) {
		float d = x[base + c] - mean;
		v += d * d;
	}
	float inv = inversesqrt(reduceSum(v) / float(p.C) + p.eps);
	for (uint c = lid; c < p.C; c += 64) {
		dst[base + c] = (x[base + c] - mean) * inv * float(scale[c]) + float(shift[c]);
	}
}
