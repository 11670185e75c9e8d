package onnx

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// Limits of ReadMetadata, far above what Ultralytics writes (a few
// entries, the largest the class names, a few KiB), so that a hostile
// file cannot make a configuration load take long or, with the keys that
// Metadata reads kept once each, hold more than a few MiB.
const (
	maxMetadataEntry   = 1 << 20
	maxMetadataEntries = 10000
	// A model has a few fields, opset imports and functions besides the
	// metadata; a file of millions of tiny fields would take long to skip.
	maxModelFields = 1 << 16
)

// The fields of ModelProto that ReadMetadata reads; it skips the others.
var (
	modelFields        = (&onnxpb.ModelProto{}).ProtoReflect().Descriptor().Fields()
	irVersionField     = modelFields.ByName("ir_version").Number()
	graphField         = modelFields.ByName("graph").Number()
	metadataPropsField = modelFields.ByName("metadata_props").Number()
)

// ReadMetadata reads the Ultralytics metadata of the ONNX model at path as
// Read(path) and Metadata would, but reads only the model's top-level
// metadata entries, seeking past the graph: a configuration load checks
// the class names of a model of hundreds of MB in a few reads. It checks
// only that the file is a protobuf message that holds an IR version and a
// graph, without reading the graph; errors name the path.
func ReadMetadata(path string) (Metadata, error) {
	f, fi, err := boundedfile.Open(path, modelFile)
	if err != nil {
		return Metadata{}, err // boundedfile's errors name the path.
	}
	defer f.Close()
	props, err := readMetadataProps(f, fi.Size())
	if err == nil {
		var md Metadata
		if md, err = parseMetadata(props); err == nil {
			return md, nil
		}
	}
	return Metadata{}, fmt.Errorf("%s: %w", path, err)
}

// readMetadataProps reads the metadata entries of the model in f, of size
// bytes, field by field, seeking past those it does not need.
func readMetadataProps(f io.ReadSeeker, size int64) ([]*onnxpb.StringStringEntryProto, error) {
	if size == 0 {
		return nil, errors.New("empty file, not an ONNX model")
	}
	r := fieldReader{f: f, br: bufio.NewReader(f), size: size}
	var (
		props     []*onnxpb.StringStringEntryProto
		entries   int // metadata entries read, kept or not
		irVersion uint64
		graph     bool
	)
	for fields := 0; r.pos < size; fields++ {
		if fields == maxModelFields {
			return nil, fmt.Errorf("not an ONNX model: more than %d fields", maxModelFields)
		}
		start := r.pos
		num, typ, err := r.tag()
		if err != nil {
			return nil, truncated(start, err)
		}
		switch typ {
		case protowire.VarintType:
			v, err := r.varint()
			if err != nil {
				return nil, truncated(start, err)
			}
			if num == irVersionField {
				irVersion = v // The last value of a scalar field counts.
			}
		case protowire.Fixed32Type:
			err = r.skip(4)
		case protowire.Fixed64Type:
			err = r.skip(8)
		case protowire.BytesType:
			var n uint64
			if n, err = r.varint(); err != nil {
				break
			}
			switch {
			case n > uint64(size-r.pos):
				err = fmt.Errorf("field %d of %d bytes, past the end of the file (%d bytes)", num, n, size)
			case num == metadataPropsField && entries == maxMetadataEntries:
				return nil, fmt.Errorf("more than %d metadata entries", maxMetadataEntries)
			case num == metadataPropsField && n > maxMetadataEntry:
				return nil, fmt.Errorf("a metadata entry of %d bytes, over the %d MiB that one may hold", n, maxMetadataEntry>>20)
			case num == metadataPropsField:
				// Only the keys that Metadata reads are kept, each once, so
				// that what the load holds is a few entries at most.
				entries++
				var p *onnxpb.StringStringEntryProto
				if p, err = r.entry(int(n)); err == nil && slices.Contains(metadataKeys, p.GetKey()) {
					if slices.ContainsFunc(props, func(q *onnxpb.StringStringEntryProto) bool { return q.GetKey() == p.GetKey() }) {
						return nil, fmt.Errorf("model metadata %s: the key appears twice", p.GetKey())
					}
					props = append(props, p)
				}
			default:
				graph = graph || num == graphField
				err = r.skip(int64(n))
			}
		default:
			// ONNX has no groups, the only other wire types.
			err = fmt.Errorf("field %d of wire type %d", num, typ)
		}
		if err != nil {
			return nil, truncated(start, err)
		}
	}
	switch {
	case irVersion == 0:
		return nil, errors.New("not an ONNX model: no IR version")
	case !graph:
		return nil, errors.New("not an ONNX model: no graph")
	}
	return props, nil
}

// truncated says that the field at byte start does not read.
func truncated(start int64, err error) error {
	return fmt.Errorf("truncated, or not an ONNX model: at byte %d: %w", start, err)
}

// fieldReader reads a protobuf message from a file, buffered, and skips
// fields by seeking past them.
type fieldReader struct {
	f         io.ReadSeeker
	br        *bufio.Reader
	pos, size int64
}

// tag reads a field's number and wire type.
func (r *fieldReader) tag() (protowire.Number, protowire.Type, error) {
	v, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, 0, fmt.Errorf("field number %d", num)
	}
	return num, typ, nil
}

// varint reads a varint.
func (r *fieldReader) varint() (uint64, error) {
	b, _ := r.br.Peek(int(min(binary.MaxVarintLen64, r.size-r.pos)))
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	r.pos += int64(n)
	_, err := r.br.Discard(n)
	return v, err
}

// skip moves n bytes on: within the buffer, or by a seek.
func (r *fieldReader) skip(n int64) error {
	if n > r.size-r.pos {
		return io.ErrUnexpectedEOF
	}
	r.pos += n
	if n <= int64(r.br.Buffered()) {
		_, err := r.br.Discard(int(n))
		return err
	}
	if _, err := r.f.Seek(r.pos, io.SeekStart); err != nil {
		return err
	}
	r.br.Reset(r.f)
	return nil
}

// entry reads a metadata entry of n bytes.
func (r *fieldReader) entry(n int) (*onnxpb.StringStringEntryProto, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, err
	}
	r.pos += int64(n)
	p := &onnxpb.StringStringEntryProto{}
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("metadata entry: %w", err)
	}
	return p, nil
}
