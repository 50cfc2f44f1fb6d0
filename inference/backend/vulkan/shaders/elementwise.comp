#version 450
#extension GL_GOOGLE_include_directive : require
// The point-wise operations, one kernel selected by op: activate, axpby,
// add channel bias, GEGLU and concat. Invocations stride over the output so
// a dispatch stays within the workgroup-count limit at any size.
#include "buffers.glsl"
#include "common.glsl"

layout(local_size_x = 256) in;

BUF(0, readonly, ACT_T, x)
BUF(1, readonly, ACT_T, y)
BUF(2, writeonly, ACT_T, dst)

#define OP_ACTIVATE 0u
#define OP_AXPBY 1u
#define OP_CHANNEL_BIAS 2u
#define OP_GEGLU 3u
#define OP_CONCAT 4u

// n: output elements. a, b: axpby's coefficients. c0, c1: channels (bias:
// C and positions·C per batch item; GEGLU: F; concat: Ca and Cb).
layout(push_constant) uniform Push {
	REF(x) REF(y) REF(dst)
	uint op, n, act, c0, c1;
	float a, b;
} p;

void main() {
	uint stride = gl_NumWorkGroups.x * 256;
	for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
		float v = 0.0;
		if (p.op == OP_ACTIVATE) {
			v = activate(float(AT(x, i)), p.act);
		} else if (p.op == OP_AXPBY) {
			v = p.a * float(AT(x, i)) + p.b * float(AT(y, i));
		} else if (p.op == OP_CHANNEL_BIAS) {
			v = float(AT(x, i)) + float(AT(y, (i / p.c1) * p.c0 + i % p.c0));
		} else if (p.op == OP_GEGLU) {
			uint r = i / p.c0;
			uint f = i - r * p.c0;
			v = float(AT(x, r * 2u * p.c0 + f)) * gelu(float(AT(x, r * 2u * p.c0 + p.c0 + f)));
		} else if (p.op == OP_CONCAT) {
			uint w = p.c0 + p.c1;
			uint r = i / w;
			uint c = i - r * w;
			v = c < p.c0 ? float(AT(x, r * p.c0 + c)) : float(AT(y, r * p.c1 + c - p.c0));
		}
		AT(dst, i) = ACT_T(v);
	}
}
