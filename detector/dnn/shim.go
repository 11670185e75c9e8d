package dnn

// #cgo pkg-config: opencv4
// #cgo CXXFLAGS: --std=c++11
// #include <stdlib.h>
// #include "dnn.h"
import "C"

import (
	"errors"
	"unsafe"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/video"
)

// OpenCV logs straight to stderr: warnings such as its own CUDA fallbacks,
// and errors that it also throws. What matters comes back through our
// errors and logger instead, once.
func init() {
	C.dnn_quiet_logging()
}

// run is a (backend, target) pair a network runs on.
type run C.dnn_run

const (
	runCPU      run = C.DNN_RUN_CPU
	runCUDA     run = C.DNN_RUN_CUDA
	runCUDAFP16 run = C.DNN_RUN_CUDA_FP16
)

// shimError turns a message from the shim into an error and frees it.
func shimError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// opencvVersion is the version of the OpenCV headers the shim was built with.
func opencvVersion() string {
	return C.GoString(C.dnn_version())
}

// CUDADevices is the number of CUDA devices OpenCV can use
// (cv::cuda::getCudaEnabledDeviceCount): 0 when OpenCV was built without
// CUDA, -1 when the driver is missing or too old.
func CUDADevices() int {
	return int(C.dnn_cuda_devices())
}

// available reports whether this OpenCV build has the DNN backend and
// target of r.
func available(r run) (bool, error) {
	var ok C.int
	if err := shimError(C.dnn_has_run(C.dnn_run(r), &ok)); err != nil {
		return false, err
	}
	return ok != 0, nil
}

// net is one loaded network. It must not be used by two goroutines at once.
type net struct {
	p *C.dnn_net
	// outputs is reused by each forward pass.
	outputs []detector.Output
}

// readNet loads a network with cv::dnn::readNet and sets it to run on r.
func readNet(model, config string, r run) (*net, error) {
	cModel, cConfig := C.CString(model), C.CString(config)
	defer C.free(unsafe.Pointer(cModel))
	defer C.free(unsafe.Pointer(cConfig))
	var p *C.dnn_net
	if err := shimError(C.dnn_read(cModel, cConfig, C.dnn_run(r), &p)); err != nil {
		return nil, err
	}
	return &net{p: p}, nil
}

// readONNX loads an ONNX network from its bytes with cv::dnn::readNetFromONNX
// and sets it to run on r.
func readONNX(model []byte, r run) (*net, error) {
	if len(model) == 0 {
		return nil, errors.New("empty ONNX model")
	}
	var p *C.dnn_net
	// OpenCV copies the bytes during the call, as cgo requires.
	if err := shimError(C.dnn_read_onnx((*C.char)(unsafe.Pointer(&model[0])), C.size_t(len(model)), C.dnn_run(r), &p)); err != nil {
		return nil, err
	}
	return &net{p: p}, nil
}

// weights counts the values that a Darknet network read from its weights
// file.
func (n *net) weights() (int, error) {
	var count C.size_t
	if err := shimError(C.dnn_weights(n.p, &count)); err != nil {
		return 0, err
	}
	return int(count), nil
}

// forward places pic in the network input as p and pre say, runs the network
// and returns its outputs, valid until the next call.
func (n *net) forward(pic video.Image, p detector.Placement, pre detector.Preprocess) ([]detector.Output, error) {
	in := C.dnn_input{
		width:        C.int(pic.Width),
		height:       C.int(pic.Height),
		stride:       C.int(pic.Stride),
		left:         C.int(p.Left),
		top:          C.int(p.Top),
		input_width:  C.int(p.InputWidth),
		input_height: C.int(p.InputHeight),
		pad:          C.double(pre.Pad),
		scale:        C.double(pre.Scale),
		mean:         [3]C.double{C.double(pre.Mean[0]), C.double(pre.Mean[1]), C.double(pre.Mean[2])},
	}
	if pre.SwapRB {
		in.swap_rb = 1
	}
	var cOuts *C.dnn_output
	var count C.int
	// The shim reads pic.Pix during the call only, as cgo requires.
	err := shimError(C.dnn_forward(n.p, (*C.uint8_t)(unsafe.Pointer(&pic.Pix[0])), &in, &cOuts, &count))
	if err != nil {
		return nil, err
	}
	// Copied, into buffers reused from pass to pass, so that Go never holds
	// memory that the next pass or free releases.
	outs := unsafe.Slice(cOuts, int(count))
	if cap(n.outputs) < len(outs) {
		n.outputs = make([]detector.Output, len(outs))
	}
	n.outputs = n.outputs[:len(outs)]
	for i, o := range outs {
		out := &n.outputs[i]
		out.Shape = out.Shape[:0]
		for _, s := range unsafe.Slice(o.shape, int(o.dims)) {
			out.Shape = append(out.Shape, int(s))
		}
		out.Data = append(out.Data[:0], unsafe.Slice((*float32)(unsafe.Pointer(o.data)), int(o.total))...)
	}
	return n.outputs, nil
}

// free releases the network; n must not be used afterwards.
func (n *net) free() {
	C.dnn_free(n.p)
	n.p = nil
}
