package noise

import (
	"math"
)

// TorchGenerator reproduces torch.randn(n, generator=torch.Generator().manual_seed(seed)) for
// float32 tensors, value for value.
//
// PyTorch's CPU generator is a 32-bit Mersenne Twister (mt19937). For a float tensor of 16 or
// more values, randn first fills the tensor with uniforms (the low 24 bits of one draw times
// 2^-24), then turns each block of 16 into normals with the Box-Muller transform, pairing value
// j with value j+8; when the length is not a multiple of 16, the last 16 values are drawn again
// and transformed once more. Shorter tensors go through a scalar double-precision path that
// pairs two 53-bit uniforms and keeps the second normal for the next value.
//
// The transcendental functions follow what x86-64 builds of PyTorch run (its AVX2 kernel,
// normal_fill_16_AVX2): the Cephes logarithm, sine and cosine polynomials of avx_mathfun.h in
// float32, with the multiply-adds fused as GCC contracts them, so that results agree with
// PyTorch to the last bit. PyTorch builds without AVX2 use libm instead and differ from both in
// the last bit of a few values in a thousand. testdata/torch_randn.json, written by
// hack/golden/torch_randn.py with PyTorch itself, pins the agreement.
type TorchGenerator struct {
	mt         mt19937
	nextNormal float64
	hasNext    bool
}

// NewTorch returns a generator in the state of torch.Generator().manual_seed(seed).
func NewTorch(seed uint64) *TorchGenerator {
	g := &TorchGenerator{}
	g.mt.seed(uint32(seed))
	return g
}

// Fill implements Source: it writes what torch.randn(len(dst)) would return and advances the
// generator as PyTorch does.
func (g *TorchGenerator) Fill(dst []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	if n < 16 {
		for i := range dst {
			dst[i] = float32(g.normalDouble())
		}
		return
	}
	for i := range dst {
		dst[i] = g.uniform24()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = g.uniform24()
		}
		boxMuller16(tail)
	}
}

// uniform24 is a float uniform in [0, 1) from the low 24 bits of one draw.
func (g *TorchGenerator) uniform24() float32 {
	return float32(g.mt.next()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform53 is a double uniform in [0, 1) from the low 53 bits of two draws (first draw high).
func (g *TorchGenerator) uniform53() float64 {
	hi := uint64(g.mt.next())
	lo := uint64(g.mt.next())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normalDouble is PyTorch's scalar normal_distribution<double>.
func (g *TorchGenerator) normalDouble() float64 {
	if g.hasNext {
		g.hasNext = false
		return g.nextNormal
	}
	u1 := g.uniform53()
	u2 := g.uniform53()
	r := math.Sqrt(float64(-2.0 * math.Log(float64(1.0-u2))))
	theta := float64(2.0*math.Pi) * u1
	g.nextNormal = float64(r * math.Sin(theta))
	g.hasNext = true
	return float64(r * math.Cos(theta))
}

// boxMuller16 turns 16 uniforms into 16 normals in place, in float32 as PyTorch's kernel does.
func boxMuller16(d []float32) {
	const twoPi = float32(2 * math.Pi)
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(-2 * logf(u1))))
		theta := twoPi * u2
		s, c := sincosf(theta)
		d[j] = radius * c
		d[j+8] = radius * s
	}
}

// fma32 is a fused multiply-add in float32: a*b is exact in float64, so only the final sum is
// rounded (twice, to float64 then float32, which differs from one rounding only on exact
// float32 ties, about once in 2^29 operations).
func fma32(a, b, c float32) float32 {
	return float32(float64(a)*float64(b) + float64(c))
}

