package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

// valueInfo is a float tensor value of the given shape, -1 for a symbol.
func valueInfo(name string, shape ...int64) *onnxpb.ValueInfoProto {
	dims := make([]*onnxpb.TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		if d < 0 {
			dims[i].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}},
	}}}
}

func node(op, name string, inputs, outputs []string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: inputs, Output: outputs}
}

// testModel is a small detection network: images -> Conv -> Sigmoid ->
// Reshape -> output, its weights in typed data and its shape in raw data.
func testModel() *Model {
	return &Model{Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)}, {Domain: proto.String(""), Version: proto.Int64(12)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("test"),
			Node: []*onnxpb.NodeProto{
				node("Conv", "conv", []string{"images", "weights", ""}, []string{"conv_out"}),
				node("Sigmoid", "", []string{"conv_out"}, []string{"sig_out"}),
				node("Reshape", "reshape", []string{"sig_out", "shape"}, []string{"output"}),
			},
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("weights"), Dims: []int64{2, 3, 1, 1}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{1, 2, 3, 4, 5, -6.5}},
				{Name: proto.String("shape"), Dims: []int64{3}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
					RawData: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			},
			Input:     []*onnxpb.ValueInfoProto{valueInfo("images", -1, 3, 4, 8)},
			Output:    []*onnxpb.ValueInfoProto{valueInfo("output", 1, 2, 32)},
			ValueInfo: []*onnxpb.ValueInfoProto{valueInfo("conv_out", 1, 2, 4, 8), valueInfo("sig_out", 1, 2, 4, 8)},
		},
		MetadataProps: []*onnxpb.StringStringEntryProto{
			{Key: proto.String("names"), Value: proto.String("{0: 'person', 1: \"o'clock\"}")},
			{Key: proto.String("imgsz"), Value: proto.String("[4, 8]")},
		},
	}}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseRefuses checks that what is not an ONNX model, or not one that
