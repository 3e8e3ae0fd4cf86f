// Package ng speaks rtpengine's "ng" control protocol: bencoded
// dictionaries over UDP, each message prefixed by a cookie that its reply
// repeats. The tests and benchmarks of the media relay use it to drive
// rtpengine as a peer, and the benchmark's relay process serves the same
// protocol so that one load generator drives both relays alike.
//
// It also starts and stops an rtpengine daemon in userspace mode on
// loopback for tests (StartRtpengine).
package ng

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Dict is a bencoded dictionary. Values are string, []byte, int, int64,
// []string, []any or Dict when encoding; decoding yields string, int64,
// []any and Dict.
type Dict = map[string]any

// ErrBencode is wrapped by decoding errors.
var ErrBencode = errors.New("malformed bencode")

// Encode appends the bencoding of v to dst.
func Encode(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case []byte:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case int:
		return Encode(dst, int64(x))
	case int64:
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, x, 10)
		return append(dst, 'e'), nil
	case []string:
		dst = append(dst, 'l')
		for _, s := range x {
			dst, _ = Encode(dst, s)
		}
		return append(dst, 'e'), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			var err error
			if dst, err = Encode(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	case Dict:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst, _ = Encode(dst, k)
			var err error
			if dst, err = Encode(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	}
	return nil, fmt.Errorf("ng: cannot bencode %T", v)
}

// Decode reads one bencoded value from b and returns it with the bytes
// that follow it.
func Decode(b []byte) (any, []byte, error) {
	return decode(b, 0)
}

const maxDepth = 32

func decode(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 || depth > maxDepth {
		return nil, nil, ErrBencode
	}
	switch c := b[0]; {
	case c == 'i':
		end := indexByte(b, 'e')
		if end < 2 {
			return nil, nil, ErrBencode
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, nil, ErrBencode
		}
		return n, b[end+1:], nil
	case c == 'l':
		list := []any{}
		b = b[1:]
		for {
			if len(b) == 0 {
				return nil, nil, ErrBencode
			}
			if b[0] == 'e' {
				return list, b[1:], nil
			}
			v, rest, err := decode(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			list, b = append(list, v), rest
		}
	case c == 'd':
		d := Dict{}
		b = b[1:]
		for {
			if len(b) == 0 {
				return nil, nil, ErrBencode
			}
			if b[0] == 'e' {
				return d, b[1:], nil
			}
			k, rest, err := decode(b, depth+1)
			ks, ok := k.(string)
			if err != nil || !ok {
				return nil, nil, ErrBencode
			}
			v, rest, err := decode(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			d[ks], b = v, rest
		}
	case c >= '0' && c <= '9':
		colon := indexByte(b, ':')
		if colon < 1 {
			return nil, nil, ErrBencode
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, nil, ErrBencode
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	}
	return nil, nil, ErrBencode
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// String returns d[key] as a string, "" when absent or not a string.
func String(d Dict, key string) string {
	s, _ := d[key].(string)
	return s
}

// Strings returns d[key] as a list of strings (a single string becomes a
// list of one).
func Strings(d Dict, key string) []string {
	switch v := d[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
