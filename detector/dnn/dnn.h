// The C interface to the C++ shim around OpenCV's DNN module. Every function
// that can reach OpenCV catches its exceptions and returns them as a message,
// because a C++ exception unwinding into Go aborts the process.
#ifndef CAMERA_EXPORTER_DNN_H
#define CAMERA_EXPORTER_DNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The (backend, target) pairs a network can run on.
typedef enum {
	DNN_RUN_CPU,
	DNN_RUN_CUDA,
	DNN_RUN_CUDA_FP16
} dnn_run;

// A loaded network with its reused buffers; opaque to Go.
typedef struct dnn_net dnn_net;

// How a picture becomes the network's input: padded to the input size with
// the picture at (left, top), then blobFromImage with scale, mean and swap_rb.
typedef struct {
	int width, height, stride;
	int left, top, input_width, input_height;
	double pad, scale, mean[3];
	int swap_rb;
} dnn_input;

// One output blob of the last forward pass, owned by the network and valid
// until its next forward pass.
typedef struct {
	const float *data;
	size_t total;
	int dims;
	const int *shape;
} dnn_output;

// The functions returning char * return NULL on success, or else a message
// that the caller frees with free().

// dnn_quiet_logging has OpenCV log errors only.
void dnn_quiet_logging(void);
// dnn_version is the version of the OpenCV headers; static.
const char *dnn_version(void);
// dnn_cuda_devices is cv::cuda::getCudaEnabledDeviceCount, -1 if it throws.
int dnn_cuda_devices(void);
// dnn_has_run sets *ok to whether cv::dnn::getAvailableBackends lists run.
char *dnn_has_run(dnn_run run, int *ok);
// dnn_read reads a network with cv::dnn::readNet and sets it to run on run.
// *out is freed with dnn_free.
char *dnn_read(const char *model, const char *config, dnn_run run, dnn_net **out);
// dnn_read_onnx reads an ONNX network from the len bytes at model with
// cv::dnn::readNetFromONNX, which copies them, and sets it to run on run.
char *dnn_read_onnx(const char *model, size_t len, dnn_run run, dnn_net **out);
// dnn_forward runs the network on the packed BGR picture at pix, as in
// describes it, and points *outs at its *n outputs.
char *dnn_forward(dnn_net *net, const uint8_t *pix, const dnn_input *in,
	const dnn_output **outs, int *n);
// dnn_weights sets *count to the number of values that the Darknet importer
// reads from a weights file for this network.
char *dnn_weights(dnn_net *net, size_t *count);
void dnn_free(dnn_net *net);

#ifdef __cplusplus
}
#endif

#endif
