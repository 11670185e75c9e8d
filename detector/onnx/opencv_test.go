package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

// graphModel is a model of the nodes and initializers, reading a
// [1, 3, 64, 64] picture and giving output.
func graphModel(nodes []*onnxpb.NodeProto, inits ...*onnxpb.TensorProto) *Model {
	return &Model{Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Node:        nodes,
			Initializer: inits,
			Input:       []*onnxpb.ValueInfoProto{valueInfo("images", 1, 3, 64, 64)},
			Output:      []*onnxpb.ValueInfoProto{valueInfo("output")},
		},
	}}
}

// weights is a float initializer of the dimensions, zeros.
func weights(name string, dims ...int64) *onnxpb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: make([]byte, 4*n)}
}

// ints is an int64 initializer.
func ints(name string, values ...int64) *onnxpb.TensorProto {
	raw := make([]byte, 0, 8*len(values))
	for _, v := range values {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(values))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw}
}

// constantNode defines value as a float scalar, as torch.onnx exports one.
func constantNode(value string, v float32) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String("Constant"), Output: []string{value}, Attribute: []*onnxpb.AttributeProto{{
		Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
		T: &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))},
	}}}
}

func withAxis(n *onnxpb.NodeProto, axis int64) *onnxpb.NodeProto {
	n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(axis)})
	return n
}

// anchorFreeHead is the end of a YOLOv8 network with bins bins per box
// side and classes classes: per map, a box and a class convolution joined
// and flattened, the maps joined, then the decoding down to output.
func anchorFreeHead(bins, classes int64, levels ...string) *Model {
	if len(levels) == 0 {
		levels = []string{"p3", "p4", "p5"}
	}
	var nodes []*onnxpb.NodeProto
	var inits []*onnxpb.TensorProto
	var flat []string
	for _, level := range levels {
		nodes = append(nodes,
			node("Conv", level+"/box", []string{"images", level + ".box.weight"}, []string{level + "/box"}),
			node("Conv", level+"/cls", []string{"images", level + ".cls.weight"}, []string{level + "/cls"}),
			withAxis(node("Concat", level+"/cat", []string{level + "/box", level + "/cls"}, []string{level + "/cat"}), 1),
			node("Reshape", level+"/flat", []string{level + "/cat", "flat.shape"}, []string{level + "/flat"}))
		inits = append(inits, weights(level+".box.weight", 4*bins, 3, 1, 1), weights(level+".cls.weight", classes, 3, 1, 1))
		flat = append(flat, level+"/flat")
	}
	inits = append(inits, ints("flat.shape", 1, 4*bins+classes, -1), ints("split", 4*bins, classes))
	nodes = append(nodes,
		withAxis(node("Concat", "raw", flat, []string{"raw"}), 2),
		withAxis(node("Split", "split", []string{"raw", "split"}, []string{"box", "cls"}), 1),
		node("Softmax", "dfl/softmax", []string{"box"}, []string{"dist"}),
		node("Sigmoid", "sigmoid", []string{"cls"}, []string{"scores"}),
		withAxis(node("Concat", "decoded", []string{"dist", "scores"}, []string{"output"}), 1))
	return graphModel(nodes, inits...)
}

