package onnx

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

func TestParseNames(t *testing.T) {
	for _, tc := range []struct {
		value string
		names []string
		err   string
	}{
		{value: "{0: 'person', 1: 'bicycle', 2: 'car'}", names: []string{"person", "bicycle", "car"}},
		{value: `{1: "o'clock", 0: 'it\'s', 2: 'a\\b', 3: "say \"hi\""}`, names: []string{"it's", "o'clock", `a\b`, `say "hi"`}},
		{value: `{0: 'caf\xe9', 1: '\u20ac\U0001F600', 2: 'tab\there', 3: '\0end', 4: '\d', 5: 'été'}`,
			names: []string{"café", "€😀", "tab\there", "\x00end", `\d`, "été"}},
		{value: " {\n 0 : 'a' ,\t1:'b', } ", names: []string{"a", "b"}},
		{value: "['person', \"car\"]", names: []string{"person", "car"}}, // YOLOv5 before 7.0
		{value: " ['a']", names: []string{"a"}},
		{value: "{0: ''}", names: []string{""}},

		{value: "", err: "at byte 0: expected '{'"},
		{value: "{}", err: "no class names"},
		{value: "[]", err: "no class names"},
		{value: "{0: 'a', 2: 'c'}", err: "class id 2, but 2 classes: the ids must be 0 to 1"},
		{value: "{1: 'b'}", err: "class id 1, but 1 classes: the ids must be 0 to 0"},
		{value: "{0: 'a', 0: 'b'}", err: "class id 0 appears twice"},
		{value: "{99999999999999999999999999: 'a'}", err: `at byte 1: "99999999999999999999999999" is not from 0 to 2147483647`},
		{value: "{2147483647: 'a'}", err: "class id 2147483647, but 1 classes: the ids must be 0 to 0"},
		{value: "{-1: 'a'}", err: "at byte 1: expected a decimal number"},
		{value: "{01: 'a'}", err: "at byte 1: expected a decimal number"},
		{value: "{'0': 'a'}", err: "at byte 1: expected a decimal number"},
		{value: "{0: 'a}", err: "at byte 4: unterminated string"},
		{value: "{0: 'a\\", err: "at byte 7: unterminated string"},
		{value: "{0: 'a\nb'}", err: "at byte 4: unterminated string"},
		{value: "{0: 'a'", err: `at byte 7: expected ',' or '}'`},
		{value: "{0: 'a' 1: 'b'}", err: `at byte 8: expected ',' or '}'`},
		{value: "{0: 'a',, 1: 'b'}", err: "at byte 8: expected a decimal number"},
		{value: "{0 'a'}", err: "at byte 3: expected ':'"},
		{value: "{0: person}", err: "at byte 4: expected a quoted string"},
		{value: "{0: {1: 'a'}}", err: "at byte 4: expected a quoted string"},
		{value: "{0: ['a']}", err: "at byte 4: expected a quoted string"},
		{value: "[['a']]", err: "at byte 1: expected a quoted string"},
		{value: "{0: 'a'} {1: 'b'}", err: `at byte 9: unexpected '{' after the value`},
		{value: "{0: 'a' 'b'}", err: `at byte 8: expected ',' or '}'`},
		{value: `{0: '\x4'}`, err: `at byte 5: bad escape "\\x4'"`},
		{value: `{0: '\ud800'}`, err: `at byte 5: bad escape "\\ud800"`},
		{value: `{0: '\U00110000'}`, err: `at byte 5: bad escape "\\U00110000"`},
		{value: `{0: '\U0001'}`, err: `at byte 5: truncated escape`},
		{value: "{0: '\xff'}", err: "at byte 4: the string is not valid UTF-8"},
	} {
		names, err := parseNames(tc.value)
		if msg := ""; err != nil || tc.err != "" {
			if err != nil {
				msg = err.Error()
			}
			if msg != tc.err {
				t.Errorf("parseNames(%q): error %q, want %q", tc.value, msg, tc.err)
			}
		} else if !slices.Equal(names, tc.names) {
			t.Errorf("parseNames(%q) = %q, want %q", tc.value, names, tc.names)
		}
	}
}

