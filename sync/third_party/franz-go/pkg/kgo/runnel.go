package kgo

// runnel: share groups (KIP-932) and the KIP-714 client-metrics push are
// compiled out of runnel's copy, and so is the KIP-848 consumer group
// protocol when built with the tag kgoomitkip848 (runnel's release builds;
// see PATCHES.md): these constants guard every path into them, so the
// compiler drops the branches and the linker the code behind them. Options
// that would need them fail in validate.
const (
	runnelShareGroups = false

	// runnelClientMetrics false: as if DisableClientMetrics were always
	// given; no KIP-714 telemetry pushes.
	runnelClientMetrics = false
)
