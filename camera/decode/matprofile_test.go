//go:build matprofile

package decode

import (
	"bytes"
	"testing"

	"gocv.io/x/gocv"
)

// TestMatLeak checks that Close releases every Mat, including those
// reallocated when the picture size changes, and that Images do likewise.
func TestMatLeak(t *testing.T) {
	start := gocv.MatProfile.Count()
	for _, codec := range codecs {
		small := encode(t, codec, 1, lavfi("color=gray:s=160x120"))
		large := encode(t, codec, 1, lavfi("color=gray:s=320x240"))
		halved := encode(t, codec, 1, lavfi("testsrc2=s=1280x720"))
		d, err := New(codec)
		if err != nil {
			t.Fatal(err)
		}
		for _, au := range [][][]byte{small[0], large[0], halved[0], small[0]} {
			if err := d.DecodeKeyframe(au); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Analyze(0.15); err != nil {
				t.Fatal(err)
			}
		}
		d.Close()
	}

	im, err := OpenImage("../../../shared/images/person.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Analyze(0.15); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Picture(320, 320); err != nil {
		t.Fatal(err)
	}
	im.Close()
	if _, err := OpenImage("matprofile_test.go"); err == nil {
		t.Fatal("OpenImage(matprofile_test.go) succeeded, want error")
	}
	if n := gocv.MatProfile.Count(); n != start {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d Mats open after Close, want %d:\n%s", n, start, b.String())
	}
}
