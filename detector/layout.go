package detector

import (
	"fmt"
	"strings"
)

// Layout names how a model's outputs encode detections.
type Layout string

const (
	// LayoutDarknet: OpenCV's Darknet YOLO region layers; each output is a 2-D
	// [rows, 5+C] blob, rows of cx, cy, w, h (relative to the network input, 0..1),
	// objectness, then C class scores that OpenCV has already multiplied by objectness.
	// Confidence = max class score. Several outputs (one per YOLO layer).
	LayoutDarknet Layout = "darknet"
	// LayoutYOLOv5: one output [1, N, 5+C]: cx, cy, w, h in network-input pixels,
	// objectness, C class probabilities. Confidence = objectness * class prob.
	LayoutYOLOv5 Layout = "yolov5"
	// LayoutYOLOv8: one output [1, 4+C, N] (YOLOv8/YOLO11 ultralytics export, transposed):
	// cx, cy, w, h in input pixels, C class scores, no objectness. Confidence = max score.
	LayoutYOLOv8 Layout = "yolov8"
	// LayoutSSD: one output [1, 1, N, 7] from a DetectionOutput layer: image_id, class_id,
	// confidence, x1, y1, x2, y2 relative to the input (0..1). Class id indexes labels
	// directly (so a Caffe MobileNet-SSD labels file starts with "background").
	LayoutSSD Layout = "ssd"
)

// Layouts lists the known layouts, for validating configuration.
var Layouts = []Layout{LayoutDarknet, LayoutYOLOv5, LayoutYOLOv8, LayoutSSD}

// DetectLayout infers the layout from the shapes of a network's outputs and the
// number of classes in its labels. It fails, naming the shapes and what was
// expected, when no layout fits or when several do (then the user must set one).
func DetectLayout(shapes [][]int, classes int) (Layout, error) {
	var fit []Layout
	for _, l := range Layouts {
		if fits(l, shapes, classes) {
			fit = append(fit, l)
		}
	}
	switch len(fit) {
	case 1:
		return fit[0], nil
	case 0:
		// "darknet wants 2-D [rows 85], yolov5 [1 N 85], ..."
		wants := make([]string, len(Layouts))
		for i, l := range Layouts {
			verb := ""
			if i == 0 {
				verb = "wants "
			}
			wants[i] = string(l) + " " + verb + want(l, classes)
		}
		return "", fmt.Errorf("outputs %s fit no known layout for %d classes: %s",
			formatShapes(shapes), classes, strings.Join(wants, ", "))
	default:
		names := make([]string, len(fit))
		for i, l := range fit {
			names[i] = string(l)
		}
		return "", fmt.Errorf("outputs %s fit several layouts for %d classes (%s): set layout in the detector configuration",
			formatShapes(shapes), classes, strings.Join(names, ", "))
	}
}

// CheckLayout reports whether outputs of these shapes fit the layout with this many
// classes, with an error naming the shapes and what the layout expects.
func CheckLayout(l Layout, shapes [][]int, classes int) error {
	if fits(l, shapes, classes) {
		return nil
	}
	w := want(l, classes)
	if w == "" {
		return fmt.Errorf("unknown layout %q", l)
	}
	return fmt.Errorf("outputs %s do not fit layout %s for %d classes: it wants %s",
		formatShapes(shapes), l, classes, w)
}

// fits is CheckLayout without the error message. YOLO layouts need at least
// one class, lest any [rows 5] or [1 4 N] blob pass for a detector.
func fits(l Layout, shapes [][]int, classes int) bool {
	switch l {
	case LayoutDarknet:
		if len(shapes) == 0 || classes < 1 {
			return false
		}
		for _, s := range shapes {
			if len(s) != 2 || s[0] < 1 || s[1] != 5+classes {
				return false
			}
		}
		return true
	case LayoutYOLOv5:
		return classes >= 1 && len(shapes) == 1 && shapeIs(shapes[0], 1, -1, 5+classes)
	case LayoutYOLOv8:
		return classes >= 1 && len(shapes) == 1 && shapeIs(shapes[0], 1, 4+classes, -1)
	case LayoutSSD:
		return len(shapes) == 1 && shapeIs(shapes[0], 1, 1, -1, 7)
	}
	return false
}

// shapeIs reports whether shape has the wanted dimensions, where -1 stands
// for any positive size.
func shapeIs(shape []int, want ...int) bool {
	if len(shape) != len(want) {
		return false
	}
	for i, w := range want {
		if shape[i] != w && (w != -1 || shape[i] < 1) {
			return false
		}
	}
	return true
}

// want describes the outputs a layout expects, or "" for an unknown layout.
func want(l Layout, classes int) string {
	switch l {
	case LayoutDarknet:
		return fmt.Sprintf("2-D [rows %d]", 5+classes)
	case LayoutYOLOv5:
		return fmt.Sprintf("[1 N %d]", 5+classes)
	case LayoutYOLOv8:
		return fmt.Sprintf("[1 %d N]", 4+classes)
	case LayoutSSD:
		return "[1 1 N 7]"
	}
	return ""
}

func formatShapes(shapes [][]int) string {
	if len(shapes) == 0 {
		return "(none)"
	}
	s := make([]string, len(shapes))
	for i, sh := range shapes {
		s[i] = fmt.Sprint(sh)
	}
	return strings.Join(s, " ")
}
