// Package onnx reads ONNX model files, checks them, lets the detector
// rewrite their graph in memory and writes them back, so that OpenCV's
// importer is handed only graphs it can read. It also reads the metadata
// that Ultralytics' exporter writes into a model. Pure Go.
package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// Model is a parsed ONNX model. Proto is the whole model, fields this
// package does not know included, for rewrites that the helpers here do
// not cover.
type Model struct {
	Proto *onnxpb.ModelProto
}

// maxNodes bounds the nodes and the initializers of a graph, so that a
// hostile model cannot make its rewrites, which look values up across the
// graph, take long: YOLO11x has under 1000 of each.
const maxNodes = 20000

// modelFile is an ONNX file as Read opens it, the limit of detector/dnn.
var modelFile = boundedfile.Kind{What: "a model file", Limit: 1 << 30}

// Read reads and parses the ONNX model at path; errors name the path.
func Read(path string) (*Model, error) {
	data, err := boundedfile.Read(path, modelFile)
	if err != nil {
		return nil, err // boundedfile's errors name the path.
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse parses an ONNX model and checks that its graph is one: a truncated
// file or another format, which the protobuf decoder may read without
// error, is refused.
func Parse(data []byte) (*Model, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file, not an ONNX model")
	}
	m := &Model{Proto: &onnxpb.ModelProto{}}
	// Unknown fields are kept, and written back by Marshal.
	if err := proto.Unmarshal(data, m.Proto); err != nil {
		return nil, fmt.Errorf("truncated, or not an ONNX model: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Marshal checks the model again, so that a rewrite that broke the graph
// is reported here rather than by OpenCV, and encodes it, the same model
// always to the same bytes.
func (m *Model) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m.Proto)
}

// Opset is the version of the standard operator set ("" or "ai.onnx"
// domain) that the model uses; 0 if it names none, which Parse refuses.
func (m *Model) Opset() int64 {
	for _, o := range m.Proto.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// Graph is the model's main graph.
func (m *Model) Graph() Graph {
	return Graph{Proto: m.Proto.GetGraph()}
}

// check makes sure the model is a graph that an importer can follow in
// order: every value defined once, before it is read, and every output
// defined. Values that subgraphs read from the outer graph are not checked.
func (m *Model) check() error {
	p := m.Proto
	if p.GetIrVersion() <= 0 {
		return errors.New("not an ONNX model: no IR version")
	}
	g := p.GetGraph()
	switch {
	case g == nil:
		return errors.New("not an ONNX model: no graph")
	case len(g.GetNode()) == 0:
		return errors.New("not an ONNX model: the graph has no nodes")
	case len(g.GetInput()) == 0:
		return errors.New("not an ONNX model: the graph has no inputs")
	case len(g.GetOutput()) == 0:
		return errors.New("not an ONNX model: the graph has no outputs")
	case m.Opset() <= 0:
		return errors.New("not an ONNX model: no version of the standard operator set (opset_import)")
	case len(g.GetNode()) > maxNodes || len(g.GetInitializer()) > maxNodes:
		return fmt.Errorf("a graph of %d nodes and %d initializers: more than the %d of either that a detector the exporter runs may have",
			len(g.GetNode()), len(g.GetInitializer()), maxNodes)
	}
	defined := map[string]bool{}
	for _, in := range g.GetInput() {
		if in.GetName() == "" || defined[in.GetName()] {
			return fmt.Errorf("graph input %q is unnamed or appears twice", in.GetName())
		}
		defined[in.GetName()] = true
	}
	initializers := map[string]bool{}
	for _, t := range g.GetInitializer() {
		if t.GetName() == "" || initializers[t.GetName()] {
			return fmt.Errorf("initializer %q is unnamed or appears twice", t.GetName())
		}
		// An initializer may also be a graph input, its default value.
		initializers[t.GetName()] = true
		defined[t.GetName()] = true
	}
	for i, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if in != "" && !defined[in] { // "" is an optional input left out.
				return fmt.Errorf("%s reads %q, which no graph input, initializer or earlier node defines", describe(i, n), in)
			}
		}
		for _, out := range n.GetOutput() {
			if out == "" {
				continue
			}
			if defined[out] {
				return fmt.Errorf("%s defines %q, which is already defined", describe(i, n), out)
			}
			defined[out] = true
		}
	}
	outputs := map[string]bool{}
	for _, out := range g.GetOutput() {
		name := out.GetName()
		if !defined[name] {
			return fmt.Errorf("graph output %q is defined by no node, input or initializer", name)
		}
		if outputs[name] {
			return fmt.Errorf("graph output %q appears twice", name)
		}
		outputs[name] = true
	}
	return nil
}

// describe names node n, the i-th of its graph, in errors.
func describe(i int, n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return fmt.Sprintf("%s node %q", n.GetOpType(), n.GetName())
	}
	return fmt.Sprintf("%s node #%d", n.GetOpType(), i)
}
