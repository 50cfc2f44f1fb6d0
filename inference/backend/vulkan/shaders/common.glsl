// Shared by every kernel: activations with the same definitions as the
// CPU backend (backend.Activation).

#define ACT_NONE 0u
#define ACT_SILU 1u
#define ACT_GELU 2u
#define ACT_QUICK_GELU 3u

// erf has no GLSL built-in. Abramowitz & Stegun 7.1.26 has an absolute
// error below 1.5e-7, far under the fp16 rounding of the weights.
float erf_approx(float x) {
	float s = sign(x);
	float a = abs(x);
	float t = 1.0 / (1.0 + 0.3275911 * a);
	float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
	return s * y;
}

float gelu(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }

float activate(float x, uint act) {
	if (act == ACT_SILU) {
		return x / (1.0 + exp(-x));
	} else if (act == ACT_GELU) {
		return gelu(x);
	} else if (act == ACT_QUICK_GELU) {
		return x / (1.0 + exp(-1.702 * x));
	}
	return x;
}
