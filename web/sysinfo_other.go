//go:build !linux

package web

func clockState() ClockInfo                    { return ClockInfo{Source: "not available on this system"} }
func processWriteBytes() (uint64, bool)        { return 0, false }
func deviceOf(string) string                   { return "" }
func deviceWrittenBytes(string) (uint64, bool) { return 0, false }
func emmcWear() []EMMCInfo                     { return nil }
