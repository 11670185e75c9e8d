package detector

import (
	"strings"
	"testing"
)

func TestDetectLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		shapes  [][]int
		classes int
		want    Layout
		err     string // a part of the error, if one is wanted
	}{
		{"darknet", [][]int{{300, 85}, {1200, 85}}, 80, LayoutDarknet, ""},
		{"darknet one output", [][]int{{507, 25}}, 20, LayoutDarknet, ""},
		{"yolov5", [][]int{{1, 25200, 85}}, 80, LayoutYOLOv5, ""},
		{"yolov8", [][]int{{1, 84, 8400}}, 80, LayoutYOLOv8, ""},
		{"ssd", [][]int{{1, 1, 100, 7}}, 21, LayoutSSD, ""},
		{"ssd ignores classes", [][]int{{1, 1, 100, 7}}, 0, LayoutSSD, ""},
		{"ambiguous", [][]int{{1, 84, 85}}, 80, "", "set layout in the detector configuration"},
		{"yolov8 wrong classes", [][]int{{1, 84, 8400}}, 81, "",
			"outputs [1 84 8400] fit no known layout for 81 classes: darknet wants 2-D [rows 86], yolov5 [1 N 86], yolov8 [1 85 N], ssd [1 1 N 7]"},
		{"darknet wrong classes", [][]int{{300, 85}, {1200, 86}}, 80, "", "[300 85] [1200 86] fit no known layout"},
		{"no outputs", nil, 80, "", "fit no known layout"},
		{"4-D yolo", [][]int{{1, 1, 84, 8400}}, 80, "", "fit no known layout"},
		{"two yolov5", [][]int{{1, 25200, 85}, {1, 25200, 85}}, 80, "", "fit no known layout"},
		{"empty darknet", [][]int{{0, 85}}, 80, "", "fit no known layout"},
		{"empty yolov8", [][]int{{1, 84, 0}}, 80, "", "fit no known layout"},
		{"no classes", [][]int{{1, 4, 8400}}, 0, "", "fit no known layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DetectLayout(tc.shapes, tc.classes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("DetectLayout(%v, %d) = %q, %v; want error containing %q", tc.shapes, tc.classes, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DetectLayout(%v, %d) = %q, %v; want %q", tc.shapes, tc.classes, got, err, tc.want)
			}
		})
	}
}

func TestCheckLayout(t *testing.T) {
	for _, tc := range []struct {
		layout  Layout
		shapes  [][]int
		classes int
		err     string
	}{
		{LayoutDarknet, [][]int{{300, 85}, {1200, 85}}, 80, ""},
		{LayoutYOLOv5, [][]int{{1, 84, 85}}, 80, ""},
		{LayoutYOLOv8, [][]int{{1, 84, 85}}, 80, ""},
		{LayoutSSD, [][]int{{1, 1, 200, 7}}, 91, ""},
		{LayoutDarknet, [][]int{{1, 300, 85}}, 80, "outputs [1 300 85] do not fit layout darknet for 80 classes: it wants 2-D [rows 85]"},
		{LayoutYOLOv5, [][]int{{1, 25200, 85}}, 2, "it wants [1 N 7]"},
		{LayoutYOLOv8, [][]int{{1, 25200, 85}}, 80, "it wants [1 84 N]"},
		{LayoutSSD, [][]int{{1, 1, 200, 6}}, 80, "it wants [1 1 N 7]"},
		{LayoutSSD, [][]int{{1, 1, 200, 7}, {1, 1, 200, 7}}, 80, "do not fit layout ssd"},
		{"yolov9", [][]int{{1, 84, 8400}}, 80, `unknown layout "yolov9"`},
	} {
		err := CheckLayout(tc.layout, tc.shapes, tc.classes)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("CheckLayout(%s, %v, %d) = %v", tc.layout, tc.shapes, tc.classes, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("CheckLayout(%s, %v, %d) = %v, want error containing %q", tc.layout, tc.shapes, tc.classes, err, tc.err)
		}
	}
}
