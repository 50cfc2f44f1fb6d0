#version 450
// Scaled dot-product attention with an online softmax: each invocation owns
// one query row of one head and streams the keys and values through shared
// memory in tiles of TK, keeping only a running maximum, a running sum and
// its output accumulator, all in fp32. No Tq×Tk score buffer exists anywhere.
#extension GL_GOOGLE_include_directive : require
#include "buffers.glsl"

layout(local_size_x = 64) in;

#define MAXD 160
#define TK 16

BUF(0, readonly, ACT_T, q)
BUF(1, readonly, ACT_T, k)
BUF(2, readonly, ACT_T, v)
BUF(3, writeonly, ACT_T, dst)

layout(push_constant) uniform Push {
	REF(q) REF(k) REF(v) REF(dst)
	uint Tq, Tk, C, D, causal;
	float scale;
} p;

shared float ks[TK][MAXD];
shared float vs[TK][MAXD];

void main() {
	uint i = gl_GlobalInvocationID.x;
	uint h = gl_WorkGroupID.y;
	uint b = gl_WorkGroupID.z;
	uint lid = gl_LocalInvocationID.x;
	bool live = i < p.Tq;
	uint qbase = (b * p.Tq + i) * p.C + h * p.D;

	float qr[MAXD];
	float acc[MAXD];
	for (uint d = 0; d < p.D; d++) {
		qr[d] = live ? float(AT(q, qbase + d)) * p.scale : 0.0;
		acc[d] = 0.0;
	}
	float m = -1.0 / 0.0;
	float l = 0.0;
	// Keys after last are masked for a causal query: j > i + (Tk - Tq).
	uint last = p.Tk;
	if (p.causal != 0u) {
		last = min(p.Tk, i + p.Tk - p.Tq + 1);
	}

	for (uint j0 = 0; j0 < p.Tk; j0 += TK) {
		for (uint e = lid; e < TK * p.D; e += 64) {
			uint jj = e / p.D;
			uint d = e - jj * p.D;
			uint j = j0 + jj;
			uint kidx = (b * p.Tk + j) * p.C + h * p.D + d;
			ks[jj][d] = j < p.Tk ? float(AT(k, kidx)) : 0.0;
			vs[jj][d] = j < p.Tk ? float(AT(v, kidx)) : 0.0;
		}
		barrier();
		if (live) {
			uint end = min(TK, last > j0 ? last - j0 : 0u);
			for (uint jj = 0; jj < end; jj++) {
				float s = 0.0;
				for (uint d = 0; d < p.D; d++) {
					s += qr[d] * ks[jj][d];
				}
				float mNew = max(m, s);
				float corr = exp(m - mNew);
				float e = exp(s - mNew);
				l = l * corr + e;
				for (uint d = 0; d < p.D; d++) {
					acc[d] = acc[d] * corr + e * vs[jj][d];
				}
				m = mNew;
			}
		}
		barrier();
	}
	if (live) {
		float inv = 1.0 / l;
		for (uint d = 0; d < p.D; d++) {
			AT(dst, qbase + d) = ACT_T(acc[d] * inv);
		}
	}
}
