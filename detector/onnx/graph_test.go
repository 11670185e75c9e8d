package onnx

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

func TestProducerConsumers(t *testing.T) {
	g := testModel().Graph()
	g.Proto.Node[1].Output = append(g.Proto.Node[1].Output, "") // An optional output left out.
	// A node whose subgraph reads sig_out counts among its consumers.
	g.Proto.Node = append(g.Proto.Node, &onnxpb.NodeProto{OpType: proto.String("If"), Input: []string{"cond"}, Output: []string{"if_out"},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("then_branch"), G: &onnxpb.GraphProto{
			Node: []*onnxpb.NodeProto{node("Identity", "inner", []string{"sig_out"}, []string{"inner_out"})}}}}})
	name := func(n *onnxpb.NodeProto) string { return n.GetOpType() + ":" + n.GetName() }
	for _, tc := range []struct {
		value, producer string
		consumers       []string
	}{
		{"images", "", []string{"Conv:conv"}},
		{"weights", "", []string{"Conv:conv"}},
		{"conv_out", "Conv:conv", []string{"Sigmoid:"}},
		{"sig_out", "Sigmoid:", []string{"Reshape:reshape", "If:"}},
		{"output", "Reshape:reshape", nil},
		{"if_out", "If:", nil},
		{"unknown", "", nil},
		{"", "", []string{"Conv:conv"}}, // Conv's bias left out.
	} {
		producer := ""
		if p := g.Producer(tc.value); p != nil {
			producer = name(p)
		}
		if p := newIndex(g).producer[tc.value]; p != g.Producer(tc.value) {
			t.Errorf("%s: the index's producer %v is not the graph's", tc.value, p)
		}
		var consumers []string
		for _, n := range newIndex(g).consumers[tc.value] {
			consumers = append(consumers, name(n))
		}
		if producer != tc.producer || !slices.Equal(consumers, tc.consumers) {
			t.Errorf("%s: producer %q, consumers %q; want %q, %q", tc.value, producer, consumers, tc.producer, tc.consumers)
		}
	}
}

func TestConstants(t *testing.T) {
	g := testModel().Graph()
	tensor := func(name string, typ onnxpb.TensorProto_DataType, dims []int64, raw []byte) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(typ)), Dims: dims, RawData: raw}
	}
	g.Proto.Initializer = append(g.Proto.Initializer,
		&onnxpb.TensorProto{Name: proto.String("typed"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{2}, Int64Data: []int64{-3, 1 << 40}},
		tensor("raw floats", onnxpb.TensorProto_FLOAT, []int64{2}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc1}), // 1, -10
		tensor("scalar", onnxpb.TensorProto_INT64, nil, []byte{7, 0, 0, 0, 0, 0, 0, 0}),
		tensor("short", onnxpb.TensorProto_INT64, []int64{2}, []byte{7, 0, 0, 0, 0, 0, 0, 0}),
		&onnxpb.TensorProto{Name: proto.String("missing values"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Dims: []int64{3}, FloatData: []float32{1}},
		tensor("huge", onnxpb.TensorProto_INT64, []int64{1 << 31, 1 << 31}, nil),
		tensor("negative", onnxpb.TensorProto_INT64, []int64{-1}, nil),
		&onnxpb.TensorProto{Name: proto.String("external"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), DataLocation: onnxpb.TensorProto_EXTERNAL.Enum()},
	)
	g.Proto.Node = append(g.Proto.Node,
		&onnxpb.NodeProto{OpType: proto.String("Constant"), Output: []string{"constant"}, Attribute: []*onnxpb.AttributeProto{
			{Name: proto.String("value"), T: tensor("", onnxpb.TensorProto_INT64, []int64{3}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})}}},
		// value_ints, which the helpers do not read.
		&onnxpb.NodeProto{OpType: proto.String("Constant"), Output: []string{"ints"}, Attribute: []*onnxpb.AttributeProto{
			{Name: proto.String("value_ints"), Ints: []int64{1}}}},
	)
	for _, tc := range []struct {
		name  string
		ints  []int64
		float []float32
		err   string
	}{
		{name: "shape", ints: []int64{1, 2, -1}},
		{name: "typed", ints: []int64{-3, 1 << 40}},
		{name: "scalar", ints: []int64{7}},
		{name: "constant", ints: []int64{1, 6, -2}},
		{name: "weights", float: []float32{1, 2, 3, 4, 5, -6.5}},
		{name: "raw floats", float: []float32{1, -10}},
		{name: "weights", ints: []int64{}, err: `constant "weights" holds FLOAT, not INT64`},
		{name: "nothing", ints: []int64{}, err: `no initializer or Constant node's tensor "nothing"`},
		{name: "ints", ints: []int64{}, err: `no initializer or Constant node's tensor "ints"`},
		{name: "conv_out", float: []float32{}, err: `no initializer or Constant node's tensor "conv_out"`},
		{name: "short", ints: []int64{}, err: `constant "short": 8 bytes for 2 int64s`},
		{name: "missing values", float: []float32{}, err: `constant "missing values": 1 values for dimensions [3]`},
		{name: "huge", ints: []int64{}, err: `constant "huge" has dimensions [2147483648 2147483648]`},
		{name: "negative", ints: []int64{}, err: `constant "negative" has dimensions [-1]`},
		{name: "external", float: []float32{}, err: `constant "external" is stored in an external file`},
	} {
		var err error
		if tc.ints != nil {
			var got []int64
			got, err = g.Int64s(tc.name)
			if err == nil && !slices.Equal(got, tc.ints) {
				t.Errorf("Int64s(%q) = %v, want %v", tc.name, got, tc.ints)
			}
		} else {
			var got []float32
			got, err = g.Float32s(tc.name)
			if err == nil && !slices.Equal(got, tc.float) {
				t.Errorf("Float32s(%q) = %v, want %v", tc.name, got, tc.float)
			}
		}
		if msg := ""; err != nil || tc.err != "" {
			if err != nil {
				msg = err.Error()
			}
			if msg != tc.err {
				t.Errorf("%q: error %q, want %q", tc.name, msg, tc.err)
			}
		}
	}
}

