#version 450
// Nearest-neighbour resize of NHWC x [N, H, W, C] to [N, Ho, Wo, C] with
// PyTorch's index rule: source row min(floor(y·(H/Ho)), H-1), the ratio
// rounded to float32 on the host exactly as PyTorch computes it.
#extension GL_GOOGLE_include_directive : require
#include "buffers.glsl"

layout(local_size_x = 256) in;

BUF(0, readonly, ACT_T, x)
BUF(1, writeonly, ACT_T, dst)

layout(push_constant) uniform Push {
	REF(x) REF(dst)
	uint n, H, W, Ho, Wo, C;
	float sh, sw;
} p;

void main() {
	uint stride = gl_NumWorkGroups.x * 256;
	for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
		uint c = i % p.C;
		uint t = i / p.C;
		uint ox = t % p.Wo;
		t /= p.Wo;
		uint oy = t % p.Ho;
		uint b = t / p.Ho;
		uint iy = min(uint(floor(float(oy) * p.sh)), p.H - 1);
		uint ix = min(uint(floor(float(ox) * p.sw)), p.W - 1);
		AT(dst, i) = AT(x, ((b * p.H + iy) * p.W + ix) * p.C + c);
	}
}
