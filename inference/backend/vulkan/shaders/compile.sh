#!/bin/sh
# Compiles every compute shader to the SPIR-V the backend embeds, in four
# variants each (see buffers.glsl): fp16 or fp32 activations (_f32), bound
# as descriptors or reached through device addresses (_bda). Run by go
# generate (and so by make verify); builds never need glslc.
set -e
cd "$(dirname "$0")"
for src in *.comp; do
	name="${src%.comp}"
	glslc --target-env=vulkan1.2 -O -o "$name.spv" "$src"
	glslc --target-env=vulkan1.2 -O -DACT_F32 -o "${name}_f32.spv" "$src"
	glslc --target-env=vulkan1.2 -O -DBDA -o "${name}_bda.spv" "$src"
	glslc --target-env=vulkan1.2 -O -DACT_F32 -DBDA -o "${name}_f32_bda.spv" "$src"
done