func TestForOpenCVCutsTheHead(t *testing.T) {
	m := anchorFreeHead(16, 3)
	r, err := m.ForOpenCV(64, 32, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Head; h == nil || h.Bins != 16 || h.Classes != 3 || !slices.Equal(h.Strides, []int{8, 16, 32}) {
		t.Fatalf("head %+v, want 16 bins, 3 classes, strides 8, 16, 32", h)
	}
	g := m.Graph()
	// 8x4 + 4x2 + 2x1 cells.
	if shape, err := g.Shape("raw"); err != nil || !slices.Equal(shape, []int64{1, 67, 42}) {
		t.Errorf("output raw %v (%v), want [1 67 42]", shape, err)
	}
	if len(g.Proto.GetOutput()) != 1 {
		t.Errorf("%d outputs, want the raw head alone", len(g.Proto.GetOutput()))
	}
	for _, n := range g.Proto.GetNode() {
		if slices.Contains([]string{"Split", "Softmax", "Sigmoid"}, n.GetOpType()) {
			t.Errorf("node %s %q of the decoding is left", n.GetOpType(), n.GetName())
		}
	}
	if len(r.Changes) != 1 || !strings.Contains(r.Changes[0], `cut the decoding of the YOLOv8/YOLO11 head (4 nodes`) {
		t.Errorf("changes %q, want the cut of 4 nodes", r.Changes)
	}
	if _, err := m.Marshal(); err != nil {
		t.Errorf("the rewritten graph does not check: %v", err)
	}

	if _, err := anchorFreeHead(16, 3).ForOpenCV(60, 64, 0); err == nil || !strings.Contains(err.Error(), "not a multiple of the head's stride 8") {
		t.Errorf("input 60x64: %v, want an error: not a multiple of 8", err)
	}
	// A head without its decoding, as some tools export it, is left alone.
	raw := anchorFreeHead(16, 3)
	raw.Graph().Proto.Output = []*onnxpb.ValueInfoProto{valueInfo("raw")}
	raw.Graph().Prune()
	if r, err := raw.ForOpenCV(64, 64, 0); err != nil || r.Head != nil || len(r.Changes) != 0 {
		t.Errorf("a raw head: %+v, %v; want nothing changed", r, err)
	}
}

// TestForOpenCVHeadStrides checks the strides of heads of four maps, as
// P2 and P6 models have, from the metadata's coarsest stride.
func TestForOpenCVHeadStrides(t *testing.T) {
	for _, tc := range []struct {
		maxStride int
		want      []int
		err       string
	}{
		{0, []int{8, 16, 32, 64}, ""},
		{32, []int{4, 8, 16, 32}, ""},
		{64, []int{8, 16, 32, 64}, ""},
		{48, nil, "a head of 4 feature maps cannot have a coarsest stride of 48"},
		{4, nil, "a head of 4 feature maps cannot have a coarsest stride of 4"},
	} {
		r, err := anchorFreeHead(16, 2, "p2", "p3", "p4", "p5").ForOpenCV(128, 128, tc.maxStride)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("stride %d: %v, want %q", tc.maxStride, err, tc.err)
			}
		case err != nil || r.Head == nil || !slices.Equal(r.Head.Strides, tc.want):
			t.Errorf("stride %d: %+v, %v; want strides %v", tc.maxStride, r.Head, err, tc.want)
		}
	}
}

// TestForOpenCVTwoHeads checks that a graph with two heads, as YOLOv9's
// auxiliary one, is refused rather than one of them silently dropped.
func TestForOpenCVTwoHeads(t *testing.T) {
	a, b := anchorFreeHead(16, 2), anchorFreeHead(16, 2)
	rename := func(n *onnxpb.NodeProto) {
		for i, v := range n.Input {
			if v != "images" && !strings.HasSuffix(v, ".weight") && v != "flat.shape" && v != "split" {
				n.Input[i] = "aux/" + v
			}
		}
		for i, v := range n.Output {
			n.Output[i] = "aux/" + v
		}
		n.Name = proto.String("aux/" + n.GetName())
	}
	g := a.Graph().Proto
	for _, n := range b.Graph().Proto.GetNode() {
		rename(n)
		g.Node = append(g.Node, n)
	}
	g.Node = append(g.Node, node("Add", "both", []string{"output", "aux/output"}, []string{"sum"}))
	g.Output = []*onnxpb.ValueInfoProto{valueInfo("sum")}
	if _, err := a.ForOpenCV(64, 64, 0); err == nil || !strings.Contains(err.Error(), `two detection heads, "raw" and "aux/raw"`) {
		t.Errorf("error %v, want a refusal of two heads", err)
	}
}

