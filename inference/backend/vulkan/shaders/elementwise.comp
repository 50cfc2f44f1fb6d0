#version 450
#extension GL_GOOGLE_include_directive : require
// The point-wise operations, one kernel selected by op: activate, axpby,
// add channel bias, GEGLU and concat. Invocations stride over the output so
// a dispatch stays within the workgroup-count limit at any size.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly buffer YBuf { float y[]; };
layout(std430, binding = 2) writeonly buffer DBuf { float dst[]; };

#define OP_ACTIVATE 0u
#define OP_AXPBY 1u
#define OP_CHANNEL_BIAS 2u
#define OP_GEGLU 3u
#define OP_CONCAT 4u

// n: output elements. a, b: axpby's coefficients. c0, c1: channels (bias:
// C and positions·C per batch item; GEGLU: F; concat: Ca and Cb).
layout(push_constant) uniform Push {
	uint op, n, act, c0, c1;
	float a, b;
} p;

void main() {
	uint stride = gl_NumWorkGroups.x * 256;
	for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
		if (p.op == OP_ACTIVATE) {
			dst[i] = activate(x[i], p.act);
		} else if (p.op == OP_AXPBY) {
			dst[i] = p.a * x[i] + p.b * y[i];
		} else if (p.op == OP_CHANNEL_BIAS) {
			dst[i] = x[i] + y[(i / p.c1) * p.c0 + i % p.c0];
		} else if (p.op == OP_GEGLU) {
			uint r = i / p.c0;
			uint f = i - r * p.c0;
			dst[i] = x[r * 2u * p.c0 + f] * gelu(x[r * 2u * p.c0 + p.c0 + f]);
		} else if (p.op == OP_CONCAT) {
			uint w = p.c0 + p.c1;
			uint r = i / w;
			uint c = i - r * w;
			dst[i] = c < p.c0 ? x[r * p.c0 + c] : y[r * p.c1 + c - p.c0];
		}
	}
}
