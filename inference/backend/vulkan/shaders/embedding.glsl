// Rows ids of a table [V, D] (TABLE_T: fp16 weight or fp32 activation)
// into dst [len(ids), D].
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer TBuf { TABLE_T table[]; };
layout(std430, binding = 1) readonly buffer IBuf { uint ids[]; };
layout(std430, binding = 2) writeonly buffer DBuf { float dst[]; };

layout(push_constant) uniform Push {
	uint n, D;
} p;

void main() {
	uint stride = gl_NumWorkGroups.x * 256;
	for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
		uint r = i / p.D;
		dst[i] = float(table[ids[r] * p.D + (i - r * p.D)]);
	}
}
