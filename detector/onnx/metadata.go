package onnx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

// Metadata is what Ultralytics' exporter (YOLOv5, YOLOv8, YOLO11) writes
// into a model's metadata_props, as far as the detector uses it. A zero
// field is one the model does not have: Metadata refuses zero values.
type Metadata struct {
	Names         []string // class names by class id ("names")
	Height, Width int      // the input picture's size ("imgsz")
	Stride        int      // the largest stride of the detection heads ("stride")
	Task          string   // such as "detect" or "segment" ("task")
}

// maxMetadataInt bounds imgsz and stride, far above any real model's.
const maxMetadataInt = 1 << 16

// Metadata reads Ultralytics' metadata; keys it does not use (author,
// date, version, ...) are ignored. A value that does not parse is an
// error naming the key and the value.
func (m *Model) Metadata() (Metadata, error) {
	return parseMetadata(m.Proto.GetMetadataProps())
}

// metadataKeys are the keys of the metadata entries that parseMetadata
// reads; it ignores the others.
var metadataKeys = []string{"names", "imgsz", "stride", "task"}

// parseMetadata parses the metadata entries of a model, for Metadata and
// ReadMetadata alike.
func parseMetadata(props []*onnxpb.StringStringEntryProto) (Metadata, error) {
	var md Metadata
	seen := map[string]bool{}
	for _, p := range props {
		key, value := p.GetKey(), p.GetValue()
		var err error
		switch key {
		case "names":
			md.Names, err = parseNames(value)
		case "imgsz":
			md.Height, md.Width, err = parseImageSize(value)
		case "stride":
			md.Stride, err = parseInt(value, 1, maxMetadataInt)
		case "task":
			md.Task, err = parseTask(value)
		default:
			continue
		}
		if err == nil && seen[key] {
			err = errors.New("the key appears twice")
		}
		seen[key] = true
		if err != nil {
			return Metadata{}, fmt.Errorf("model metadata %s = %s: %w", key, quoteShort(value), err)
		}
	}
	return md, nil
}

