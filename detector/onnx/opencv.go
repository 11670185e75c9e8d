package onnx

import (
	"cmp"
	"fmt"
	"math"
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
// maxStride is the stride of the head's coarsest feature map, from the
// model's metadata; 0 if unknown, when the head's maps are taken to have
// strides 8, 16, 32 and so on. A graph with an operator that OpenCV 4.6
// lacks and that no rewrite replaces is refused, naming the family of
// models that needs it.
func (m *Model) ForOpenCV(width, height, maxStride int) (Rewrite, error) {
	g := m.Graph()
	for i, n := range g.Proto.GetNode() {
		if family, ok := unsupported[n.GetOpType()]; ok && standard(n) {
			return Rewrite{}, fmt.Errorf("%s cannot run on OpenCV 4.6: its graph needs %s, which OpenCV 4.6's ONNX importer does not have",
				family, describe(i, n))
		}
	}
	var r Rewrite
	head, change, err := g.cutHead(width, height, maxStride)
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

// standard reports whether node n is of the standard operator set.
func standard(n *onnxpb.NodeProto) bool {
	return n.GetDomain() == "" || n.GetDomain() == "ai.onnx"
}

// index is where each value of a graph is defined and read, so that
// walking a graph of any size takes time in proportion to it.
type index struct {
	producer map[string]*onnxpb.NodeProto
	// consumers are the nodes that read each value, in graph order; a node
	// whose subgraph (If, Loop) reads it counts.
	consumers map[string][]*onnxpb.NodeProto
	outputs   map[string]bool // the graph's outputs
}

func newIndex(g Graph) index {
	ix := index{producer: map[string]*onnxpb.NodeProto{}, consumers: map[string][]*onnxpb.NodeProto{}, outputs: map[string]bool{}}
	for _, n := range g.Proto.GetNode() {
		for _, out := range n.GetOutput() {
			if out != "" { // an optional output left out
				ix.producer[out] = n
			}
		}
		// A node that reads a value twice is one of its consumers.
		for _, in := range slices.Compact(slices.Sorted(slices.Values(reads(n, nil)))) {
			ix.consumers[in] = append(ix.consumers[in], n)
		}
	}
	for _, out := range g.Proto.GetOutput() {
		ix.outputs[out.GetName()] = true
	}
	return ix
}

// op is the node that defines value if it is a standard op node with at
// least inputs inputs and one output; nil otherwise.
func (ix index) op(value, op string, inputs int) *onnxpb.NodeProto {
	n := ix.producer[value]
	if n == nil || n.GetOpType() != op || !standard(n) || len(n.GetInput()) < inputs || len(n.GetOutput()) < 1 {
		return nil
	}
	return n
}

// cutHead finds the raw output of an anchor-free head, the Concat along
// the cells of one Reshape per feature map, each of the Concat of a box
// branch of 4*bins channels and a class branch, and makes it the graph's
// output. It returns nil if the graph has no such head, and refuses a
// graph with two.
func (g Graph) cutHead(width, height, maxStride int) (*Head, string, error) {
	ix := newIndex(g)
	var head *Head
	var out string
	for _, n := range g.Proto.GetNode() {
		if n.GetOpType() != "Concat" || !standard(n) || len(n.GetInput()) < 2 || len(n.GetOutput()) != 1 {
			continue
		}
		if axis, ok := intAttribute(n, "axis"); !ok || axis != 2 && axis != -1 {
			continue
		}
		h := g.headOf(ix, n)
		// The head must feed the decoding: the distributions go through a
		// Softmax, which the cut replaces.
		if h == nil || !ix.reaches(n.GetOutput()[0], "Softmax") {
			continue
		}
		if head != nil {
			return nil, "", fmt.Errorf("two detection heads, %q and %q: the exporter decodes one", out, n.GetOutput()[0])
		}
		head, out = h, n.GetOutput()[0]
	}
	if head == nil {
		return nil, "", nil
	}
	// Each map halves the one before, up to the coarsest.
	coarsest := 8 << (len(head.Strides) - 1)
	if maxStride > 0 {
		coarsest = maxStride
	}
	// Strides are powers of two, each map's twice the one before.
	if coarsest&(coarsest-1) != 0 || coarsest>>(len(head.Strides)-1) < 1 {
		return nil, "", fmt.Errorf("a head of %d feature maps cannot have a coarsest stride of %d (metadata stride)", len(head.Strides), coarsest)
	}
	cells := 0
	for i := range head.Strides {
		s := coarsest >> (len(head.Strides) - 1 - i)
		if width%s != 0 || height%s != 0 {
			return nil, "", fmt.Errorf("input %dx%d is not a multiple of the head's stride %d", width, height, s)
		}
		head.Strides[i] = s
		cells += (width / s) * (height / s)
	}
	shape := []int64{1, int64(4*head.Bins + head.Classes), int64(cells)}
	if err := g.SetOutputs(Output{Name: out, Shape: shape}); err != nil {
		return nil, "", err
	}
	removed := g.Prune()
	change := fmt.Sprintf("cut the decoding of the YOLOv8/YOLO11 head (%d nodes: distribution focal loss, anchors, strides %v, class sigmoid) after %q %v, and decode it in Go: OpenCV 4.6's importer fails on the anchor arithmetic",
		removed, head.Strides, out, shape)
	return head, change, nil
}

// headOf tells whether concat joins the raw outputs of an anchor-free
// head's feature maps: each input the Reshape to [1, channels, cells] of
// a Concat of two convolutions, the box branch with 4*bins channels and
// the class branch, the same for every map. It returns nil if not; the
// head's strides are left for the caller to set.
func (g Graph) headOf(ix index, concat *onnxpb.NodeProto) *Head {
	var head *Head
	for _, in := range concat.GetInput() {
		reshape := ix.op(in, "Reshape", 1)
		if reshape == nil {
			return nil
		}
		branches := ix.op(reshape.GetInput()[0], "Concat", 2)
		if branches == nil || len(branches.GetInput()) != 2 {
			return nil
		}
		if axis, ok := intAttribute(branches, "axis"); !ok || axis != 1 {
			return nil
		}
		box, classes := g.convChannels(ix, branches.GetInput()[0]), g.convChannels(ix, branches.GetInput()[1])
		if box < 4 || box%4 != 0 || classes < 1 {
			return nil
		}
		h := &Head{Bins: box / 4, Classes: classes}
		if head == nil {
			head = h
		} else if head.Bins != h.Bins || head.Classes != h.Classes {
			return nil
		}
		head.Strides = append(head.Strides, 0)
	}
	return head
}

// convChannels is the number of output channels of the Conv that defines
// value, from its weights; 0 if value is not a convolution's.
func (g Graph) convChannels(ix index, value string) int {
	conv := ix.op(value, "Conv", 2)
	if conv == nil {
		return 0
	}
	t := g.constantTensor(conv.GetInput()[1])
	if t == nil || len(t.GetDims()) != 4 || t.GetDims()[0] < 1 || t.GetDims()[0] > math.MaxInt32 {
		return 0
	}
	return int(t.GetDims()[0])
}

// reaches reports whether a node of type op reads value, directly or
// through other nodes.
func (ix index) reaches(value, op string) bool {
	seen := map[string]bool{value: true}
	queue := []string{value}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, n := range ix.consumers[v] {
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
	var rewritten []*onnxpb.NodeProto
	for i, n := range g.Proto.GetNode() {
		if n.GetOpType() != "Split" || !standard(n) || len(n.GetInput()) < 2 || n.GetInput()[1] == "" {
			rewritten = append(rewritten, n)
			continue
		}
		sizes, err := g.Int64s(n.GetInput()[1])
		if err != nil {
			return nil, fmt.Errorf("%s: its sizes are not a constant: %w", describe(i, n), err)
		}
		if len(sizes) != len(n.GetOutput()) {
			return nil, fmt.Errorf("%s: %d sizes for %d outputs", describe(i, n), len(sizes), len(n.GetOutput()))
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
					return nil, fmt.Errorf("%s: %w", describe(i, n), err)
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
		changes = append(changes, fmt.Sprintf("replaced %s into parts of %v along axis %d by %d Slices: OpenCV 4.6 splits into equal parts unless the sizes are an attribute",
			describe(i, n), sizes, axis, len(sizes)))
	}
	g.Proto.Node = rewritten
	return changes, nil
}

// scaleMatMulInputs moves the scaling of a MatMul's result by a constant
// of one value (Mul or Div) onto the MatMul's second input, where the
// MatMul's inputs are both computed and the scaling is the only reader of
// its result, which is not a graph output.
func (g Graph) scaleMatMulInputs() []string {
	var changes []string
	ix := newIndex(g)
	taken := func(name string) bool { return ix.producer[name] != nil || g.defines(name) }
	for i, scale := range slices.Clone(g.Proto.GetNode()) {
		op := scale.GetOpType()
		if op != "Mul" && op != "Div" || !standard(scale) || len(scale.GetInput()) != 2 || len(scale.GetOutput()) != 1 {
			continue
		}
		product, factor := scale.GetInput()[0], scale.GetInput()[1]
		if op == "Mul" && g.scalar(product) {
			product, factor = factor, product
		}
		matmul := ix.op(product, "MatMul", 2)
		if matmul == nil || len(matmul.GetInput()) != 2 || len(matmul.GetOutput()) != 1 || !g.scalar(factor) ||
			len(ix.consumers[product]) != 1 || ix.outputs[product] ||
			g.constantTensor(matmul.GetInput()[0]) != nil || g.constantTensor(matmul.GetInput()[1]) != nil {
			continue
		}
		nodes := g.Proto.GetNode()
		at := slices.Index(nodes, matmul)
		// The factor's Constant node may come after the MatMul.
		if c := ix.producer[factor]; c != nil && slices.Index(nodes, c) > at {
			nodes = slices.Delete(nodes, slices.Index(nodes, c), slices.Index(nodes, c)+1)
			nodes = slices.Insert(nodes, at, c)
			at++
		}
		scaled := matmul.GetInput()[1] + "/scaled"
		for k := 2; taken(scaled); k++ {
			scaled = fmt.Sprintf("%s/scaled%d", matmul.GetInput()[1], k)
		}
		moved := &onnxpb.NodeProto{
			Name:   proto.String(cmp.Or(scale.GetName(), fmt.Sprintf("scale%d", i)) + "/input"),
			OpType: proto.String(op),
			Input:  []string{matmul.GetInput()[1], factor},
			Output: []string{scaled},
		}
		ix.producer[scaled] = moved
		nodes = slices.Insert(nodes, at, moved)
		matmul.Input[1] = scaled
		matmul.Output[0] = scale.GetOutput()[0]
		ix.producer[matmul.Output[0]] = matmul
		nodes = slices.DeleteFunc(nodes, func(n *onnxpb.NodeProto) bool { return n == scale })
		g.Proto.Node = nodes
		changes = append(changes, fmt.Sprintf("moved the scaling of %s onto the second input of %s: OpenCV 4.6 fuses a scaling into its MatMul layer and ignores it",
			describe(i, scale), describe(slices.Index(nodes, matmul), matmul)))
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
