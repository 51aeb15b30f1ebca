package sandbox

// InitArg is the hidden argument that makes the wisp binary (or a test
// binary) run RunInit instead of its main.
const InitArg = "__sandbox-init"
