// Rows ids of a table [V, D] (TABLE_T: an fp16 weight or activation, or
// an fp32 activation) into dst [len(ids), D].
#include "buffers.glsl"

layout(local_size_x = 256) in;

BUF(0, readonly, TABLE_T, table)
BUF(1, readonly, uint, ids)
BUF(2, writeonly, ACT_T, dst)

layout(push_constant) uniform Push {
	REF(table) REF(ids) REF(dst)
	uint n, D;
} p;

void main() {
	uint stride = gl_NumWorkGroups.x * 256;
	for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
		uint r = i / p.D;
		AT(dst, i) = ACT_T(float(AT(table, AT(ids, r) * p.D + (i - r * p.D))));
	}
}
