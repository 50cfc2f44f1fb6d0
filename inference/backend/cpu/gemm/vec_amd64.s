//go:build amd64 && !sdfleet_purego

#include "textflag.h"

// Constants of the exponential, each repeated over 8 lanes so AVX2 code
// can use them as memory operands; AVX-512 code broadcasts lane 0.
#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, $bits; DATA name<>+4(SB)/4, $bits; \
	DATA name<>+8(SB)/4, $bits; DATA name<>+12(SB)/4, $bits; \
	DATA name<>+16(SB)/4, $bits; DATA name<>+20(SB)/4, $bits; \
	DATA name<>+24(SB)/4, $bits; DATA name<>+28(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(expLow, 0xc2ae999a)   // -87.3: below this e^x is not a normal float32
CONST8(expLog2e, 0x3fb8aa3b) // log2(e)
CONST8(expLn2Hi, 0x3f317200) // ln2, high part
CONST8(expLn2Lo, 0x35bfbe8e) // ln2 - ln2Hi
CONST8(expC6, 0x3ab60b61)    // 1/720
CONST8(expC5, 0x3c088889)    // 1/120
CONST8(expC4, 0x3d2aaaab)    // 1/24
CONST8(expC3, 0x3e2aaaab)    // 1/6
CONST8(expHalf, 0x3f000000)  // 1/2
CONST8(expOne, 0x3f800000)   // 1
CONST8(expBias, 0x0000007f)  // 127, the float32 exponent bias

// func expSumAVX512(x *float32, n int, m float32, out *[16]float32)
// x[i] = exp(x[i] - m) for n (a multiple of 16) elements; out receives
// the 16 lane-wise partial sums.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+24(FP), DI
	VBROADCASTSS m+16(FP), Z27
	VBROADCASTSS expLow<>(SB), Z16
	VBROADCASTSS expLog2e<>(SB), Z17
	VBROADCASTSS expLn2Hi<>(SB), Z18
	VBROADCASTSS expLn2Lo<>(SB), Z19
	VBROADCASTSS expC6<>(SB), Z20
	VBROADCASTSS expC5<>(SB), Z21
	VBROADCASTSS expC4<>(SB), Z22
	VBROADCASTSS expC3<>(SB), Z23
	VBROADCASTSS expHalf<>(SB), Z24
	VBROADCASTSS expOne<>(SB), Z25
	VPXORD Z0, Z0, Z0
	SHRQ $4, CX
	JZ done512
loop512:
	VMOVUPS (SI), Z1
	VSUBPS Z27, Z1, Z1
	VMAXPS Z16, Z1, Z1
	VMULPS Z17, Z1, Z2
	VRNDSCALEPS $0, Z2, Z2
	VFNMADD231PS Z18, Z2, Z1
	VFNMADD231PS Z19, Z2, Z1
	VMOVAPS Z20, Z3
	VFMADD213PS Z21, Z1, Z3
	VFMADD213PS Z22, Z1, Z3
	VFMADD213PS Z23, Z1, Z3
	VFMADD213PS Z24, Z1, Z3
	VFMADD213PS Z25, Z1, Z3
	VFMADD213PS Z25, Z1, Z3
	VSCALEFPS Z2, Z3, Z3
	VMOVUPS Z3, (SI)
	VADDPS Z3, Z0, Z0
	ADDQ $64, SI
	DECQ CX
	JNZ loop512
done512:
	VMOVUPS Z0, (DI)
	VZEROUPPER
	RET

// func scaleMaxAVX512(x *float32, n int, scale float32, out *[16]float32)
// x[i] *= scale for n (a multiple of 16) elements; out receives the 16
// lane-wise maxima.
TEXT ·scaleMaxAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+24(FP), DI
	VBROADCASTSS scale+16(FP), Z1
	VMOVUPS (SI), Z0
	VMULPS Z1, Z0, Z0
	SHRQ $4, CX
loopmax512:
	VMOVUPS (SI), Z2
	VMULPS Z1, Z2, Z2
	VMOVUPS Z2, (SI)
	VMAXPS Z2, Z0, Z0
	ADDQ $64, SI
	DECQ CX
	JNZ loopmax512
	VMOVUPS Z0, (DI)
	VZEROUPPER
	RET

// func expSumAVX2(x *float32, n int, m float32, out *[16]float32)
// As expSumAVX512 for n a multiple of 8; out's first 8 lanes are written.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+24(FP), DI
	VBROADCASTSS m+16(FP), Y15
	VMOVUPS expLow<>(SB), Y14
	VMOVUPS expLog2e<>(SB), Y13
	VMOVUPS expOne<>(SB), Y12
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JZ done2
loop2:
	VMOVUPS (SI), Y1
	VSUBPS Y15, Y1, Y1
	VMAXPS Y14, Y1, Y1
	VMULPS Y13, Y1, Y2
	VROUNDPS $0, Y2, Y2
	VFNMADD231PS expLn2Hi<>(SB), Y2, Y1
	VFNMADD231PS expLn2Lo<>(SB), Y2, Y1
	VMOVUPS expC6<>(SB), Y3
	VFMADD213PS expC5<>(SB), Y1, Y3
	VFMADD213PS expC4<>(SB), Y1, Y3
	VFMADD213PS expC3<>(SB), Y1, Y3
	VFMADD213PS expHalf<>(SB), Y1, Y3
	VFMADD213PS Y12, Y1, Y3
	VFMADD213PS Y12, Y1, Y3
	VCVTPS2DQ Y2, Y4
	VPADDD expBias<>(SB), Y4, Y4
	VPSLLD $23, Y4, Y4
	VMULPS Y4, Y3, Y3
	VMOVUPS Y3, (SI)
	VADDPS Y3, Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ loop2
done2:
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func scaleMaxAVX2(x *float32, n int, scale float32, out *[16]float32)
TEXT ·scaleMaxAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+24(FP), DI
	VBROADCASTSS scale+16(FP), Y1
	VMOVUPS (SI), Y0
	VMULPS Y1, Y0, Y0
	SHRQ $3, CX
loopmax2:
	VMOVUPS (SI), Y2
	VMULPS Y1, Y2, Y2
	VMOVUPS Y2, (SI)
	VMAXPS Y2, Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ loopmax2
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET
