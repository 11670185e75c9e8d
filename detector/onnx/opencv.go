package onnx

import (
	"cmp"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

// Rewrite is what ForOpenCV changed in a graph.
type Rewrite struct {
	// Changes say what was rewritten and why, one line each, for the log
	// and --config.check.
	Changes []string
	// Head is the anchor-free head whose decoding was cut off the graph,
	// so that the detector decodes its raw output; nil if none was.
	Head *Head
}

// Head is the raw output of an anchor-free YOLOv8 or YOLO11 head:
// [1, 4*Bins + Classes, cells], for each cell of the feature maps of the
// Strides, in order, the distributions of its box sides over Bins
// distances, then a logit per class.
type Head struct {
	Bins, Classes int
	Strides       []int
}

// unsupported are operators that OpenCV 4.6's ONNX importer does not
// have and that no rewrite here replaces, with the models that use them.
var unsupported = map[string]string{
	"TopK":              "an NMS-free end-to-end head (YOLOv10, or an export with nms=True)",
	"NonMaxSuppression": "non-maximum suppression inside the graph (an export with nms=True)",
	"GridSample":        "deformable attention (RT-DETR)",
}

// ForOpenCV rewrites the graph, in place, where OpenCV 4.6's importer
// falls short, for an input of width x height pixels:
//
//   - the decoding at the end of an anchor-free YOLOv8 or YOLO11 head
//     (distribution focal loss, anchors, strides, sigmoid) is cut off, and
//     the head's raw output becomes the graph's: OpenCV 4.6 fails on its
//     anchor arithmetic;
//   - a Split into unequal parts whose sizes are an input (opset 13 and
//     later) becomes one Slice per part: OpenCV 4.6 reads the sizes only
//     from the attribute of opset 11, and splits equally otherwise;
//   - the product of two computed tensors scaled by a constant, as
//     attention scales its scores (YOLO11's C2PSA), scales the second
//     tensor instead: OpenCV 4.6 fuses the scaling into its MatMul layer,
//     which then ignores it, and the scores come out wrong without an
//     error.
//
// A graph with an operator that OpenCV 4.6 lacks and that no rewrite
// replaces is refused, naming the family of models that needs it.
func (m *Model) ForOpenCV(width, height int) (Rewrite, error) {
	g := m.Graph()
	for _, n := range g.Proto.GetNode() {
		if family, ok := unsupported[n.GetOpType()]; ok && n.GetDomain() == "" {
			return Rewrite{}, fmt.Errorf("%s cannot run on OpenCV 4.6: its graph needs %s (node %q), which OpenCV 4.6's ONNX importer does not have",
				family, n.GetOpType(), n.GetName())
		}
	}
	var r Rewrite
	head, change, err := g.cutHead(width, height)
	if err != nil {
		return Rewrite{}, err
	}
	if head != nil {
		r.Head = head
		r.Changes = append(r.Changes, change)
	}
	changes, err := g.splitsToSlices()
	if err != nil {
		return Rewrite{}, err
	}
	r.Changes = append(r.Changes, changes...)
	r.Changes = append(r.Changes, g.scaleMatMulInputs()...)
	return r, nil
}

// cutHead finds the raw output of an anchor-free head, the Concat along
// the cells of one Reshape per feature map, each of the Concat of a box
// branch of 4*bins channels and a class branch, and makes it the graph's
// output. It returns nil if the graph has no such head.
func (g Graph) cutHead(width, height int) (*Head, string, error) {
	for _, n := range g.Proto.GetNode() {
		if n.GetOpType() != "Concat" || n.GetDomain() != "" || len(n.GetInput()) < 2 || len(n.GetOutput()) != 1 {
			continue
		}
		if axis, ok := intAttribute(n, "axis"); !ok || axis != 2 && axis != -1 {
			continue
		}
		head, err := g.headOf(n)
		if err != nil || head == nil {
			continue
		}
		// The head must feed the decoding: the distributions go through a
		// Softmax, which the cut replaces.
		if !g.reaches(n.GetOutput()[0], "Softmax") {
			continue
		}
		cells := 0
		for _, s := range head.Strides {
			if width%s != 0 || height%s != 0 {
				return nil, "", fmt.Errorf("input %dx%d is not a multiple of the head's stride %d", width, height, s)
			}
			cells += (width / s) * (height / s)
		}
		out := n.GetOutput()[0]
		shape := []int64{1, int64(4*head.Bins + head.Classes), int64(cells)}
		if err := g.SetOutputs(Output{Name: out, Shape: shape}); err != nil {
			return nil, "", err
		}
		removed := g.Prune()
		change := fmt.Sprintf("cut the decoding of the YOLOv8/YOLO11 head (%d nodes: distribution focal loss, anchors, strides, class sigmoid) after %q %v, and decode it in Go: OpenCV 4.6's importer fails on the anchor arithmetic",
			removed, out, shape)
		return head, change, nil
	}
	return nil, "", nil
}

// headOf tells whether concat joins the raw outputs of an anchor-free
// head's feature maps: each input the Reshape to [1, channels, cells] of
// a Concat of two convolutions, the box branch with 4*bins channels and
// the class branch, the same for every map. It returns nil if not.
func (g Graph) headOf(concat *onnxpb.NodeProto) (*Head, error) {
	var head *Head
	for i, in := range concat.GetInput() {
		reshape := g.Producer(in)
		if reshape == nil || reshape.GetOpType() != "Reshape" {
			return nil, nil
		}
		branches := g.Producer(reshape.GetInput()[0])
		if branches == nil || branches.GetOpType() != "Concat" || len(branches.GetInput()) != 2 {
			return nil, nil
		}
		if axis, ok := intAttribute(branches, "axis"); !ok || axis != 1 {
			return nil, nil
		}
		box, err := g.convChannels(branches.GetInput()[0])
		if err != nil || box%4 != 0 {
			return nil, err
		}
		classes, err := g.convChannels(branches.GetInput()[1])
		if err != nil {
			return nil, err
		}
		h := &Head{Bins: box / 4, Classes: classes}
		if head == nil {
			head = h
		} else if head.Bins != h.Bins || head.Classes != h.Classes {
			return nil, nil
		}
		// Each map halves the one before, from stride 8.
		head.Strides = append(head.Strides, 8<<i)
	}
	return head, nil
}

// convChannels is the number of output channels of the Conv that defines
// value, from its weights.
func (g Graph) convChannels(value string) (int, error) {
	conv := g.Producer(value)
	if conv == nil || conv.GetOpType() != "Conv" || len(conv.GetInput()) < 2 {
		return 0, fmt.Errorf("%q is not the output of a convolution", value)
	}
	t := g.constantTensor(conv.GetInput()[1])
	if t == nil || len(t.GetDims()) != 4 || t.GetDims()[0] < 1 {
		return 0, fmt.Errorf("convolution %q has no 4-D weights", conv.GetName())
	}
	return int(t.GetDims()[0]), nil
}

// reaches reports whether a node of type op reads value, directly or
// through other nodes.
func (g Graph) reaches(value, op string) bool {
	seen := map[string]bool{value: true}
	queue := []string{value}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, n := range g.Consumers(v) {
			if n.GetOpType() == op {
				return true
			}
			for _, out := range n.GetOutput() {
				if !seen[out] {
					seen[out] = true
					queue = append(queue, out)
				}
			}
		}
	}
	return false
}

