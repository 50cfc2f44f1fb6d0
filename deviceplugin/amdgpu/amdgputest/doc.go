// Package amdgputest writes fake amdgpu sysfs trees for tests and local runs of
// `deviceplugin --gpu-source=amdgpu --sysfs-root DIR`: the files the amdgpu driver and KFD
// expose for each card, with load, RAS counters and failures that can be changed while the
// agent reads them.
package amdgputest
