// Package dnn implements detector.Detector with OpenCV's DNN module through
// cgo.
//
// A small C++ shim makes every OpenCV call: it catches OpenCV's exceptions,
// which gocv lets through and which would abort the process, and returns
// them as errors. New checks the model as far as it can before the first
// camera needs it: the files, a forward pass on a gray picture of the input
// size, the layout of the outputs and, for Darknet, the size of the weights
// file, which OpenCV reads without checking. A cv::dnn::Net must not be used
// by two threads at once, so the Detector keeps a pool of identical
// networks and each detection borrows one. Building this package needs
// OpenCV's development files; the rest of the exporter only sees the
// detector.Detector interface.
package dnn
