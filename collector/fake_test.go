package collector

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/analysis"
)

// The collectors' tests run on the fakes of analysistest: they are about
// what the collectors make of cameras and analyses, not about RTSP or
// pixels, which camera/, detector/ and the end-to-end tests cover with real
// streams and models.

// newCollector creates the named collectors, all when none are named.
func newCollector(t testing.TB, cams analysis.Cameras, names ...string) *CameraCollector {
	t.Helper()
	cc, err := NewCameraCollector(cams, discard, names...)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// compare scrapes cc once and compares the families named with want, an
// exposition in the text format.
func compare(t testing.TB, ctx context.Context, cc *CameraCollector, want string, names ...string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cc.WithContext(ctx))
	compareGathered(t, reg, want, names...)
}

// compareGathered compares the families named with want, with
// testutil.GatherAndCompare. Help texts are left out of the comparison
// (want has none): they are prose, which promlint and the end-to-end
// fixture check.
func compareGathered(t testing.TB, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	withoutHelp := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		families, err := g.Gather()
		for _, mf := range families {
			mf.Help = proto.String("") // as the text parser reads a family without one
		}
		return families, err
	})
	if err := testutil.GatherAndCompare(withoutHelp, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}
