package onnx

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// countingReader counts the bytes read from a file, seeks aside.
type countingReader struct {
	io.ReadSeeker
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	c.read += int64(n)
	return n, err
}

// TestReadMetadata checks that ReadMetadata finds in the networks that
// Ultralytics' exporter writes what Read and Metadata find, reading only
// the metadata and a buffer's worth around it, not the graph.
func TestReadMetadata(t *testing.T) {
	specs := []string{"yolov8-o12-folded-320-c80", "yolo11-o17-traced-320-c2", "yolov5-o12-folded-320-c2"}
	models := testutil.YOLOPatternModels(t, specs...)
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			path := models[spec]
			m, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadMetadata(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReadMetadata = %+v, want Metadata's %+v", got, want)
			}
			if wantNames := map[bool]int{true: 80, false: 2}[strings.HasSuffix(spec, "c80")]; len(got.Names) != wantNames || got.Stride != 32 {
				t.Errorf("%d names, stride %d; want %d, 32", len(got.Names), got.Stride, wantNames)
			}

			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			c := &countingReader{ReadSeeker: f}
			if _, err := readMetadataProps(c, fi.Size()); err != nil {
				t.Fatal(err)
			}
			var metadataSize int
			for _, p := range m.Proto.GetMetadataProps() {
				metadataSize += proto.Size(p) + 3
			}
			// bufio reads 4 KiB at a time: one read at the start, one
			// after the seek past the graph, and the metadata.
			if most := int64(2*4096 + metadataSize); c.read > most || fi.Size() < 10*most {
				t.Errorf("read %d of the %d bytes, want at most %d", c.read, fi.Size(), most)
			}
		})
	}
}

// TestReadMetadataBadFiles checks that ReadMetadata refuses, naming the
// file and what is wrong, a model cut anywhere, files that are not ONNX
// models, metadata that does not parse, and metadata over its limits.
func TestReadMetadataBadFiles(t *testing.T) {
	models := testutil.YOLOPatternModels(t, "yolov8-o12-folded-320-c80")
	good, err := os.ReadFile(models["yolov8-o12-folded-320-c80"])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// withMetadata is the good model with its metadata edited.
	withMetadata := func(edit func(props []*onnxpb.StringStringEntryProto) []*onnxpb.StringStringEntryProto) []byte {
		t.Helper()
		m, err := Parse(good)
		if err != nil {
			t.Fatal(err)
		}
		m.Proto.MetadataProps = edit(m.Proto.MetadataProps)
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	setNames := func(value string) []byte {
		return withMetadata(func(props []*onnxpb.StringStringEntryProto) []*onnxpb.StringStringEntryProto {
			for _, p := range props {
				if p.GetKey() == "names" {
					p.Value = proto.String(value)
				}
			}
			return props
		})
	}
	entries := func(n, size int) []byte {
		return withMetadata(func(props []*onnxpb.StringStringEntryProto) []*onnxpb.StringStringEntryProto {
			for range n {
				props = append(props, &onnxpb.StringStringEntryProto{Key: proto.String("x"), Value: proto.String(strings.Repeat("v", size))})
			}
			return props
		})
	}
	noGraph := withMetadata(func(props []*onnxpb.StringStringEntryProto) []*onnxpb.StringStringEntryProto { return props })
	if m, err := Parse(noGraph); err == nil {
		m.Proto.Graph = nil
		noGraph, _ = proto.Marshal(m.Proto)
	}

	type badFile struct {
		name string
		data []byte
		err  string // after the path and ": "
	}
	cases := []badFile{
		{"empty.onnx", nil, "empty file, not an ONNX model"},
		{"text.onnx", []byte("name: yolov8n\nimgsz: 640\n"), "truncated, or not an ONNX model: at byte"},
		{"no-graph.onnx", noGraph, "not an ONNX model: no graph"},
		{"ir-version-only.onnx", good[:2], "not an ONNX model: no graph"},
		{"no-ir-version.onnx", append([]byte{7<<3 | 2, 0}, 14<<3|2, 0), "not an ONNX model: no IR version"},
		{"bad-names.onnx", setNames("{0: 'person', 1: car}"), `model metadata names = "{0: 'person', 1: car}": at byte 17: expected a quoted string`},
		{"long-entry.onnx", entries(1, maxMetadataEntry), "a metadata entry of 1048583 bytes, over the 1 MiB that one may hold"},
		{"many-entries.onnx", entries(maxMetadataEntries, 1), "more than 10000 metadata entries"},
		{"many-fields.onnx", append(slices.Clone(good), bytes.Repeat([]byte{5 << 3, 1}, maxModelFields)...), "not an ONNX model: more than 65536 fields"},
	}
	for _, cut := range []int{1, len(good) / 4, len(good) / 2, len(good) - 1} {
		cases = append(cases, badFile{"cut.onnx", good[:cut], "truncated, or not an ONNX model: at byte"})
	}
	for _, tc := range cases {
		path := write(tc.name, tc.data)
		_, err := ReadMetadata(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": "+tc.err) {
			t.Errorf("%s of %d bytes: %v, want %q", tc.name, len(tc.data), err, path+": "+tc.err)
		}
	}
}
