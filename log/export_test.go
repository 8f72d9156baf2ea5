package log

import "fmt"

// DebugSegments describes a partition's segments (for crash-test failure
// messages).
func DebugSegments(l Log, topic string, part int32) string {
	return describePart(l, topic, part, debugSegmentsLocked)
}

// describePart returns describe(p) for the partition, called with p.mu
// held, or the lookup's error text.
func describePart(l Log, topic string, part int32, describe func(p *partition) string) string {
	p, err := l.(*logImpl).part(topic, part)
	if err != nil {
		return err.Error()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return describe(p)
}

func debugSegmentsLocked(p *partition) string {
	s := fmt.Sprintf("next %d hwm %d lost %v\n", p.next, p.hwm, p.lost)
	for _, g := range p.segs {
		s += fmt.Sprintf("  seg base %d next %d size %d virt %v\n", g.base, g.next, g.size, g.virt != nil)
	}
	return s
}

// SharedRefsForTest lists the shared files and their references.
func SharedRefsForTest(l Log) string {
	li := l.(*logImpl)
	if li.shared == nil {
		return ""
	}
	li.shared.mu.Lock()
	defer li.shared.mu.Unlock()
	out := ""
	for seq, f := range li.shared.files {
		out += fmt.Sprintf("%d:refs=%d,size=%d,active=%v ", seq, f.refs, f.size, f == li.shared.active)
	}
	return out
}

// SegmentKinds lists a partition's segments, oldest first: 'v' virtual
// (shared storage), 'f' a segment file.
func SegmentKinds(l Log, topic string, part int32) string {
	return describePart(l, topic, part, segmentKindsLocked)
}

func segmentKindsLocked(p *partition) string {
	b := make([]byte, 0, len(p.segs))
	for _, s := range p.segs {
		if s.virt != nil {
			b = append(b, 'v')
		} else {
			b = append(b, 'f')
		}
	}
	return string(b)
}