// an importer can follow, is refused with an error that says why.
func TestParseRefuses(t *testing.T) {
	valid := marshal(t, testModel().Proto)
	edit := func(change func(m *onnxpb.ModelProto)) []byte {
		m := testModel().Proto
		change(m)
		return marshal(t, m)
	}
	g := func(m *onnxpb.ModelProto) *onnxpb.GraphProto { return m.Graph }
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"empty", nil, "empty file, not an ONNX model"},
		{"truncated", valid[:len(valid)/2], "truncated, or not an ONNX model: "},
		{"JPEG", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb"), "truncated, or not an ONNX model: "},
		// A Darknet weights header: version 0.2.0, then "seen".
		{"Darknet weights", []byte{0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, 0x3d, 0xcc}, "truncated, or not an ONNX model: "},
		// Bytes that decode as a model of one field.
		{"IR version alone", []byte("\x08\x01"), "not an ONNX model: no graph"},
		{"no IR version", edit(func(m *onnxpb.ModelProto) { m.IrVersion = nil }), "not an ONNX model: no IR version"},
		{"no nodes", edit(func(m *onnxpb.ModelProto) { g(m).Node = nil }), "not an ONNX model: the graph has no nodes"},
		{"no inputs", edit(func(m *onnxpb.ModelProto) { g(m).Input = nil }), "not an ONNX model: the graph has no inputs"},
		{"no outputs", edit(func(m *onnxpb.ModelProto) { g(m).Output = nil }), "not an ONNX model: the graph has no outputs"},
		{"no standard opset", edit(func(m *onnxpb.ModelProto) { m.OpsetImport = m.OpsetImport[:1] }), "not an ONNX model: no version of the standard operator set (opset_import)"},
		{"unknown output", edit(func(m *onnxpb.ModelProto) { g(m).Output[0].Name = proto.String("boxes") }), `graph output "boxes" is defined by no node, input or initializer`},
		{"duplicate output", edit(func(m *onnxpb.ModelProto) { g(m).Output = append(g(m).Output, valueInfo("output")) }), `graph output "output" appears twice`},
		{"value defined twice", edit(func(m *onnxpb.ModelProto) { g(m).Node[1].Output[0] = "conv_out" }), `Sigmoid node #1 defines "conv_out", which is already defined`},
		{"read before defined", edit(func(m *onnxpb.ModelProto) { n := g(m).Node; n[0], n[1] = n[1], n[0] }),
			`Sigmoid node #0 reads "conv_out", which no graph input, initializer or earlier node defines`},
		{"duplicate input", edit(func(m *onnxpb.ModelProto) { g(m).Input = append(g(m).Input, valueInfo("images")) }), `graph input "images" is unnamed or appears twice`},
		{"duplicate initializer", edit(func(m *onnxpb.ModelProto) { g(m).Initializer[1].Name = proto.String("weights") }), `initializer "weights" is unnamed or appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.data)
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Fatalf("Parse = %v, %v; want the error %q", m, err, tc.err)
			}
		})
	}
}

// TestRead checks that Read parses a model file, and that its errors name
// the file.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	good, renamed := filepath.Join(dir, "good.onnx"), filepath.Join(dir, "yolov4.onnx")
	if err := os.WriteFile(good, marshal(t, testModel().Proto), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(renamed, []byte{0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xe1, 0xf5, 0x05}, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Read(good)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m.Proto, testModel().Proto) {
		t.Errorf("Read(%s) = %v, want %v", good, m.Proto, testModel().Proto)
	}
	for path, want := range map[string]string{
		renamed:                       renamed + ": truncated, or not an ONNX model: ",
		filepath.Join(dir, "missing"): "stat " + filepath.Join(dir, "missing") + ": no such file or directory",
		dir:                           dir + ": not a regular file but a directory",
	} {
		if _, err := Read(path); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Read(%s) = %v, want the error %q", path, err, want)
		}
	}
}

// TestMarshal checks that Marshal writes back what Parse read, fields that
// this schema does not know included, always the same bytes, and that it
// refuses a graph that a rewrite broke.
func TestMarshal(t *testing.T) {
	// Field 1000 of the model and of its graph: a newer schema's.
	graph := marshal(t, testModel().Proto.Graph)
	graph = protowire.AppendTag(graph, 1000, protowire.BytesType)
	graph = protowire.AppendString(graph, "a graph field from the future")
	var data []byte
	data = protowire.AppendTag(data, 1, protowire.VarintType)
	data = protowire.AppendVarint(data, 8)
	data = protowire.AppendTag(data, 7, protowire.BytesType) // graph
	data = protowire.AppendBytes(data, graph)
	data = append(data, marshal(t, &onnxpb.ModelProto{OpsetImport: testModel().Proto.OpsetImport})...)
	data = protowire.AppendTag(data, 1000, protowire.VarintType)
	data = protowire.AppendVarint(data, 42)

	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, unknown := range [][]byte{[]byte("a graph field from the future"), protowire.AppendVarint(protowire.AppendTag(nil, 1000, protowire.VarintType), 42)} {
		if !bytes.Contains(out, unknown) {
			t.Errorf("Marshal lost the unknown field %q", unknown)
		}
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again.Proto, m.Proto) {
		t.Errorf("Parse(Marshal(m)) = %v, want %v", again.Proto, m.Proto)
	}
	if out2, _ := again.Marshal(); !bytes.Equal(out2, out) {
		t.Error("Marshal wrote the same model to different bytes")
	}

	m.Graph().Proto.Node[2].Input[0] = "missing"
	if _, err := m.Marshal(); err == nil || err.Error() != `Reshape node "reshape" reads "missing", which no graph input, initializer or earlier node defines` {
		t.Errorf("Marshal of a broken graph: %v", err)
	}
}

func TestOpset(t *testing.T) {
	for _, tc := range []struct {
		opsets []*onnxpb.OperatorSetIdProto
		want   int64
	}{
		{testModel().Proto.OpsetImport, 12},
		{[]*onnxpb.OperatorSetIdProto{{Domain: proto.String("ai.onnx"), Version: proto.Int64(17)}}, 17},
		{[]*onnxpb.OperatorSetIdProto{{Version: proto.Int64(11)}}, 11}, // No domain: the default.
		{[]*onnxpb.OperatorSetIdProto{{Domain: proto.String("ai.onnx.ml"), Version: proto.Int64(3)}}, 0},
	} {
		m := &Model{Proto: &onnxpb.ModelProto{OpsetImport: tc.opsets}}
		if got := m.Opset(); got != tc.want {
			t.Errorf("Opset of %v = %d, want %d", tc.opsets, got, tc.want)
		}
	}
}

// TestReadOtherFormats reads real files of other formats that an operator
// may name in model: by mistake, Darknet weights and a camera's JPEG.
func TestReadOtherFormats(t *testing.T) {
	shared := "../../../shared"
	for _, path := range []string{
		filepath.Join(shared, "models/yolo-fastest-1.1/yolo-fastest-1.1.weights"),
		filepath.Join(shared, "models/yolo-fastest-1.1/yolo-fastest-1.1.cfg"),
		filepath.Join(shared, "models/yolo-fastest-1.1/coco.names"),
		filepath.Join(shared, "images/dog.jpg"),
	} {
		if _, err := os.Stat(path); err != nil {
			t.Skipf("the shared models are missing: %v", err)
		}
		m, err := Read(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), "not an ONNX model") {
			t.Errorf("Read(%s) = %v, %v; want an error that it is not an ONNX model", path, m, err)
		}
		t.Log(err)
	}
}
