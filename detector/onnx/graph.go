package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
)

// Graph is a model's graph, with the look-ups and edits that rewrites need.
// Values are named; a node reads values (its inputs) and defines values
// (its outputs).
type Graph struct {
	Proto *onnxpb.GraphProto
}

// Producer is the node that defines value, nil if none does: the value is
// then a graph input, an initializer or unknown. "" (an optional input or
// output left out) has none.
func (g Graph) Producer(value string) *onnxpb.NodeProto {
	if value == "" {
		return nil
	}
	for _, n := range g.Proto.GetNode() {
		if slices.Contains(n.GetOutput(), value) {
			return n
		}
	}
	return nil
}

// reads appends to names the values that node n reads, those that its
// subgraphs read included (which may also be values that they define).
func reads(n *onnxpb.NodeProto, names []string) []string {
	names = append(names, n.GetInput()...)
	for _, a := range n.GetAttribute() {
		for _, sub := range append([]*onnxpb.GraphProto{a.GetG()}, a.GetGraphs()...) {
			for _, inner := range sub.GetNode() {
				names = reads(inner, names)
			}
			for _, out := range sub.GetOutput() {
				names = append(names, out.GetName())
			}
		}
	}
	return names
}

// constant is the tensor of the constant value called name, of data type
// want, and its number of elements: an initializer, or what a Constant
// node defines, as PyTorch exports the shapes of Reshape nodes.
func (g Graph) constant(name string, want onnxpb.TensorProto_DataType) (*onnxpb.TensorProto, int, error) {
	t := g.constantTensor(name)
	if t == nil {
		return nil, 0, fmt.Errorf("no initializer or Constant node's tensor %q", name)
	}
	if got := onnxpb.TensorProto_DataType(t.GetDataType()); got != want {
		return nil, 0, fmt.Errorf("constant %q holds %s, not %s", name, got, want)
	}
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, 0, fmt.Errorf("constant %q is stored in an external file", name)
	}
	count := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > math.MaxInt32 || count > math.MaxInt32/max(int(d), 1) {
			return nil, 0, fmt.Errorf("constant %q has dimensions %v", name, t.GetDims())
		}
		count *= int(d)
	}
	return t, count, nil
}

// constantTensor is the tensor of the initializer called name, or the
// value of the Constant node that defines it; nil if neither holds it.
func (g Graph) constantTensor(name string) *onnxpb.TensorProto {
	for _, t := range g.Proto.GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	if n := g.Producer(name); n.GetOpType() == "Constant" {
		for _, a := range n.GetAttribute() {
			if a.GetName() == "value" {
				return a.GetT()
			}
		}
	}
	return nil
}

