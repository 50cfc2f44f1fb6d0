#!/bin/sh
# Compiles every compute shader to the SPIR-V the backend embeds. Run by
# go generate (and so by make verify); builds never need glslc.
set -e
cd "$(dirname "$0")"
for src in *.comp; do
	glslc --target-env=vulkan1.2 -O -o "${src%.comp}.spv" "$src"
done
