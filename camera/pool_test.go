package camera

import (
	"testing"

	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// countedDecoder is a decoder that only counts whether it is open.
type countedDecoder struct {
	codec video.Codec
	open  *int
}

func (d *countedDecoder) Decode([][]byte) error                     { return nil }
func (d *countedDecoder) DecodeKeyframe([][]byte) error             { return nil }
func (d *countedDecoder) Analyze(float64) (imagestats.Stats, error) { return imagestats.Stats{}, nil }
func (d *countedDecoder) Picture(int, int) (video.Image, error)     { return video.Image{}, nil }
func (d *countedDecoder) Close()                                    { *d.open-- }

func (d *countedDecoder) KeyPicture() bool        { return true }
func (d *countedDecoder) PictureSize() (int, int) { return 0, 0 }

func TestDecoderPool(t *testing.T) {
	var created, open int
	p := NewDecoderPool(func(c video.Codec) (Decoder, error) {
		created++
		open++
		return &countedDecoder{c, &open}, nil
	})
	get := func(c video.Codec) Decoder {
		t.Helper()
		d, err := p.get(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.(*countedDecoder).codec; got != c {
			t.Fatalf("lent a %s decoder for %s", got, c)
		}
		return d
	}
	// One analysis at a time, however many cameras: one decoder.
	for range 10 {
		p.put(video.CodecH264, get(video.CodecH264))
	}
	if created != 1 || open != 1 {
		t.Errorf("%d decoders made, %d open, for analyses one at a time; want 1", created, open)
	}
	// Two at once: two, both kept for the next time two run at once.
	a, b := get(video.CodecH264), get(video.CodecH264)
	p.put(video.CodecH264, a)
	p.put(video.CodecH264, b)
	a, b = get(video.CodecH264), get(video.CodecH264)
	p.put(video.CodecH264, a)
	p.put(video.CodecH264, b)
	if created != 2 || open != 2 {
		t.Errorf("%d decoders made, %d open, for two analyses at once; want 2", created, open)
	}
	// Another codec has idle decoders of its own, and H264 analyses
	// still find theirs.
	p.put(video.CodecH265, get(video.CodecH265))
	p.put(video.CodecH264, get(video.CodecH264))
	p.put(video.CodecH265, get(video.CodecH265))
	if created != 3 || open != 3 {
		t.Errorf("%d decoders made, %d open, after H265 and H264 analyses in turn; want 3", created, open)
	}
	lent := get(video.CodecH265)
	p.Close()
	if open != 1 {
		t.Errorf("%d decoders open after Close with one lent, want 1", open)
	}
	p.put(video.CodecH265, lent)
	if open != 0 {
		t.Errorf("%d decoders open once the lent one came back to a closed pool, want 0", open)
	}
}
