package onnx

import (
	"encoding/binary"
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
func anchorFreeHead(bins, classes int64) *Model {
	var nodes []*onnxpb.NodeProto
	var inits []*onnxpb.TensorProto
	var flat []string
	for _, level := range []string{"p3", "p4", "p5"} {
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
	r, err := m.ForOpenCV(64, 32)
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

	if _, err := anchorFreeHead(16, 3).ForOpenCV(60, 64); err == nil || !strings.Contains(err.Error(), "not a multiple of the head's stride 8") {
		t.Errorf("input 60x64: %v, want an error: not a multiple of 8", err)
	}
	// A head without its decoding, as some tools export it, is left alone.
	raw := anchorFreeHead(16, 3)
	raw.Graph().Proto.Output = []*onnxpb.ValueInfoProto{valueInfo("raw")}
	raw.Graph().Prune()
	if r, err := raw.ForOpenCV(64, 64); err != nil || r.Head != nil || len(r.Changes) != 0 {
		t.Errorf("a raw head: %+v, %v; want nothing changed", r, err)
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
			r, err := m.ForOpenCV(64, 64)
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
	if _, err := computed.ForOpenCV(64, 64); err == nil || !strings.Contains(err.Error(), `node "split" (Split): its sizes are not a constant`) {
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
	r, err := m.ForOpenCV(64, 64)
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
	if len(r.Changes) != 1 || !strings.Contains(r.Changes[0], `moved Mul node "scaled" onto the second input of MatMul node "scores"`) {
		t.Errorf("changes %q", r.Changes)
	}
	if _, err := m.Marshal(); err != nil {
		t.Errorf("the rewritten graph does not check: %v", err)
	}

	// A MatMul by weights, or whose product is also read elsewhere, stays.
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
	} {
		m := graphModel(nodes, weights("w", 64, 64))
		if r, err := m.ForOpenCV(64, 64); err != nil || len(r.Changes) != 0 {
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
		_, err := m.ForOpenCV(64, 64)
		if err == nil || !strings.Contains(err.Error(), family) || !strings.Contains(err.Error(), `node "/model/`+op+`"`) {
			t.Errorf("%s: %v, want a refusal naming %q and the node", op, err, family)
		}
	}
}
