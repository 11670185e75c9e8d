#include "dnn.h"

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/cuda.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

struct dnn_net {
	cv::dnn::Net net;
	std::vector<std::string> names;
	// Reused between forward passes so that steady state allocates little.
	cv::Mat padded, blob;
	std::vector<cv::Mat> outs;
	std::vector<std::vector<int> > shapes;
	std::vector<dnn_output> views;
};

// guard calls f and turns any exception into a message for Go to free.
template <typename F>
static char *guard(F f) {
	try {
		f();
	} catch (const cv::Exception &e) {
		return strdup(e.what());
	} catch (const std::exception &e) {
		return strdup(e.what());
	} catch (...) {
		return strdup("unknown C++ exception");
	}
	return NULL;
}

static std::pair<cv::dnn::Backend, cv::dnn::Target> pair_of(dnn_run run) {
	switch (run) {
	case DNN_RUN_CUDA:
		return std::make_pair(cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA);
	case DNN_RUN_CUDA_FP16:
		return std::make_pair(cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA_FP16);
	default:
		return std::make_pair(cv::dnn::DNN_BACKEND_OPENCV, cv::dnn::DNN_TARGET_CPU);
	}
}

extern "C" {

void dnn_quiet_logging(void) {
	try {
		cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
	} catch (...) {
	}
}

const char *dnn_version(void) {
	return CV_VERSION;
}

int dnn_cuda_devices(void) {
	try {
		return cv::cuda::getCudaEnabledDeviceCount();
	} catch (...) {
		return -1;
	}
}

char *dnn_has_run(dnn_run run, int *ok) {
	*ok = 0;
	return guard([&] {
		std::vector<std::pair<cv::dnn::Backend, cv::dnn::Target> > all = cv::dnn::getAvailableBackends();
		std::pair<cv::dnn::Backend, cv::dnn::Target> want = pair_of(run);
		for (size_t i = 0; i < all.size(); i++)
			if (all[i] == want)
				*ok = 1;
	});
}

// setup finishes a network that was read: where it runs, and its outputs.
static void setup(dnn_net *n, dnn_run run) {
	if (n->net.empty())
		CV_Error(cv::Error::StsError, "OpenCV read an empty network");
	std::pair<cv::dnn::Backend, cv::dnn::Target> p = pair_of(run);
	n->net.setPreferableBackend(p.first);
	n->net.setPreferableTarget(p.second);
	n->names = n->net.getUnconnectedOutLayersNames();
}

char *dnn_read(const char *model, const char *config, dnn_run run, dnn_net **out) {
	*out = NULL;
	return guard([&] {
		// Owned until it is handed out, so that a throw frees it.
		std::unique_ptr<dnn_net> n(new dnn_net());
		n->net = cv::dnn::readNet(model, config);
		setup(n.get(), run);
		*out = n.release();
	});
}

char *dnn_read_onnx(const char *model, size_t len, dnn_run run, dnn_net **out) {
	*out = NULL;
	return guard([&] {
		std::unique_ptr<dnn_net> n(new dnn_net());
		n->net = cv::dnn::readNetFromONNX(model, len);
		setup(n.get(), run);
		*out = n.release();
	});
}

char *dnn_forward(dnn_net *n, const uint8_t *pix, const dnn_input *in,
		const dnn_output **outs, int *count) {
	*outs = NULL;
	*count = 0;
	return guard([&] {
		cv::Mat pic(in->height, in->width, CV_8UC3, const_cast<uint8_t *>(pix), in->stride);
		cv::Mat *src = &pic;
		int right = in->input_width - in->width - in->left;
		int bottom = in->input_height - in->height - in->top;
		if (in->left || in->top || right || bottom) {
			cv::copyMakeBorder(pic, n->padded, in->top, bottom, in->left, right,
				cv::BORDER_CONSTANT, cv::Scalar::all(in->pad));
			src = &n->padded;
		}
		// in->mean is in the picture's BGR order, but blobFromImage takes it
		// in the blob's order: RGB when it swaps.
		cv::Scalar mean(in->mean[0], in->mean[1], in->mean[2]);
		if (in->swap_rb)
			std::swap(mean[0], mean[2]);
		cv::dnn::blobFromImage(*src, n->blob, in->scale,
			cv::Size(in->input_width, in->input_height), mean, in->swap_rb != 0, false, CV_32F);
		n->net.setInput(n->blob);
		n->net.forward(n->outs, n->names);

		n->shapes.resize(n->outs.size());
		n->views.resize(n->outs.size());
		for (size_t i = 0; i < n->outs.size(); i++) {
			cv::Mat &m = n->outs[i];
			if (m.type() != CV_32F)
				m.convertTo(m, CV_32F);
			if (!m.isContinuous())
				m = m.clone();
			n->shapes[i].assign(m.size.p, m.size.p + m.dims);
			dnn_output &v = n->views[i];
			v.data = m.ptr<float>();
			v.total = m.total();
			v.dims = m.dims;
			v.shape = n->shapes[i].data();
		}
		*outs = n->views.data();
		*count = (int)n->views.size();
	});
}

char *dnn_weights(dnn_net *n, size_t *count) {
	*count = 0;
	return guard([&] {
		std::vector<cv::String> names = n->net.getLayerNames();
		for (size_t i = 0; i < names.size(); i++) {
			cv::Ptr<cv::dnn::Layer> l = n->net.getLayer(names[i]);
			// The layer types whose blobs the Darknet importer reads from
			// the weights file; others, like the YOLO anchors, come from
			// the cfg.
			if (l->type != "Convolution" && l->type != "InnerProduct" && l->type != "BatchNorm")
				continue;
			for (size_t j = 0; j < l->blobs.size(); j++)
				*count += l->blobs[j].total();
		}
	});
}

void dnn_free(dnn_net *n) {
	delete n;
}

}
