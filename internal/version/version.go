// Package version holds the version of sdfleet's binaries, set at link time by the Makefile.
package version

// Version is the sdfleet version, "dev" for builds outside the Makefile.
var Version = "dev"
