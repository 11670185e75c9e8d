// Package reference builds the reference profile of a camera, which the
// drift scores compare its recent frames with, from a folder of images (the
// detector's training set, say) or from the camera's own stream. It backs
// `camera_exporter reference build`; the exporter can also learn a
// reference online (collector, reference.calibration).
//
// It needs no cgo: what decodes frames and photographs, and the detector,
// are passed in (camera/decode and detector/dnn provide them).
package reference

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Options are the camera settings a reference is built with, so that it
// measures what the exporter will.
type Options struct {
	DarkThreshold float64
	// Detector is nil to leave the detector's outputs out.
	Detector detector.Detector
	// Classes are the counted classes; empty counts all.
	Classes []string
}

// picture is what FromImages and FromCamera analyze: a decoded frame or a
// photograph.
type picture interface {
	Analyze(darkThreshold float64) (imagestats.Stats, error)
	Picture(width, height int) (video.Image, error)
}

// Image is a photograph, analyzed like a decoded frame: Analyze measures
// it as camera.Decoder.Analyze measures a frame, and Picture converts it
// for the detector. decode.Image is one.
type Image interface {
	picture
	// Close frees the image.
	Close()
}

// OpenImage reads the image file at path; it fails on a file that is not
// an image. decode.OpenImage is one, wrapped to return an Image.
type OpenImage func(path string) (Image, error)

// sample analyzes a picture and runs the detector on it.
func (o Options) sample(ctx context.Context, p picture) (drift.Sample, error) {
	stats, err := p.Analyze(o.DarkThreshold)
	if err != nil {
		return drift.Sample{}, err
	}
	s := drift.Sample{Stats: stats}
	if o.Detector == nil {
		return s, nil
	}
	place := o.Detector.Place(stats.Width, stats.Height)
	pic, err := p.Picture(place.Width, place.Height)
	if err != nil {
		return drift.Sample{}, err
	}
	res, err := o.Detector.Detect(ctx, pic, stats.Width, stats.Height)
	if err != nil {
		return drift.Sample{}, err
	}
	s.Detected, s.Objects = true, map[string]int{}
	for _, class := range o.Classes {
		s.Objects[class] = 0
	}
	for _, d := range res.Detections {
		if len(o.Classes) == 0 || slices.Contains(o.Classes, d.Label) {
			s.Objects[d.Label]++
			s.Confidences = append(s.Confidences, d.Confidence)
		}
	}
	return s, nil
}

// FromImages builds a reference from every image in dir and below, which
// open reads. Unrelated images have no common scene, so the reference has
// no scene signature. Files that are not images are skipped, and counted in
// the error only if no image was found.
func FromImages(ctx context.Context, dir string, open OpenImage, opts Options, logger *slog.Logger) (*drift.Profile, error) {
	b := drift.NewBuilder(false)
	var skipped []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		im, err := open(path)
		if err != nil {
			skipped = append(skipped, path)
			logger.Debug("Skipping a file that is not an image", "file", path, "err", err)
			return nil
		}
		defer im.Close()
		s, err := opts.sample(ctx, im)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		b.Add(s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b.Frames() == 0 {
		return nil, fmt.Errorf("no image in %s (skipped %d other files)", dir, len(skipped))
	}
	return b.Profile("images:"+dir, time.Now()), nil
}

// FromCamera builds a reference from a camera's stream, decoded by
// newDecoder's decoders, analyzing a frame every interval for duration. The
// frames share the camera's view, so the reference has a scene signature.
func FromCamera(ctx context.Context, cam config.Camera, newDecoder camera.NewDecoder, duration, interval time.Duration, opts Options, logger *slog.Logger) (*drift.Profile, error) {
	decoders := camera.NewDecoderPool(newDecoder)
	defer decoders.Close()
	s := camera.NewStream(cam, decoders, logger)
	defer s.Stop()
	b := drift.NewBuilder(true)
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			if b.Frames() == 0 {
				return nil, fmt.Errorf("camera %s: no frame analyzed in %s", cam.Name, duration)
			}
			// The URL without credentials: the file may be shared.
			return b.Profile("stream:"+cam.RedactedURL(), time.Now()), nil
		case <-ticker.C:
		}
		var size func(int, int) (int, int)
		if opts.Detector != nil {
			size = detector.ScaledSize(opts.Detector)
		}
		frame, err := s.Analyze(size)
		if errors.Is(err, video.ErrNoPicture) || (err == nil && frame.Seq == seq) {
			continue // not connected yet, or no new frame since the last one
		}
		if err != nil {
			logger.Warn("Frame analysis failed", "camera", cam.Name, "err", err)
			continue
		}
		seq = frame.Seq
		sample, err := opts.sample(ctx, analyzedFrame{frame})
		if err != nil {
			if ctx.Err() == nil { // else the time is up: the loop ends
				logger.Warn("Detection failed", "camera", cam.Name, "err", err)
			}
			continue
		}
		b.Add(sample)
	}
}

// analyzedFrame serves a frame Stream.Analyze already analyzed and
// converted.
type analyzedFrame struct{ camera.Frame }

func (f analyzedFrame) Analyze(float64) (imagestats.Stats, error) { return f.Stats, nil }

func (f analyzedFrame) Picture(width, height int) (video.Image, error) {
	if f.Frame.Picture.Width != width || f.Frame.Picture.Height != height {
		return video.Image{}, fmt.Errorf("picture is %dx%d, want %dx%d", f.Frame.Picture.Width, f.Frame.Picture.Height, width, height)
	}
	return f.Frame.Picture, nil
}

// Write saves a reference, refusing to replace an existing one unless
// replace is set.
func Write(p *drift.Profile, path string, replace bool) error {
	if !replace {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists; use --replace to overwrite it", path)
		}
	}
	return p.Save(path)
}