func TestMetadata(t *testing.T) {
	props := func(kv ...string) []*onnxpb.StringStringEntryProto {
		var p []*onnxpb.StringStringEntryProto
		for i := 0; i < len(kv); i += 2 {
			p = append(p, &onnxpb.StringStringEntryProto{Key: proto.String(kv[i]), Value: proto.String(kv[i+1])})
		}
		return p
	}
	long := "{0: '" + strings.Repeat("é", 100) + "'"
	for _, tc := range []struct {
		name  string
		props []*onnxpb.StringStringEntryProto
		want  Metadata
		err   string
	}{
		{"YOLO11", props("description", "Ultralytics YOLO11n model trained on coco.yaml", "author", "Ultralytics",
			"date", "2024-10-01T12:00:00", "version", "8.3.0", "license", "AGPL-3.0 License", "stride", "32", "task", "detect",
			"batch", "1", "imgsz", "[480, 640]", "names", "{0: 'person', 1: 'bicycle'}", "args", "{'batch': 1, 'half': False}"),
			Metadata{Names: []string{"person", "bicycle"}, Height: 480, Width: 640, Stride: 32, Task: "detect"}, ""},
		{"YOLOv5", props("stride", "64", "names", "{0: 'a'}"), Metadata{Names: []string{"a"}, Stride: 64}, ""},
		{"none", nil, Metadata{}, ""},
		{"stride 0", props("stride", "0"), Metadata{}, `model metadata stride = "0": at byte 0: "0" is not from 1 to 65536`},
		{"stride junk", props("stride", "32px"), Metadata{}, `model metadata stride = "32px": at byte 2: unexpected 'p' after the value`},
		{"imgsz one", props("imgsz", "[640]"), Metadata{}, `model metadata imgsz = "[640]": 1 numbers, not [height, width]`},
		{"imgsz huge", props("imgsz", "[640, 1000000]"), Metadata{}, `model metadata imgsz = "[640, 1000000]": at byte 6: "1000000" is not from 1 to 65536`},
		{"imgsz int", props("imgsz", "640"), Metadata{}, `model metadata imgsz = "640": at byte 0: expected '['`},
		{"task", props("task", "detect; rm"), Metadata{}, `model metadata task = "detect; rm": not a task name such as detect`},
		{"twice", props("task", "detect", "task", "detect"), Metadata{}, `model metadata task = "detect": the key appears twice`},
		{"long", props("names", long), Metadata{},
			fmt.Sprintf("model metadata names = %q... (%d bytes): at byte %d: expected ',' or '}'", long[:79], len(long), len(long))},
	} {
		m := testModel()
		m.Proto.MetadataProps = tc.props
		md, err := m.Metadata()
		if msg := ""; err != nil || tc.err != "" {
			if err != nil {
				msg = err.Error()
			}
			if msg != tc.err {
				t.Errorf("%s: error %q, want %q", tc.name, msg, tc.err)
			}
		} else if !slices.Equal(md.Names, tc.want.Names) || md.Height != tc.want.Height || md.Width != tc.want.Width ||
			md.Stride != tc.want.Stride || md.Task != tc.want.Task {
			t.Errorf("%s: Metadata = %+v, want %+v", tc.name, md, tc.want)
		}
	}
}

// pythonDict writes names as Python's repr writes a dict of them, quoting
// the way parseNames reads back.
func pythonDict(names []string) string {
	var b strings.Builder
	b.WriteString("{")
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d: '", i)
		for _, r := range n {
			switch {
			case r == '\'' || r == '\\':
				b.WriteString(`\` + string(r))
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteString("'")
	}
	b.WriteString("}")
	return b.String()
}

// FuzzParseNames checks that parseNames never panics, returns valid UTF-8
// names or an error, and reads back what it read, written as Python does.
func FuzzParseNames(f *testing.F) {
	for _, seed := range []string{"{0: 'person', 1: \"o'clock\"}", `{0: 'caf\xe9\u20ac\n', 1: '\0'}`, "['a', 'b',]", "{0: {1: 'a'}}", "{1: 'b', 0: 'a'}"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		names, err := parseNames(value)
		if err != nil {
			return
		}
		if len(names) == 0 {
			t.Fatalf("parseNames(%q) = no names and no error", value)
		}
		for _, n := range names {
			if !utf8.ValidString(n) {
				t.Fatalf("parseNames(%q): %q is not UTF-8", value, n)
			}
		}
		again, err := parseNames(pythonDict(names))
		if err != nil || !slices.Equal(again, names) {
			t.Fatalf("parseNames(%q) = %q, but read back from %q: %q, %v", value, names, pythonDict(names), again, err)
		}
	})
}