// quoteShort quotes a value for an error, cut to about 80 characters.
func quoteShort(value string) string {
	const most = 80
	if len(value) <= most {
		return strconv.Quote(value)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	return strconv.Quote(value[:cut]) + fmt.Sprintf("... (%d bytes)", len(value))
}

func parseTask(value string) (string, error) {
	if value == "" || len(value) > 32 || strings.IndexFunc(value, func(r rune) bool {
		return !('a' <= r && r <= 'z' || r == '_')
	}) >= 0 {
		return "", errors.New("not a task name such as detect")
	}
	return value, nil
}

// parseImageSize parses imgsz, [height, width] as Python writes a list.
func parseImageSize(value string) (height, width int, err error) {
	s := scanner{s: value}
	var size []int
	err = s.sequence('[', ']', func() error {
		n, err := s.int(1, maxMetadataInt)
		size = append(size, n)
		return err
	})
	if err == nil && len(size) != 2 {
		err = fmt.Errorf("%d numbers, not [height, width]", len(size))
	}
	if err != nil {
		return 0, 0, err
	}
	return size[0], size[1], nil
}

// parseInt parses a decimal integer from lo to hi.
func parseInt(value string, lo, hi int) (int, error) {
	s := scanner{s: value}
	n, err := s.int(lo, hi)
	if err == nil {
		err = s.end()
	}
	return n, err
}

// parseNames parses the class names as Python writes a dict of class ids
// to names, {0: 'person', 1: "o'clock"}, or, as older YOLOv5 exports do, a
// list of names. The ids must be 0 to n-1, each once.
func parseNames(value string) ([]string, error) {
	s := scanner{s: value}
	if strings.HasPrefix(strings.TrimLeft(value, " \t\r\n"), "[") {
		var names []string
		err := s.sequence('[', ']', func() error {
			name, err := s.str()
			names = append(names, name)
			return err
		})
		if err == nil && len(names) == 0 {
			err = errors.New("no class names")
		}
		return names, err
	}
	type entry struct {
		id   int
		name string
	}
	var entries []entry
	err := s.sequence('{', '}', func() error {
		id, err := s.int(0, math.MaxInt32)
		if err != nil {
			return err
		}
		s.space()
		if err := s.expect(':'); err != nil {
			return err
		}
		s.space()
		name, err := s.str()
		entries = append(entries, entry{id, name})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("no class names")
	}
	names := make([]string, len(entries))
	seen := make([]bool, len(entries))
	for _, e := range entries {
		switch {
		case e.id >= len(entries):
			return nil, fmt.Errorf("class id %d, but %d classes: the ids must be 0 to %d", e.id, len(entries), len(entries)-1)
		case seen[e.id]:
			return nil, fmt.Errorf("class id %d appears twice", e.id)
		}
		seen[e.id] = true
		names[e.id] = e.name
	}
	return names, nil
}

// scanner reads the few Python literals that Ultralytics writes: decimal
// integers, strings, lists and dicts of them.
type scanner struct {
	s   string
	pos int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) space() {
	for s.pos < len(s.s) && strings.IndexByte(" \t\r\n", s.s[s.pos]) >= 0 {
		s.pos++
	}
}

func (s *scanner) expect(c byte) error {
	if s.pos >= len(s.s) || s.s[s.pos] != c {
		return s.errorf("expected %q", c)
	}
	s.pos++
	return nil
}

// end makes sure nothing but spaces is left.
func (s *scanner) end() error {
	s.space()
	if s.pos < len(s.s) {
		return s.errorf("unexpected %q after the value", s.s[s.pos])
	}
	return nil
}

// sequence reads open, items separated by commas (one may end the
// sequence, as in Python), close, and the end of the value.
func (s *scanner) sequence(open, close byte, item func() error) error {
	s.space()
	if err := s.expect(open); err != nil {
		return err
	}
	for {
		s.space()
		if s.pos < len(s.s) && s.s[s.pos] == close {
			s.pos++
			return s.end()
		}
		if err := item(); err != nil {
			return err
		}
		s.space()
		if s.pos < len(s.s) && s.s[s.pos] == close {
			continue
		}
		if err := s.expect(','); err != nil {
			return s.errorf("expected ',' or %q", close)
		}
	}
}

// int reads a decimal integer from lo to hi, without the leading zeros
// that Python refuses.
func (s *scanner) int(lo, hi int) (int, error) {
	start := s.pos
	for s.pos < len(s.s) && '0' <= s.s[s.pos] && s.s[s.pos] <= '9' {
		s.pos++
	}
	digits := s.s[start:s.pos]
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		s.pos = start
		return 0, s.errorf("expected a decimal number")
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < lo || n > hi {
		s.pos = start
		return 0, s.errorf("%s is not from %d to %d", quoteShort(digits), lo, hi)
	}
	return n, nil
}

// str reads a Python string literal in single or double quotes, with
// Python's escapes; the string must be valid UTF-8.
func (s *scanner) str() (string, error) {
	if s.pos >= len(s.s) || (s.s[s.pos] != '\'' && s.s[s.pos] != '"') {
		return "", s.errorf("expected a quoted string")
	}
	start, quote := s.pos, s.s[s.pos]
	s.pos++
	var b strings.Builder
	for {
		if s.pos >= len(s.s) || s.s[s.pos] == '\n' {
			s.pos = start
			return "", s.errorf("unterminated string")
		}
		c := s.s[s.pos]
		switch {
		case c == quote:
			s.pos++
			if !utf8.ValidString(b.String()) {
				s.pos = start
				return "", s.errorf("the string is not valid UTF-8")
			}
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			s.pos++
		default:
			if err := s.escape(&b); err != nil {
				return "", err
			}
		}
	}
}

// simpleEscapes are Python's one-letter escapes and what they stand for.
var simpleEscapes = map[byte]byte{'\\': '\\', '\'': '\'', '"': '"', 'n': '\n', 'r': '\r', 't': '\t',
	'a': '\a', 'b': '\b', 'f': '\f', 'v': '\v'}

// escape reads the escape at s.pos, a backslash, into b.
func (s *scanner) escape(b *strings.Builder) error {
	start := s.pos
	s.pos++
	if s.pos >= len(s.s) {
		return s.errorf("unterminated string")
	}
	c := s.s[s.pos]
	s.pos++
	if r, ok := simpleEscapes[c]; ok {
		b.WriteByte(r)
		return nil
	}
	if c == '\n' { // A line continuation.
		return nil
	}
	digits, base := 0, 16
	switch c {
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	case '0', '1', '2', '3', '4', '5', '6', '7':
		s.pos-- // The first of up to three octal digits.
		digits, base = 3, 8
		for i := range 3 {
			if s.pos+i >= len(s.s) || s.s[s.pos+i] < '0' || s.s[s.pos+i] > '7' {
				digits = i
				break
			}
		}
	default:
		// Python keeps an unknown escape's backslash.
		b.WriteByte('\\')
		s.pos--
		return nil
	}
	if s.pos+digits > len(s.s) {
		s.pos = start
		return s.errorf("truncated escape")
	}
	n, err := strconv.ParseUint(s.s[s.pos:s.pos+digits], base, 32)
	if err != nil || !utf8.ValidRune(rune(n)) {
		s.pos = start
		return s.errorf("bad escape %s", quoteShort(s.s[start:min(start+2+digits, len(s.s))]))
	}
	s.pos += digits
	b.WriteRune(rune(n))
	return nil
}
