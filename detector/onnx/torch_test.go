package onnx

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// python is Debian's, with PyTorch and ONNX (python3-torch, python3-onnx):
// the python3 on the PATH may be another without them.
const python = "/usr/bin/python3"

// TestTorchExport reads a model that PyTorch exported and onnx saved, as
// Ultralytics' exporter does, cuts it after its convolution, and has
// onnx's checker accept the result.
func TestTorchExport(t *testing.T) {
	if out, err := exec.Command(python, "-c", "import torch, onnx").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import torch and onnx (apt install python3-torch python3-onnx): %v\n%s", python, err, out)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.onnx")
	if out, err := exec.Command(python, "testdata/tiny_export.py", path).CombinedOutput(); err != nil {
		t.Fatalf("exporting: %v\n%s", err, out)
	}
	m, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset() != 12 || m.Proto.GetIrVersion() != 7 {
		t.Errorf("opset %d, IR version %d; want 12, 7", m.Opset(), m.Proto.GetIrVersion())
	}
	md, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"person", "o'clock", `say "hi"`}; !slices.Equal(md.Names, want) || md.Height != 32 || md.Width != 64 || md.Stride != 32 || md.Task != "detect" {
		t.Errorf("Metadata = %+v, want names %q, 32x64, stride 32, task detect", md, want)
	}

	g := m.Graph()
	for name, want := range map[string][]int64{"images": {1, 3, 32, 64}, "output0": {1, 6, 16 * 32}} {
		if shape, err := g.Shape(name); err != nil || !slices.Equal(shape, want) {
			t.Errorf("Shape(%s) = %v, %v; want %v", name, shape, err, want)
		}
	}
	weights, err := g.Float32s("conv.weight")
	if err != nil {
		t.Fatal(err)
	}
	if len(weights) != 6*3*3*3 || weights[0] != 0 || weights[1] != float32(1)/100 || weights[161] != float32(161)/100 {
		t.Errorf("conv.weight = %v, want 0, 0.01, ... 1.61", weights)
	}
	if bias, err := g.Float32s("conv.bias"); err != nil || !slices.Equal(bias, []float32{-1, 0.5, 0, 0, 0, 2}) {
		t.Errorf("conv.bias = %v, %v", bias, err)
	}
	reshape := g.Producer("output0")
	if shape, err := g.Int64s(reshape.GetInput()[1]); reshape.GetOpType() != "Reshape" || err != nil || !slices.Equal(shape, []int64{1, 6, -1}) {
		t.Errorf("output0's producer %s reads the shape %v, %v; want a Reshape to [1 6 -1]", reshape.GetOpType(), shape, err)
	}

	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, file) {
		t.Errorf("Marshal wrote %d bytes, different from the file's %d", len(data), len(file))
	}
	for _, cut := range []int{1, len(file) / 4, len(file) / 2, len(file) - 10} {
		if _, err := Parse(file[:cut]); err == nil || !strings.Contains(err.Error(), "not an ONNX model") {
			t.Errorf("Parse of the first %d of %d bytes: %v, want an error", cut, len(file), err)
		}
	}
	again, err := Parse(data)
	if err != nil || !proto.Equal(again.Proto, m.Proto) {
		t.Errorf("Parse(Marshal(m)) differs from m: %v", err)
	}

	conv := reshape.GetInput()[0]
	conv = g.Producer(conv).GetInput()[0]
	if err := g.SetOutputs(Output{Name: conv, Shape: []int64{1, 6, 16, 32}}); err != nil {
		t.Fatal(err)
	}
	if removed := g.Prune(); removed != 3 {
		t.Errorf("Prune removed %d nodes, want 3 (Sigmoid, Constant, Reshape)", removed)
	}
	if data, err = m.Marshal(); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.onnx")
	if err := os.WriteFile(cut, data, 0o600); err != nil {
		t.Fatal(err)
	}
	check := `import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print(len(m.graph.node), [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in m.graph.output])`
	out, err := exec.Command(python, "-c", check, cut).CombinedOutput()
	if want := "1 [('/conv/Conv_output_0', [1, 6, 16, 32])]"; err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("onnx's checker on the cut model: %v\n%s\nwant %s", err, out, want)
	}
}