// TestForOpenCVCorruptNodes checks that nodes without their inputs, which
// Parse lets through, neither crash a rewrite nor get rewritten.
func TestForOpenCVCorruptNodes(t *testing.T) {
	for name, nodes := range map[string][]*onnxpb.NodeProto{
		"Reshape without inputs": {
			node("Reshape", "r", nil, []string{"r"}),
			withAxis(node("Concat", "raw", []string{"r", "r"}, []string{"raw"}), 2),
			node("Softmax", "s", []string{"raw"}, []string{"output"}),
		},
		"MatMul of one input": {
			node("MatMul", "mm", []string{"images"}, []string{"mm"}),
			constantNode("scale", 2),
			node("Mul", "scaled", []string{"mm", "scale"}, []string{"output"}),
		},
		"Conv without weights": {
			node("Conv", "box", []string{"images"}, []string{"box"}),
			node("Conv", "cls", []string{"images"}, []string{"cls"}),
			withAxis(node("Concat", "cat", []string{"box", "cls"}, []string{"cat"}), 1),
			node("Reshape", "flat", []string{"cat", "images"}, []string{"flat"}),
			withAxis(node("Concat", "raw", []string{"flat", "flat"}, []string{"raw"}), 2),
			node("Softmax", "s", []string{"raw"}, []string{"output"}),
		},
	} {
		if r, err := graphModel(nodes).ForOpenCV(64, 64, 0); err != nil || len(r.Changes) != 0 {
			t.Errorf("%s: %q, %v; want nothing changed", name, r.Changes, err)
		}
	}
}

func TestForOpenCVSplits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sizes  []int64
		slices [][3]int64 // start, end, axis of each Slice; none if the Split stays
	}{
		{"unequal", []int64{2, 2, 5}, [][3]int64{{0, 2, 4}, {2, 4, 4}, {4, 9, 4}}},
		{"equal", []int64{3, 3, 3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outs := []string{"a", "b", "c"}
			m := graphModel([]*onnxpb.NodeProto{
				withAxis(node("Split", "/att/Split", []string{"images", "sizes"}, outs), 4),
				withAxis(node("Concat", "cat", outs, []string{"output"}), 4),
			}, ints("sizes", tc.sizes...))
			r, err := m.ForOpenCV(64, 64, 0)
			if err != nil {
				t.Fatal(err)
			}
			g := m.Graph()
			var got [][3]int64
			for _, n := range g.Proto.GetNode() {
				if n.GetOpType() != "Slice" {
					continue
				}
				var s [3]int64
				for i, in := range n.GetInput()[1:] {
					v, err := g.Int64s(in)
					if err != nil || len(v) != 1 {
						t.Fatalf("Slice %q input %q: %v %v", n.GetName(), in, v, err)
					}
					s[i] = v[0]
				}
				if n.GetInput()[0] != "images" || n.GetOutput()[0] != outs[len(got)] {
					t.Errorf("Slice %q reads %v, defines %v", n.GetName(), n.GetInput(), n.GetOutput())
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.slices) {
				t.Errorf("slices (start, end, axis) %v, want %v", got, tc.slices)
			}
			if (len(r.Changes) == 1) != (tc.slices != nil) {
				t.Errorf("changes %q", r.Changes)
			}
			if _, err := m.Marshal(); err != nil {
				t.Errorf("the rewritten graph does not check: %v", err)
			}
		})
	}

	computed := graphModel([]*onnxpb.NodeProto{
		node("Shape", "shape", []string{"images"}, []string{"sizes"}),
		node("Split", "split", []string{"images", "sizes"}, []string{"a", "output"}),
	})
	if _, err := computed.ForOpenCV(64, 64, 0); err == nil || !strings.Contains(err.Error(), `Split node "split": its sizes are not a constant`) {
		t.Errorf("sizes computed in the graph: %v, want an error naming the Split", err)
	}
}

