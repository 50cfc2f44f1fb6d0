// How kernels reach their storage buffers and what their activations are,
// chosen when compile.sh builds each variant of a kernel:
//
//   ACT_F32 unset: activations are stored as fp16 (ACT_T float16_t), the
//     default; set: fp32, for a phase that would overflow fp16. Either way
//     every kernel loads them into float and computes in fp32.
//   BDA unset: buffers are descriptors bound with push descriptors, each
//     at most maxStorageBufferRange bytes. Set: the push constants carry
//     each buffer's device address (Vulkan 1.2 bufferDeviceAddress), which
//     no range limit applies to; the backend uses this variant for a
//     dispatch that touches a buffer larger than the range.
//
// A kernel declares buffer n with BUF(n, qualifier, type, name), lists the
// names with REF(name) at the start of its push-constant block, and reads
// or writes element i as AT(name, i).
#extension GL_EXT_shader_16bit_storage : require

#ifdef ACT_F32
#define ACT_T float
#else
#define ACT_T float16_t
#endif

#ifdef BDA
#extension GL_EXT_buffer_reference : require
#define BUF(n, q, T, name) layout(buffer_reference, std430, buffer_reference_align = 16) q buffer name##_ref { T v[]; };
#define REF(name) name##_ref name;
#define AT(name, i) p.name.v[i]
#else
#define BUF(n, q, T, name) layout(std430, binding = n) q buffer name##_block { T name##_v[]; };
#define REF(name)
#define AT(name, i) name##_v[i]
#endif