// splitsToSlices replaces each Split whose unequal part sizes are an
// input by one Slice per part.
func (g Graph) splitsToSlices() ([]string, error) {
	var changes []string
	nodes := g.Proto.GetNode()
	var rewritten []*onnxpb.NodeProto
	for i, n := range nodes {
		if n.GetOpType() != "Split" || n.GetDomain() != "" || len(n.GetInput()) < 2 || n.GetInput()[1] == "" {
			rewritten = append(rewritten, n)
			continue
		}
		sizes, err := g.Int64s(n.GetInput()[1])
		if err != nil {
			return nil, fmt.Errorf("node %q (Split): its sizes are not a constant: %w", n.GetName(), err)
		}
		if len(sizes) != len(n.GetOutput()) {
			return nil, fmt.Errorf("node %q (Split): %d sizes for %d outputs", n.GetName(), len(sizes), len(n.GetOutput()))
		}
		if !slices.ContainsFunc(sizes, func(s int64) bool { return s != sizes[0] }) {
			rewritten = append(rewritten, n) // equal parts: OpenCV splits right
			continue
		}
		axis, _ := intAttribute(n, "axis")
		start := int64(0)
		for k, size := range sizes {
			prefix := fmt.Sprintf("%s/slice%d/", cmp.Or(n.GetName(), fmt.Sprintf("split%d", i)), k)
			for _, c := range []struct {
				name  string
				value int64
			}{{"starts", start}, {"ends", start + size}, {"axes", axis}} {
				if err := g.AddInt64s(prefix+c.name, []int64{1}, []int64{c.value}); err != nil {
					return nil, fmt.Errorf("node %q (Split): %w", n.GetName(), err)
				}
			}
			start += size
			rewritten = append(rewritten, &onnxpb.NodeProto{
				Name:   proto.String(prefix + "Slice"),
				OpType: proto.String("Slice"),
				Input:  []string{n.GetInput()[0], prefix + "starts", prefix + "ends", prefix + "axes"},
				Output: []string{n.GetOutput()[k]},
			})
		}
		changes = append(changes, fmt.Sprintf("replaced Split node %q into parts of %v along axis %d by %d Slices: OpenCV 4.6 splits into equal parts unless the sizes are an attribute",
			n.GetName(), sizes, axis, len(sizes)))
	}
	g.Proto.Node = rewritten
	return changes, nil
}

