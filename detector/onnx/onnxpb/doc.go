// Package onnxpb is the Go code that protoc generates from ONNX 1.12's
// onnx.proto, the schema of .onnx model files. onnx.pb.go is committed, so
// that building needs no protoc; regenerate it after changing onnx.proto
// with go generate, which needs protoc and protoc-gen-go at go.mod's
// version of google.golang.org/protobuf:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb onnx.proto