// logf is the Cephes single-precision logarithm (the log256_ps of avx_mathfun.h that PyTorch's
// AVX2 kernel calls), with the multiply-adds fused as GCC contracts them. Inputs are in (0, 1].
func logf(x float32) float32 {
	const (
		sqrtHalf = float32(0.707106781186547524)
		p0       = float32(7.0376836292e-2)
		p1       = float32(-1.1514610310e-1)
		p2       = float32(1.1676998740e-1)
		p3       = float32(-1.2420140846e-1)
		p4       = float32(1.4249322787e-1)
		p5       = float32(-1.6668057665e-1)
		p6       = float32(2.0000714765e-1)
		p7       = float32(-2.4999993993e-1)
		p8       = float32(3.3333331174e-1)
		q1       = float32(-2.12194440e-4)
		q2       = float32(0.693359375)
	)
	bits := math.Float32bits(x)
	exp := int32(bits>>23) - 0x7f
	x = math.Float32frombits(bits&^0x7f800000 | math.Float32bits(0.5))
	e := float32(exp) + 1
	var tmp float32
	if x < sqrtHalf {
		tmp = x
		e -= 1
	}
	x = x - 1
	x = x + tmp
	z := x * x
	y := p0
	for _, p := range [...]float32{p1, p2, p3, p4, p5, p6, p7, p8} {
		y = fma32(y, x, p)
	}
	y = y * x
	// GCC fuses y*z with the following add of e*q1, not e*q1 with the add: the order matters
	// to the last bit.
	y = fma32(y, z, e*q1)
	y = fma32(z, -0.5, y)
	x = x + y
	x = fma32(e, q2, x)
	return x
}

// sincosf is the Cephes single-precision sine and cosine (the sincos256_ps of avx_mathfun.h):
// range reduction by π/4 in three parts and degree-7/8 polynomials, with the multiply-adds
// fused as GCC contracts them.
func sincosf(x float32) (sin, cos float32) {
	const (
		fopi = float32(1.27323954473516) // 4/π
		dp1  = float32(-0.78515625)
		dp2  = float32(-2.4187564849853515625e-4)
		dp3  = float32(-3.77489497744594108e-8)
		sc0  = float32(-1.9515295891e-4)
		sc1  = float32(8.3321608736e-3)
		sc2  = float32(-1.6666654611e-1)
		cc0  = float32(2.443315711809948e-5)
		cc1  = float32(-1.388731625493765e-3)
		cc2  = float32(4.166664568298827e-2)
	)
	signSin := x < 0
	if signSin {
		x = -x
	}
	j := int32(x * fopi)
	j = (j + 1) &^ 1
	y := float32(j)
	if j&4 != 0 {
		signSin = !signSin
	}
	polySel := j&2 != 0
	signCos := (j-2)&4 == 0
	x = fma32(y, dp1, x)
	x = fma32(y, dp2, x)
	x = fma32(y, dp3, x)
	z := x * x
	pc := fma32(cc0, z, cc1)
	pc = fma32(pc, z, cc2)
	pc = pc * z
	pc = fma32(pc, z, -(z * 0.5))
	pc = pc + 1
	ps := fma32(sc0, z, sc1)
	ps = fma32(ps, z, sc2)
	ps = ps * z
	ps = fma32(ps, x, x)
	if polySel {
		sin, cos = pc, ps
	} else {
		sin, cos = ps, pc
	}
	if signSin {
		sin = -sin
	}
	if signCos {
		cos = -cos
	}
	return sin, cos
}

// mt19937 is the 32-bit Mersenne Twister, seeded as std::mt19937 and PyTorch seed it.
type mt19937 struct {
	state [624]uint32
	index int
}

func (m *mt19937) seed(s uint32) {
	m.state[0] = s
	for i := 1; i < 624; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.index = 624
}

func (m *mt19937) next() uint32 {
	if m.index >= 624 {
		m.twist()
	}
	y := m.state[m.index]
	m.index++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

func (m *mt19937) twist() {
	const upper, lower, matrixA = 0x80000000, 0x7fffffff, 0x9908b0df
	for i := 0; i < 624; i++ {
		y := (m.state[i] & upper) | (m.state[(i+1)%624] & lower)
		v := m.state[(i+397)%624] ^ (y >> 1)
		if y&1 != 0 {
			v ^= matrixA
		}
		m.state[i] = v
	}
	m.index = 0
}
