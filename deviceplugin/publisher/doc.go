// Package publisher writes the node's live GPU load to its GPUNode status and labels the Node.
//
// The GPUNode is created with an owner reference to its Node (so it is garbage-collected with
// it) and written by server-side apply under one field manager. To keep API traffic low on big
// clusters the status is written only when it matters: at once when a GPU's memory use moves by
// the threshold (2 percentage points by default) or a GPU's health changes, and otherwise as a
// heartbeat (every 10 s by default), which is how the controller knows the agent is alive.
package publisher
