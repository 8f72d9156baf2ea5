package log

// RaiseNodeEpoch implements EpochRaiser.
func (l *logImpl) RaiseNodeEpoch(min int32) (int32, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	return l.raiseEpoch(min)
}
