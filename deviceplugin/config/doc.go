// Package config reads the node agent's settings from flags, environment variables and an
// optional YAML file, in that order of precedence, and rejects wrong values at start-up with a
// message naming the setting, where it came from and the value.
package config
