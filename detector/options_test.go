package detector

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func validOptions() Options {
	return Options{Model: "m.weights", Labels: []string{"person"}, InputWidth: 320, InputHeight: 320}
}

func TestSetDefaults(t *testing.T) {
	o := validOptions()
	o.SetDefaults()
	if o.Confidence != DefaultConfidence || o.NMSThreshold != DefaultNMSThreshold || o.Backend != BackendCPU || o.Nets != DefaultNets {
		t.Errorf("SetDefaults() = %+v", o)
	}
	if o.Layout != "" || o.Resize != "" || o.Scale != 0 || o.Mean != nil || o.SwapRB != nil {
		t.Errorf("SetDefaults() set what the layout decides: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate() after SetDefaults: %v", err)
	}

	set := Options{Confidence: 0.5, NMSThreshold: 0.6, Backend: BackendCUDA, Nets: 3}
	want := set
	set.SetDefaults()
	if !reflect.DeepEqual(set, want) {
		t.Errorf("SetDefaults() = %+v, want %+v unchanged", set, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		field  string
		msg    string
	}{
		{"model", func(o *Options) { o.Model = "" }, "model", "missing model"},
		{"labels", func(o *Options) { o.Labels = nil }, "labels", "missing labels"},
		{"layout", func(o *Options) { o.Layout = "yolov9" }, "layout", `layout "yolov9": must be one of darknet, yolov5, yolov8, ssd`},
		{"input size", func(o *Options) { o.InputWidth, o.InputHeight = 0, 0 }, "input_size",
			"input_size 0: must be the network's input width and height, 1 to 4096 (e.g. 320 for Yolo-Fastest, 640 for YOLOv8)"},
		{"input height", func(o *Options) { o.InputHeight = 5000 }, "input_size", "input_size 320x5000: width and height must be 1 to 4096"},
		{"resize", func(o *Options) { o.Resize = "crop" }, "resize", `resize "crop": must be one of letterbox, stretch`},
		{"negative scale", func(o *Options) { o.Scale = -1 }, "scale", "scale -1: must be greater than 0"},
		{"NaN scale", func(o *Options) { o.Scale = math.NaN() }, "scale", "scale NaN: must be greater than 0"},
		{"infinite scale", func(o *Options) { o.Scale = math.Inf(1) }, "scale", "scale +Inf: must be greater than 0"},
		{"mean", func(o *Options) { o.Mean = []float64{1, 2} }, "mean", "mean: must be one value, or three in B, G, R order"},
		{"confidence", func(o *Options) { o.Confidence = 2 }, "confidence", "confidence 2: must be greater than 0 and at most 1"},
		{"NaN confidence", func(o *Options) { o.Confidence = math.NaN() }, "confidence", "confidence NaN: must be greater than 0 and at most 1"},
		{"nms", func(o *Options) { o.NMSThreshold = -0.5 }, "nms_threshold", "nms_threshold -0.5: must be greater than 0 and at most 1"},
		{"backend", func(o *Options) { o.Backend = "tpu" }, "backend", `backend "tpu": must be one of cpu, cuda, cuda_fp16`},
		{"negative nets", func(o *Options) { o.Nets = -1 }, "nets", "nets -1: must be 1 to 64"},
		{"many nets", func(o *Options) { o.Nets = 65 }, "nets", "nets 65: must be 1 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.change(&o)
			err := o.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Msg != tc.msg || err.Error() != tc.msg {
				t.Errorf("Validate() = %v (%#v), want %s error %q", err, fe, tc.field, tc.msg)
			}
		})
	}
	for _, mean := range [][]float64{nil, {127.5}, {104, 117, 123}} {
		o := validOptions()
		o.Mean = mean
		if err := o.Validate(); err != nil {
			t.Errorf("mean %v: %v", mean, err)
		}
	}
}

// TestValidateAll checks that Validate reports every problem, in the order
// of the fields, each a *FieldError.
func TestValidateAll(t *testing.T) {
	o := Options{Layout: "x", Resize: "x", Scale: -1, Mean: []float64{1, 2}, Confidence: 2, NMSThreshold: 2, Backend: "x", Nets: -1}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("%T %v, want a *FieldError", e, e)
		}
		fields = append(fields, fe.Field)
	}
	want := "model labels layout input_size resize scale mean confidence nms_threshold backend nets"
	if got := strings.Join(fields, " "); got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
}

func TestOptionsPreprocess(t *testing.T) {
	swap := false
	for _, tc := range []struct {
		name string
		o    Options
		want Preprocess
	}{
		{"inferred layout", Options{}, DefaultPreprocess(LayoutDarknet)},
		{"layout", Options{Layout: LayoutYOLOv8}, DefaultPreprocess(LayoutYOLOv8)},
		{"overrides", Options{Layout: LayoutYOLOv8, Resize: ResizeStretch, Scale: 2, Mean: []float64{1, 2, 3}, SwapRB: &swap},
			Preprocess{Resize: ResizeStretch, Scale: 2, Mean: [3]float64{1, 2, 3}, Pad: 114}},
		{"one mean", Options{Layout: LayoutSSD, Mean: []float64{100}},
			Preprocess{Resize: ResizeStretch, Scale: 1 / 127.5, Mean: [3]float64{100, 100, 100}, Pad: 114}},
	} {
		if got := tc.o.Preprocess(); got != tc.want {
			t.Errorf("%s: Preprocess() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
