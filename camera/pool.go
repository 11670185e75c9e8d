package camera

import (
	"slices"
	"sync"

	"github.com/camera-exporter/camera_exporter/video"
)

// DecoderPool lends decoders to key frame analyses. A key frame with its
// parameter sets decodes on its own, so in key frame mode a camera needs a
// decoder only while its key frame is decoded, analyzed and converted for
// the detector: the pool keeps, per codec, as many idle decoders as
// analyses ever ran at once (the image collector's workers), whatever the
// number of cameras, and each decoder's picture buffers with them. Streams that decode every
// frame keep a decoder of their own, made by the same NewDecoder.
type DecoderPool struct {
	newDecoder NewDecoder

	mu     sync.Mutex
	idle   []pooledDecoder // most recently returned last
	inUse  int
	peak   int // the most decoders lent at once: how many to keep idle per codec
	closed bool
}

type pooledDecoder struct {
	codec video.Codec
	dec   Decoder
}

// NewDecoderPool returns an empty pool of decoders made by newDecoder.
func NewDecoderPool(newDecoder NewDecoder) *DecoderPool {
	return &DecoderPool{newDecoder: newDecoder}
}

// get lends a decoder for codec: an idle one, or a new one. A decoder that
// served another camera decodes the next key frame cleanly, since
// Decoder.DecodeKeyframe drains it and the key frame brings its parameter
// sets.
func (p *DecoderPool) get(codec video.Codec) (Decoder, error) {
	p.mu.Lock()
	p.inUse++
	p.peak = max(p.peak, p.inUse)
	for i := len(p.idle) - 1; i >= 0; i-- {
		if p.idle[i].codec == codec {
			dec := p.idle[i].dec
			p.idle = slices.Delete(p.idle, i, i+1)
			p.mu.Unlock()
			return dec, nil
		}
	}
	p.mu.Unlock()
	dec, err := p.newDecoder(codec)
	if err != nil {
		p.mu.Lock()
		p.inUse--
		p.mu.Unlock()
	}
	return dec, err
}

// put takes back a decoder get lent. Beyond peak idle decoders of its
// codec the oldest is closed: fewer analyses at once no longer need it.
// Codecs are kept apart, so that a fleet of H264 and H265 cameras does not
// open a decoder for every other analysis.
func (p *DecoderPool) put(codec video.Codec, dec Decoder) {
	p.mu.Lock()
	p.inUse--
	if p.closed {
		p.mu.Unlock()
		dec.Close()
		return
	}
	p.idle = append(p.idle, pooledDecoder{codec, dec})
	oldest, same := -1, 0
	for i, d := range p.idle {
		if d.codec == codec {
			if oldest < 0 {
				oldest = i
			}
			same++
		}
	}
	var surplus Decoder
	if same > p.peak {
		surplus = p.idle[oldest].dec
		p.idle = slices.Delete(p.idle, oldest, oldest+1)
	}
	p.mu.Unlock()
	if surplus != nil {
		surplus.Close()
	}
}

// Close frees the idle decoders; those lent are freed when they come back.
func (p *DecoderPool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, d := range idle {
		d.dec.Close()
	}
}