// Int64s are the values of the int64 constant called name (an initializer
// or a Constant node's), from its raw (little-endian) or its typed data.
func (g Graph) Int64s(name string) ([]int64, error) {
	t, count, err := g.constant(name, onnxpb.TensorProto_INT64)
	if err != nil {
		return nil, err
	}
	values := t.GetInt64Data()
	if raw := t.GetRawData(); raw != nil {
		if len(raw) != 8*count {
			return nil, fmt.Errorf("constant %q: %d bytes for %d int64s", name, len(raw), count)
		}
		values = make([]int64, count)
		for i := range values {
			values[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	if len(values) != count {
		return nil, fmt.Errorf("constant %q: %d values for dimensions %v", name, len(values), t.GetDims())
	}
	return values, nil
}

// Float32s are the values of the float constant called name (an
// initializer or a Constant node's), from its raw (little-endian) or its
// typed data.
func (g Graph) Float32s(name string) ([]float32, error) {
	t, count, err := g.constant(name, onnxpb.TensorProto_FLOAT)
	if err != nil {
		return nil, err
	}
	values := t.GetFloatData()
	if raw := t.GetRawData(); raw != nil {
		if len(raw) != 4*count {
			return nil, fmt.Errorf("constant %q: %d bytes for %d floats", name, len(raw), count)
		}
		values = make([]float32, count)
		for i := range values {
			values[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	if len(values) != count {
		return nil, fmt.Errorf("constant %q: %d values for dimensions %v", name, len(values), t.GetDims())
	}
	return values, nil
}

// AddInt64s adds an int64 initializer called name, of the given
// dimensions, such as the shape that a Reshape node reads.
func (g Graph) AddInt64s(name string, dims, values []int64) error {
	if name == "" || g.defines(name) {
		return fmt.Errorf("cannot add initializer %q: the name is empty or taken", name)
	}
	count := int64(1)
	for _, d := range dims {
		count *= d
	}
	if slices.ContainsFunc(dims, func(d int64) bool { return d < 0 }) || count != int64(len(values)) {
		return fmt.Errorf("initializer %q: %d values for dimensions %v", name, len(values), dims)
	}
	raw := make([]byte, 0, 8*len(values))
	for _, v := range values {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	g.Proto.Initializer = append(g.Proto.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     slices.Clone(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
		RawData:  raw,
	})
	return nil
}

// defines reports whether name is a graph input, an initializer or a
// node's output.
func (g Graph) defines(name string) bool {
	for _, v := range g.Proto.GetInput() {
		if v.GetName() == name {
			return true
		}
	}
	for _, t := range g.Proto.GetInitializer() {
		if t.GetName() == name {
			return true
		}
	}
	return g.Producer(name) != nil
}

// Shape is the shape of the graph input or output called name, -1 for a
// dimension without a fixed size (a symbol such as "batch", or unknown).
func (g Graph) Shape(name string) ([]int64, error) {
	for _, v := range append(slices.Clip(g.Proto.GetInput()), g.Proto.GetOutput()...) {
		if v.GetName() != name {
			continue
		}
		tensor := v.GetType().GetTensorType()
		if tensor == nil || tensor.GetShape() == nil {
			return nil, fmt.Errorf("graph input or output %q has no tensor shape", name)
		}
		dims := tensor.GetShape().GetDim()
		shape := make([]int64, len(dims))
		for i, d := range dims {
			shape[i] = -1
			if v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && v.DimValue >= 0 {
				shape[i] = v.DimValue
			}
		}
		return shape, nil
	}
	return nil, fmt.Errorf("no graph input or output %q", name)
}

// Output is a graph output to be: a value, a float32 tensor (as the
// outputs of detection networks are), and its shape, -1 for a dimension
// without a fixed size.
type Output struct {
	Name  string
	Shape []int64
}

// SetOutputs makes outputs the graph's outputs, in their order, in place
// of the graph's. Prune then removes what only the old ones needed.
func (g Graph) SetOutputs(outputs ...Output) error {
	if len(outputs) == 0 {
		return fmt.Errorf("a graph needs an output")
	}
	infos := make([]*onnxpb.ValueInfoProto, len(outputs))
	for i, out := range outputs {
		if !g.defines(out.Name) {
			return fmt.Errorf("cannot make %q a graph output: no node, input or initializer defines it", out.Name)
		}
		if slices.ContainsFunc(outputs[:i], func(o Output) bool { return o.Name == out.Name }) {
			return fmt.Errorf("cannot make %q a graph output twice", out.Name)
		}
		dims := make([]*onnxpb.TensorShapeProto_Dimension, len(out.Shape))
		for j, d := range out.Shape {
			dims[j] = &onnxpb.TensorShapeProto_Dimension{}
			if d >= 0 {
				dims[j].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
			}
		}
		infos[i] = &onnxpb.ValueInfoProto{
			Name: proto.String(out.Name),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
				Shape:    &onnxpb.TensorShapeProto{Dim: dims},
			}}},
		}
	}
	g.Proto.Output = infos
	return nil
}

// Prune removes the nodes that no graph output depends on, then the
// initializers and value infos of values that no node left reads or
// defines, and returns how many nodes it removed. Graph inputs stay: they
// are the network's interface.
func (g Graph) Prune() int {
	needed := map[string]bool{}
	for _, out := range g.Proto.GetOutput() {
		needed[out.GetName()] = true
	}
	nodes := g.Proto.GetNode()
	keep := make([]bool, len(nodes))
	// Nodes are in topological order: walking back, a node's readers come
	// before it.
	for i := len(nodes) - 1; i >= 0; i-- {
		if !slices.ContainsFunc(nodes[i].GetOutput(), func(v string) bool { return needed[v] }) {
			continue
		}
		keep[i] = true
		for _, in := range reads(nodes[i], nil) {
			needed[in] = true
		}
	}
	kept := nodes[:0]
	for i, n := range nodes {
		if keep[i] {
			kept = append(kept, n)
			for _, out := range n.GetOutput() {
				needed[out] = true
			}
		}
	}
	for _, in := range g.Proto.GetInput() {
		needed[in.GetName()] = true // An initializer that is an input is its default.
	}
	removed := len(nodes) - len(kept)
	clear(nodes[len(kept):])
	g.Proto.Node = kept
	g.Proto.Initializer = slices.DeleteFunc(g.Proto.Initializer, func(t *onnxpb.TensorProto) bool { return !needed[t.GetName()] })
	g.Proto.ValueInfo = slices.DeleteFunc(g.Proto.ValueInfo, func(v *onnxpb.ValueInfoProto) bool { return !needed[v.GetName()] })
	return removed
}
