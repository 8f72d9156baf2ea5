package main

// The --format mini-language of `runnel consume` (kcat-like verbs).

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// formatPart is either literal text or one record field.
type formatPart struct {
	lit  []byte
	verb byte // 0 for literal
}

// recordFormat renders records per a parsed --format string.
type recordFormat struct {
	parts []formatPart
}

// parseFormat parses verbs %k %v %t %p %o %T %h %K %S %% and the escapes
// \n \t \r \\ (so a shell-quoted "%v\n" works).
func parseFormat(s string) (recordFormat, error) {
	var f recordFormat
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			f.parts = append(f.parts, formatPart{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch ch {
		case '\\':
			if i+1 >= len(s) {
				return f, usageErrorf("--format %q: trailing backslash", s)
			}
			i++
			switch s[i] {
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case 'r':
				lit = append(lit, '\r')
			case '\\':
				lit = append(lit, '\\')
			default:
				return f, usageErrorf("--format %q: unknown escape \\%c", s, s[i])
			}
		case '%':
			if i+1 >= len(s) {
				return f, usageErrorf("--format %q: trailing %%", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit = append(lit, '%')
			case 'k', 'v', 't', 'p', 'o', 'T', 'h', 'K', 'S':
				flush()
				f.parts = append(f.parts, formatPart{verb: v})
			default:
				return f, usageErrorf("--format %q: unknown verb %%%c", s, v)
			}
		default:
			lit = append(lit, ch)
		}
	}
	flush()
	return f, nil
}

// append renders r onto dst.
func (f recordFormat) append(dst []byte, r *kgo.Record) []byte {
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			dst = append(dst, p.lit...)
		case 'k':
			dst = append(dst, r.Key...)
		case 'v':
			dst = append(dst, r.Value...)
		case 't':
			dst = append(dst, r.Topic...)
		case 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case 'T':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case 'K':
			dst = appendLen(dst, r.Key)
		case 'S':
			dst = appendLen(dst, r.Value)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, h.Key...)
				dst = append(dst, '=')
				dst = append(dst, h.Value...)
			}
		}
	}
	return dst
}

// appendLen appends b's length, or -1 for null (as kcat prints it).
func appendLen(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "-1"...)
	}
	return strconv.AppendInt(dst, int64(len(b)), 10)
}