func TestForOpenCVMovesAttentionScale(t *testing.T) {
	m := graphModel([]*onnxpb.NodeProto{
		node("Transpose", "q", []string{"images"}, []string{"q"}),
		node("MatMul", "scores", []string{"q", "images"}, []string{"scores"}),
		constantNode("scale", 0.125),
		node("Mul", "scaled", []string{"scores", "scale"}, []string{"scaled"}),
		node("Softmax", "softmax", []string{"scaled"}, []string{"output"}),
	})
	r, err := m.ForOpenCV(64, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range m.Graph().Proto.GetNode() {
		ops = append(ops, n.GetOpType()+"("+strings.Join(n.GetInput(), ",")+")->"+strings.Join(n.GetOutput(), ","))
	}
	want := []string{"Transpose(images)->q", "Constant()->scale", "Mul(images,scale)->images/scaled",
		"MatMul(q,images/scaled)->scaled", "Softmax(scaled)->output"}
	if !slices.Equal(ops, want) {
		t.Errorf("nodes\n%q\nwant\n%q", ops, want)
	}
	if len(r.Changes) != 1 || !strings.Contains(r.Changes[0], `moved the scaling of Mul node "scaled" onto the second input of MatMul node "scores"`) {
		t.Errorf("changes %q", r.Changes)
	}
	if _, err := m.Marshal(); err != nil {
		t.Errorf("the rewritten graph does not check: %v", err)
	}

	// A name the graph has already is not taken again.
	taken := graphModel([]*onnxpb.NodeProto{
		node("Relu", "taken", []string{"images"}, []string{"images/scaled"}),
		node("MatMul", "scores", []string{"images/scaled", "images"}, []string{"scores"}),
		constantNode("scale", 0.125),
		node("Mul", "scaled", []string{"scores", "scale"}, []string{"output"}),
	})
	if r, err := taken.ForOpenCV(64, 64, 0); err != nil || len(r.Changes) != 1 {
		t.Errorf("%q, %v; want the scaling moved", r.Changes, err)
	} else if mm := taken.Graph().Producer("output"); mm.GetOpType() != "MatMul" || mm.GetInput()[1] != "images/scaled2" {
		t.Errorf("MatMul %v reads %q, want images/scaled2", mm.GetName(), mm.GetInput())
	}
	if _, err := taken.Marshal(); err != nil {
		t.Errorf("the rewritten graph does not check: %v", err)
	}

	// A MatMul by weights, whose product is also read elsewhere, or is a
	// graph output, stays.
	for name, nodes := range map[string][]*onnxpb.NodeProto{
		"weights": {
			node("MatMul", "fc", []string{"images", "w"}, []string{"fc"}),
			constantNode("scale", 2),
			node("Mul", "scaled", []string{"fc", "scale"}, []string{"output"}),
		},
		"read twice": {
			node("MatMul", "mm", []string{"images", "images"}, []string{"mm"}),
			constantNode("scale", 2),
			node("Mul", "scaled", []string{"mm", "scale"}, []string{"scaled"}),
			node("Add", "add", []string{"mm", "scaled"}, []string{"output"}),
		},
		"a graph output": {
			node("MatMul", "mm", []string{"images", "images"}, []string{"output"}),
			constantNode("scale", 2),
			node("Mul", "scaled", []string{"output", "scale"}, []string{"scaled"}),
		},
	} {
		m := graphModel(nodes, weights("w", 64, 64))
		if r, err := m.ForOpenCV(64, 64, 0); err != nil || len(r.Changes) != 0 {
			t.Errorf("%s: %q, %v; want nothing changed", name, r.Changes, err)
		}
	}
}

func TestForOpenCVRefuses(t *testing.T) {
	for op, family := range map[string]string{
		"TopK":              "NMS-free end-to-end head (YOLOv10",
		"NonMaxSuppression": "non-maximum suppression inside the graph",
		"GridSample":        "deformable attention (RT-DETR)",
	} {
		m := graphModel([]*onnxpb.NodeProto{node(op, "/model/"+op, []string{"images"}, []string{"output"})})
		_, err := m.ForOpenCV(64, 64, 0)
		if err == nil || !strings.Contains(err.Error(), family) || !strings.Contains(err.Error(), op+` node "/model/`+op+`"`) {
			t.Errorf("%s: %v, want a refusal naming %q and the node", op, err, family)
		}
	}
}

func TestParseRefusesHugeGraphs(t *testing.T) {
	nodes := make([]*onnxpb.NodeProto, maxNodes+1)
	prev := "images"
	for i := range nodes {
		out := fmt.Sprint("v", i)
		if i == len(nodes)-1 {
			out = "output"
		}
		nodes[i] = node("Relu", "", []string{prev}, []string{out})
		prev = out
	}
	_, err := Parse(marshal(t, graphModel(nodes).Proto))
	if err == nil || !strings.Contains(err.Error(), "a graph of 20001 nodes") {
		t.Errorf("error %v, want a refusal of 20001 nodes", err)
	}
}