func TestAddInt64s(t *testing.T) {
	g := testModel().Graph()
	if err := g.AddInt64s("new shape", []int64{2}, []int64{-1, 1 << 33}); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Int64s("new shape"); err != nil || !slices.Equal(got, []int64{-1, 1 << 33}) {
		t.Errorf("Int64s of the added initializer = %v, %v", got, err)
	}
	for _, tc := range []struct {
		name   string
		dims   []int64
		values []int64
		err    string
	}{
		{"shape", []int64{1}, []int64{1}, `cannot add initializer "shape": the name is empty or taken`},
		{"conv_out", []int64{1}, []int64{1}, `cannot add initializer "conv_out": the name is empty or taken`},
		{"images", []int64{1}, []int64{1}, `cannot add initializer "images": the name is empty or taken`},
		{"", []int64{1}, []int64{1}, `cannot add initializer "": the name is empty or taken`},
		{"x", []int64{2}, []int64{1}, `initializer "x": 1 values for dimensions [2]`},
		{"x", []int64{-1, -1}, []int64{1}, `initializer "x": 1 values for dimensions [-1 -1]`},
	} {
		if err := g.AddInt64s(tc.name, tc.dims, tc.values); err == nil || err.Error() != tc.err {
			t.Errorf("AddInt64s(%q, %v, %v) = %v, want %q", tc.name, tc.dims, tc.values, err, tc.err)
		}
	}
}

func TestShape(t *testing.T) {
	g := testModel().Graph()
	g.Proto.Output = append(g.Proto.Output, &onnxpb.ValueInfoProto{Name: proto.String("conv_out")})
	g.Proto.Output[0].Type.GetTensorType().Shape.Dim[2].Value = nil // Unknown.
	for _, tc := range []struct {
		name  string
		shape []int64
		err   string
	}{
		{name: "images", shape: []int64{-1, 3, 4, 8}},
		{name: "output", shape: []int64{1, 2, -1}},
		{name: "conv_out", err: `graph input or output "conv_out" has no tensor shape`},
		{name: "sig_out", err: `no graph input or output "sig_out"`},
	} {
		shape, err := g.Shape(tc.name)
		if msg := ""; err != nil || tc.err != "" {
			if err != nil {
				msg = err.Error()
			}
			if msg != tc.err {
				t.Errorf("Shape(%q): error %q, want %q", tc.name, msg, tc.err)
			}
		} else if !slices.Equal(shape, tc.shape) {
			t.Errorf("Shape(%q) = %v, want %v", tc.name, shape, tc.shape)
		}
	}
}

// TestSetOutputsPrune cuts the network after its convolution, as a rewrite
// that decodes the heads in Go would: what only the old output needed
// goes, and the model still marshals.
func TestSetOutputsPrune(t *testing.T) {
	m := testModel()
	g := m.Graph()
	if err := g.SetOutputs(Output{"conv_out", []int64{1, 2, -1, 8}}, Output{"images", []int64{1, 3, 4, 8}}); err != nil {
		t.Fatal(err)
	}
	if removed := g.Prune(); removed != 2 {
		t.Errorf("Prune removed %d nodes, want 2", removed)
	}
	var nodes, initializers, infos []string
	for _, n := range g.Proto.Node {
		nodes = append(nodes, n.GetName())
	}
	for _, i := range g.Proto.Initializer {
		initializers = append(initializers, i.GetName())
	}
	for _, v := range g.Proto.ValueInfo {
		infos = append(infos, v.GetName())
	}
	if !slices.Equal(nodes, []string{"conv"}) || !slices.Equal(initializers, []string{"weights"}) || !slices.Equal(infos, []string{"conv_out"}) {
		t.Errorf("after Prune: nodes %q, initializers %q, value infos %q", nodes, initializers, infos)
	}
	if shape, err := g.Shape("conv_out"); err != nil || !slices.Equal(shape, []int64{1, 2, -1, 8}) {
		t.Errorf("Shape of the new output = %v, %v", shape, err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Fatal(err)
	}
	if removed := g.Prune(); removed != 0 {
		t.Errorf("a second Prune removed %d nodes", removed)
	}

	for _, tc := range []struct {
		outputs []Output
		err     string
	}{
		{nil, "a graph needs an output"},
		{[]Output{{Name: "boxes"}}, `cannot make "boxes" a graph output: no node, input or initializer defines it`},
		{[]Output{{Name: "conv_out"}, {Name: "conv_out"}}, `cannot make "conv_out" a graph output twice`},
	} {
		if err := g.SetOutputs(tc.outputs...); err == nil || err.Error() != tc.err {
			t.Errorf("SetOutputs(%v) = %v, want %q", tc.outputs, err, tc.err)
		}
	}
}
