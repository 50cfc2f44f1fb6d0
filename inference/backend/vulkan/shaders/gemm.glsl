// Tiled matrix multiply dst[M, N] = act(A[M, K] · W[N, K]ᵀ + bias[N]) + res[M, N],
// with fp16 weights, ACT_T activations and fp32 accumulation. A is the
// activation itself (matmul) or, for a convolution, read through an
// implicit-GEMM index map (no im2col buffer). Each 16×16 workgroup computes
// a 64×64 tile, 4×4 outputs per invocation, stepping K by 16 through
// shared memory.
#include "buffers.glsl"
#include "common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;

BUF(0, readonly, ACT_T, x)
BUF(1, readonly, float16_t, w)
BUF(2, readonly, float16_t, bias)
BUF(3, readonly, ACT_T, res)
BUF(4, writeonly, ACT_T, dst)

// flags: bits 0-1 activation, bit 2 bias, bit 3 residual.
layout(push_constant) uniform Push {
	REF(x) REF(w) REF(bias) REF(res) REF(dst)
	uint M, N, K, flags;
	// Convolution geometry (unused by the plain multiply).
	uint H, W, Cin, Ho, Wo, ksize, stride, pad;
} p;

#define BM 64
#define BN 64
#define BK 16

shared float As[BK][BM];
shared float Ws[BK][BN];

float loadA(uint m, uint k) {
#ifdef CONV
	// m = (n, oy, ox); k = (ci, ky, kx), PyTorch's weight order.
	uint kk = p.ksize * p.ksize;
	uint ci = k / kk;
	uint r = k - ci * kk;
	uint ky = r / p.ksize;
	uint kx = r - ky * p.ksize;
	uint ox = m % p.Wo;
	uint t = m / p.Wo;
	uint oy = t % p.Ho;
	uint n = t / p.Ho;
	int iy = int(oy * p.stride + ky) - int(p.pad);
	int ix = int(ox * p.stride + kx) - int(p.pad);
	if (iy < 0 || ix < 0 || iy >= int(p.H) || ix >= int(p.W)) {
		return 0.0;
	}
	return float(AT(x, ((n * p.H + uint(iy)) * p.W + uint(ix)) * p.Cin + ci));
#else
	return float(AT(x, m * p.K + k));
#endif
}

void main() {
	uint tx = gl_LocalInvocationID.x;
	uint ty = gl_LocalInvocationID.y;
	uint tid = ty * 16 + tx;
	uint m0 = gl_WorkGroupID.y * BM;
	uint n0 = gl_WorkGroupID.x * BN;

	float acc[4][4];
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < 4; j++) {
			acc[i][j] = 0.0;
		}
	}

	for (uint k0 = 0; k0 < p.K; k0 += BK) {
		for (uint e = tid; e < BM * BK; e += 256) {
			uint row = e / BK;
			uint kl = e % BK;
			uint m = m0 + row;
			uint k = k0 + kl;
			As[kl][row] = (m < p.M && k < p.K) ? loadA(m, k) : 0.0;
			uint n = n0 + row;
			Ws[kl][row] = (n < p.N && k < p.K) ? float(AT(w, n * p.K + k)) : 0.0;
		}
		barrier();
		for (uint kl = 0; kl < BK; kl++) {
			float a[4];
			float b[4];
			for (int i = 0; i < 4; i++) {
				a[i] = As[kl][ty + 16 * i];
				b[i] = Ws[kl][tx + 16 * i];
			}
			for (int i = 0; i < 4; i++) {
				for (int j = 0; j < 4; j++) {
					acc[i][j] += a[i] * b[j];
				}
			}
		}
		barrier();
	}

	uint act = p.flags & 3u;
	bool hasBias = (p.flags & 4u) != 0u;
	bool hasRes = (p.flags & 8u) != 0u;
	for (int i = 0; i < 4; i++) {
		uint m = m0 + ty + 16 * i;
		if (m >= p.M) {
			continue;
		}
		for (int j = 0; j < 4; j++) {
			uint n = n0 + tx + 16 * j;
			if (n >= p.N) {
				continue;
			}
			float v = acc[i][j];
			if (hasBias) {
				v += float(AT(bias, n));
			}
			v = activate(v, act);
			if (hasRes) {
				v += float(AT(res, m * p.N + n));
			}
			AT(dst, m * p.N + n) = ACT_T(v);
		}
	}
}
