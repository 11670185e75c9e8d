//go:build matprofile

package dnn

import (
	"bytes"
	"context"
	"testing"

	"gocv.io/x/gocv"
)

// TestMatProfile checks that detections and Close leave no gocv Mat open,
// the helpers' included.
func TestMatProfile(t *testing.T) {
	start := gocv.MatProfile.Count()
	d, err := New(cocoOptions(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		pic, w, h := photo(t, d, "person.jpg")
		if _, err := d.Detect(context.Background(), pic, w, h); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	if n := gocv.MatProfile.Count(); n != start {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d Mats open after Close, want %d:\n%s", n, start, b.String())
	}
}