// scaleMatMulInputs moves the scaling of a MatMul's result by a constant
// of one value (Mul or Div) onto the MatMul's second input, where the
// MatMul's inputs are both computed and the scaling is its only reader.
func (g Graph) scaleMatMulInputs() []string {
	var changes []string
	for _, scale := range slices.Clone(g.Proto.GetNode()) {
		op := scale.GetOpType()
		if op != "Mul" && op != "Div" || scale.GetDomain() != "" || len(scale.GetInput()) != 2 || len(scale.GetOutput()) != 1 {
			continue
		}
		product, factor := scale.GetInput()[0], scale.GetInput()[1]
		if op == "Mul" && g.scalar(product) {
			product, factor = factor, product
		}
		matmul := g.Producer(product)
		if matmul == nil || matmul.GetOpType() != "MatMul" || !g.scalar(factor) || len(g.Consumers(product)) != 1 ||
			g.constantTensor(matmul.GetInput()[0]) != nil || g.constantTensor(matmul.GetInput()[1]) != nil {
			continue
		}
		nodes := g.Proto.GetNode()
		at := slices.Index(nodes, matmul)
		// The factor's Constant node may come after the MatMul.
		if c := g.Producer(factor); c != nil && slices.Index(nodes, c) > at {
			nodes = slices.Delete(nodes, slices.Index(nodes, c), slices.Index(nodes, c)+1)
			nodes = slices.Insert(nodes, at, c)
			at++
		}
		scaled := matmul.GetInput()[1] + "/scaled"
		moved := &onnxpb.NodeProto{
			Name:   proto.String(scale.GetName() + "/input"),
			OpType: proto.String(op),
			Input:  []string{matmul.GetInput()[1], factor},
			Output: []string{scaled},
		}
		nodes = slices.Insert(nodes, at, moved)
		matmul.Input[1] = scaled
		matmul.Output[0] = scale.GetOutput()[0]
		nodes = slices.DeleteFunc(nodes, func(n *onnxpb.NodeProto) bool { return n == scale })
		g.Proto.Node = nodes
		changes = append(changes, fmt.Sprintf("moved %s node %q onto the second input of MatMul node %q: OpenCV 4.6 fuses a scaling into its MatMul layer and ignores it",
			op, scale.GetName(), matmul.GetName()))
	}
	return changes
}

// scalar reports whether value is a float constant of one element.
func (g Graph) scalar(value string) bool {
	t := g.constantTensor(value)
	if t == nil || onnxpb.TensorProto_DataType(t.GetDataType()) != onnxpb.TensorProto_FLOAT {
		return false
	}
	n := int64(1)
	for _, d := range t.GetDims() {
		n *= d
	}
	return n == 1
}

// intAttribute is the integer attribute called name of node n.
func intAttribute(n *onnxpb.NodeProto, name string) (int64, bool) {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name && a.GetType() == onnxpb.AttributeProto_INT {
			return a.GetI(), true
		}
	}
	return 0, false
}
