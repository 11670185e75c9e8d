//lint:file-ignore SA1019 The dashboard is in the classic JSON model on purpose; see dashboard.go.

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// exporterMetrics are the series camera_exporter serves (README.md, Metrics),
// each with whether it has the camera label, plus the two Prometheus makes:
// up and ALERTS. ALERTS takes a camera matcher, as most alerts are about a
// camera.
var exporterMetrics = map[string]bool{
	"camera_up":                                                    true,
	"camera_session_up":                                            true,
	"camera_info":                                                  true,
	"camera_frames_received_total":                                 true,
	"camera_keyframes_received_total":                              true,
	"camera_received_bytes_total":                                  true,
	"camera_rtp_packets_lost_total":                                true,
	"camera_reconnects_total":                                      true,
	"camera_decode_errors_total":                                   true,
	"camera_last_frame_timestamp_seconds":                          true,
	"camera_frame_brightness_ratio":                                true,
	"camera_frame_contrast_ratio":                                  true,
	"camera_frame_dark_pixels_ratio":                               true,
	"camera_frame_analysis_success":                                true,
	"camera_frame_overexposed_pixels_ratio":                        true,
	"camera_frame_sharpness":                                       true,
	"camera_frame_edge_density_ratio":                              true,
	"camera_frame_saturation_ratio":                                true,
	"camera_frame_channel_mean_ratio":                              true,
	"camera_frame_difference_ratio":                                true,
	"camera_frame_frozen":                                          true,
	"camera_frame_brightness_distribution_ratio":                   true,
	"camera_frame_contrast_distribution_ratio":                     true,
	"camera_frame_dark_pixels_distribution_ratio":                  true,
	"camera_frame_overexposed_pixels_distribution_ratio":           true,
	"camera_frame_edge_density_distribution_ratio":                 true,
	"camera_frame_saturation_distribution_ratio":                   true,
	"camera_scene_change_score":                                    true,
	"camera_view_shift_ratio":                                      true,
	"camera_view_scale_ratio":                                      true,
	"camera_view_rotation_degrees":                                 true,
	"camera_view_match_ratio":                                      true,
	"camera_drift_score":                                           true,
	"camera_drift_combined_score":                                  true,
	"camera_reference_age_seconds":                                 true,
	"camera_reference_frames":                                      true,
	"camera_reference_calibrating":                                 true,
	"camera_detected_objects":                                      true,
	"camera_detected_objects_total":                                true,
	"camera_analyzed_frames_total":                                 true,
	"camera_frames_without_detections_total":                       true,
	"camera_inference_duration_seconds":                            true,
	"camera_detection_confidence":                                  true,
	"camera_detector_info":                                         false,
	"camera_scrape_collector_duration_seconds":                     false,
	"camera_scrape_collector_success":                              false,
	"camera_exporter_build_info":                                   false,
	"camera_exporter_config_last_reload_successful":                false,
	"camera_exporter_config_last_reload_success_timestamp_seconds": false,
	"up":     false,
	"ALERTS": true,
}

// recordingRules is the file of the recording rules the dashboard may read.
// Their series keep every label of the camera's series (the file says so),
// so each carries the camera label.
var recordingRules = filepath.Join("..", "prometheus", "rules", "camera_exporter.rules.yml")

// recordedMetrics are the series the recording rules make, each with
// whether it has the camera label: those of the camera level (camera:...).
func recordedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, recordingRules, &file)
	recorded := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = strings.HasPrefix(r.Record, "camera:")
			}
		}
	}
	if len(recorded) == 0 {
		t.Fatalf("%s records no series", recordingRules)
	}
	return recorded
}

// exporterHistograms are served as classic histograms: only their _bucket,
// _sum and _count series exist.
var exporterHistograms = []string{
	"camera_inference_duration_seconds",
	"camera_detection_confidence",
	"camera_frame_brightness_distribution_ratio",
	"camera_frame_contrast_distribution_ratio",
	"camera_frame_dark_pixels_distribution_ratio",
	"camera_frame_overexposed_pixels_distribution_ratio",
	"camera_frame_edge_density_distribution_ratio",
	"camera_frame_saturation_distribution_ratio",
}

// The values the tests put in place of the dashboard's variables: plausible
// for Grafana to send, and recognizable in the parsed matchers.
var (
	variableValues = map[string]string{
		"site":   "site_value",
		"box":    "box_value",
		"camera": "camera_value",
		// The exporter's --web.external-url, in the camera page links.
		"exporter_url": "https://box.example",
	}
	builtinValues = map[string]string{
		"__rate_interval": "1m",
		"__interval":      "1m",
		"__range":         "6h",
		"__range_s":       "21600",
	}
	// variableRef matches the forms of a variable reference Grafana knows:
	// $name, ${name}, ${name:format} and [[name]].
	variableRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]`)
)

var promQL = parser.NewParser(parser.Options{})

func readDashboard(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDashboardUpToDate(t *testing.T) {
	want, err := dashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	got := readDashboard(t)
	if bytes.Equal(got, want) {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < min(len(gotLines), len(wantLines)) && gotLines[line] == wantLines[line] {
		line++
	}
	t.Fatalf("%s differs from what the code generates, first at line %d; regenerate it: cd deploy/grafana && go generate",
		dashboardFile, line+1)
}

// TestDashboardStrict decodes the dashboard with the SDK's strict decoder,
// which rejects unknown fields, missing required ones and wrong types down to
// panel options and queries, and checks that the SDK's types hold all of it.
func TestDashboardStrict(t *testing.T) {
	// Panel options and queries decode by the type registered for them.
	plugins.RegisterDefaultPlugins()
	raw := readDashboard(t)
	if err := strictError(new(dashboard.Dashboard).UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("strict decoding of %s: %v", dashboardFile, err)
	}
	// The strict decoder drops the panels from its result (SDK v0.0.22), so
	// the plain one shows whether anything is lost on the way.
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	again, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(again, '\n'), raw) {
		t.Errorf("%s changes when decoded and encoded again: the SDK does not know some of it", dashboardFile)
	}

	// The decoder must really be strict for the above to mean anything.
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	panel := generic["panels"].([]any)[1].(map[string]any)
	panel["options"].(map[string]any)["noSuchOption"] = true
	broken, err := json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictError(new(dashboard.Dashboard).UnmarshalJSONStrict(broken)); err == nil || !strings.Contains(err.Error(), "noSuchOption") {
		t.Errorf("strict decoding accepted an unknown panel option: %v", err)
	}
}

// strictError is the error of an UnmarshalJSONStrict, which returns its list
// of errors as an error even when the list is empty.
func strictError(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}

// dashboardQuery is a query of the dashboard, found in its JSON the way any
// consumer of the file finds it.
type dashboardQuery struct {
	where string
	kind  string // prometheus, loki or label_values
	expr  string
}

// dashboardQueries lists the queries of a dashboard: the targets of panels,
// also inside collapsed rows; the queries of query variables; and the
// expressions of annotations.
func dashboardQueries(t *testing.T, raw []byte) []dashboardQuery {
	t.Helper()
	var d struct {
		Panels []struct {
			dashboardPanel
			Panels []dashboardPanel `json:"panels"`
		} `json:"panels"`
		Templating struct {
			List []dashboardVariable `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name       string     `json:"name"`
				Datasource datasource `json:"datasource"`
				Expr       string     `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var qs []dashboardQuery
	addTargets := func(p dashboardPanel) {
		for _, target := range p.Targets {
			qs = append(qs, dashboardQuery{
				where: fmt.Sprintf("panel %d %q, target %s", p.ID, p.Title, target.RefID),
				kind:  target.Datasource.Type,
				expr:  target.Expr,
			})
		}
	}
	for _, p := range d.Panels {
		addTargets(p.dashboardPanel)
		for _, inner := range p.Panels {
			addTargets(inner)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			qs = append(qs, dashboardQuery{where: "variable " + v.Name, kind: "label_values", expr: v.Query})
		}
	}
	for _, a := range d.Annotations.List {
		qs = append(qs, dashboardQuery{where: "annotation " + a.Name, kind: a.Datasource.Type, expr: a.Expr})
	}
	return qs
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID          int        `json:"id"`
	Type        string     `json:"type"`
	Title       string     `json:"title"`
	Repeat      string     `json:"repeat"`
	Datasource  datasource `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Options struct {
		YAxis struct {
			Unit string `json:"unit"`
		} `json:"yAxis"`
	} `json:"options"`
	Targets []struct {
		RefID      string     `json:"refId"`
		Datasource datasource `json:"datasource"`
		Expr       string     `json:"expr"`
	} `json:"targets"`
}

type dashboardVariable struct {
	Type       string     `json:"type"`
	Name       string     `json:"name"`
	Query      string     `json:"query"`
	Datasource datasource `json:"datasource"`
	Multi      bool       `json:"multi"`
	IncludeAll bool       `json:"includeAll"`
	AllValue   string     `json:"allValue"`
	Current    struct {
		Value string `json:"value"`
	} `json:"current"`
}

// substitute puts values in place of the variables of expr, and fails on a
// variable it has no value for.
func substitute(t *testing.T, where, expr string, values map[string]string) string {
	t.Helper()
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		value, ok := values[name]
		if !ok {
			t.Errorf("%s: unknown variable %s in %s", where, ref, expr)
		}
		return value
	})
}

// referencedVariables are the variables expr uses, sorted.
func referencedVariables(expr string) []string {
	var names []string
	for _, m := range variableRef.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1]+m[2]+m[3])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

var labelValues = regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)

// TestPrometheusQueries parses every Prometheus query with the PromQL parser,
// after putting plausible values in place of the variables, and checks that
// it selects only metrics the exporter serves, each filtered by the
// variables. Series of the recording rules count as the exporter's.
func TestPrometheusQueries(t *testing.T) {
	known := maps.Clone(exporterMetrics)
	maps.Copy(known, recordedMetrics(t))
	promValues := maps.Clone(variableValues)
	maps.Copy(promValues, builtinValues)
	var prometheusQueries int
	for _, q := range dashboardQueries(t, readDashboard(t)) {
		switch q.kind {
		case "prometheus":
			prometheusQueries++
			expr, err := promQL.ParseExpr(substitute(t, q.where, q.expr, promValues))
			if err != nil {
				t.Errorf("%s: %v\n%s", q.where, err, q.expr)
				continue
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				if vs, ok := node.(*parser.VectorSelector); ok {
					checkSelector(t, q.where, known, vs.LabelMatchers)
				}
				return nil
			})
		case "label_values":
			m := labelValues.FindStringSubmatch(q.expr)
			if m == nil {
				t.Errorf("%s: %q is not label_values(selector, label)", q.where, q.expr)
				continue
			}
			// A series selector has no durations: builtins have no place.
			matchers, err := promQL.ParseMetricSelector(substitute(t, q.where, m[1], variableValues))
			if err != nil {
				t.Errorf("%s: %v\n%s", q.where, err, q.expr)
				continue
			}
			// The exporter's own URL is of the exporter, not of a camera.
			if name := metricName(matchers); name != "camera_up" && !(q.where == "variable exporter_url" && name == "camera_exporter_external_url_info") {
				t.Errorf("%s: %s offers the labels of %s, not of camera_up, which every configured camera has", q.where, q.expr, metricName(matchers))
			}
		}
	}
	if prometheusQueries == 0 {
		t.Fatal("no Prometheus query found in the dashboard")
	}
}

func metricName(matchers []*labels.Matcher) string {
	for _, m := range matchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// checkSelector checks that a selector names a known metric, one of the
// exporter or of its recording rules, and filters by the site and box
// variables, and by the camera variable if the metric has that label.
func checkSelector(t *testing.T, where string, known map[string]bool, matchers []*labels.Matcher) {
	t.Helper()
	name := metricName(matchers)
	metric := name
	for _, h := range exporterHistograms {
		if name == h {
			t.Errorf("%s: %s is a histogram: select its _bucket, _sum or _count", where, name)
			return
		}
		if suffix, found := strings.CutPrefix(name, h); found && slices.Contains([]string{"_bucket", "_sum", "_count"}, suffix) {
			metric = h
		}
	}
	perCamera, ok := known[metric]
	if !ok {
		t.Errorf("%s: %q is neither a metric of the exporter nor one its recording rules record", where, name)
		return
	}
	want := []string{"site", "box"}
	if perCamera {
		want = append(want, "camera")
	}
	for _, label := range want {
		if !slices.ContainsFunc(matchers, func(m *labels.Matcher) bool {
			return m.Name == label && m.Type == labels.MatchRegexp && strings.Contains(m.Value, variableValues[label])
		}) {
			t.Errorf("%s: %s lacks %s=~\"$%s\"", where, name, label, label)
		}
	}
}

// TestLokiQueries checks the LogQL queries as far as possible without Loki's
// parser, which is AGPL: they select the exporter's journal and filter by the
// box and camera variables.
func TestLokiQueries(t *testing.T) {
	var found int
	for _, q := range dashboardQueries(t, readDashboard(t)) {
		if q.kind != "loki" {
			continue
		}
		found++
		if got, want := referencedVariables(q.expr), []string{"box", "camera"}; !slices.Equal(got, want) {
			t.Errorf("%s: uses variables %v, want %v", q.where, got, want)
		}
		for _, part := range []string{`{job="camera_exporter", host=~"$box"}`, `| logfmt`, `camera=~"$camera"`} {
			if !strings.Contains(q.expr, part) {
				t.Errorf("%s: %s lacks %s", q.where, q.expr, part)
			}
		}
	}
	if found == 0 {
		t.Error("no Loki query found in the dashboard")
	}
}

func TestPanels(t *testing.T) {
	var d struct {
		Panels []struct {
			dashboardPanel
			Collapsed bool             `json:"collapsed"`
			Panels    []dashboardPanel `json:"panels"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	datasources := map[string]string{"prometheus": "${datasource}", "loki": "${loki}"}
	ids := map[int]string{}
	checkID := func(p dashboardPanel) {
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		} else if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
	}
	checkPanel := func(p dashboardPanel) {
		checkID(p)
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource.UID != datasources[p.Datasource.Type] {
			t.Errorf("panel %d %q: datasource %+v is not one of the datasource variables", p.ID, p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		for _, target := range p.Targets {
			if target.Datasource != p.Datasource || target.Expr == "" {
				t.Errorf("panel %d %q, target %s: datasource %+v, expression %q", p.ID, p.Title, target.RefID, target.Datasource, target.Expr)
			}
		}
		// Tables show labels and logs lines; everything else shows values.
		if unit := p.FieldConfig.Defaults.Unit + p.Options.YAxis.Unit; unit == "" && p.Type != "table" && p.Type != "logs" {
			t.Errorf("panel %d %q has no unit", p.ID, p.Title)
		}
	}
	var repeated []string
	for _, p := range d.Panels {
		if p.Type != "row" {
			checkPanel(p.dashboardPanel)
			continue
		}
		checkID(p.dashboardPanel)
		if p.Title == "" {
			t.Errorf("row %d has no title", p.ID)
		}
		if p.Repeat != "" {
			repeated = append(repeated, p.Repeat)
		}
		// Grafana shows the panels an open row holds nowhere.
		if !p.Collapsed && len(p.Panels) > 0 {
			t.Errorf("open row %q holds panels", p.Title)
		}
		for _, inner := range p.Panels {
			checkPanel(inner)
		}
	}
	if !slices.Equal(repeated, []string{"camera"}) {
		t.Errorf("rows repeat for %v, want one for camera", repeated)
	}
}

// TestVariables checks that the variables come in the order they depend on
// each other, each label variable narrowed by the ones before it.
func TestVariables(t *testing.T) {
	var d struct {
		Templating struct {
			List []dashboardVariable `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	if want := []string{"datasource", "loki", "site", "box", "camera", "exporter_url"}; !slices.Equal(names, want) {
		t.Fatalf("variables %v, want %v", names, want)
	}
	vars := map[string]dashboardVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["exporter_url"]; !slices.Equal(referencedVariables(v.Query), []string{"box", "site"}) ||
		!strings.HasPrefix(v.Query, "label_values(camera_exporter_external_url_info{") {
		t.Errorf("variable exporter_url: query %q, want the url of camera_exporter_external_url_info of $site and $box", v.Query)
	}
	for name, pluginType := range map[string]string{"datasource": "prometheus", "loki": "loki"} {
		if v := vars[name]; v.Type != "datasource" || v.Query != pluginType {
			t.Errorf("variable %s: type %s of %q, want a datasource variable of %q", name, v.Type, v.Query, pluginType)
		}
	}
	for name, uses := range map[string][]string{"site": nil, "box": {"site"}, "camera": {"box", "site"}} {
		v := vars[name]
		if got := referencedVariables(v.Query); !slices.Equal(got, uses) {
			t.Errorf("variable %s: query %q uses %v, want %v", name, v.Query, got, uses)
		}
		m := labelValues.FindStringSubmatch(v.Query)
		if m == nil || m[2] != name {
			t.Errorf("variable %s: query %q does not offer the values of label %s", name, v.Query, name)
		}
		if v.Type != "query" || v.Datasource.UID != "${datasource}" || !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s: want a multi-value query variable of ${datasource} with All as .*, got %+v", name, v)
		}
	}
}

// TestProvisioning checks that the provisioned datasources are the ones the
// dashboard's datasource variables default to, and that the dashboard
// provider reads a directory.
func TestProvisioning(t *testing.T) {
	var datasources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name string `yaml:"name"`
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("provisioning", "datasources", "camera.yml"), &datasources)
	var d struct {
		Templating struct {
			List []dashboardVariable `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			defaults[v.Query] = v.Current.Value
		}
	}
	urls := map[string]string{"prometheus": "http://prometheus:9090", "loki": "http://loki:3100"}
	if datasources.APIVersion != 1 || len(datasources.Datasources) != len(urls) {
		t.Fatalf("want apiVersion 1 and %d datasources, got %+v", len(urls), datasources)
	}
	for _, ds := range datasources.Datasources {
		if ds.UID == "" || ds.UID != defaults[ds.Type] || ds.URL != urls[ds.Type] {
			t.Errorf("datasource %s: %+v; the dashboard defaults to uid %q for %s, at %s", ds.Name, ds, defaults[ds.Type], ds.Type, urls[ds.Type])
		}
	}

	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("provisioning", "dashboards", "camera.yml"), &providers)
	if providers.APIVersion != 1 || len(providers.Providers) != 1 {
		t.Fatalf("want apiVersion 1 and one provider, got %+v", providers)
	}
	if p := providers.Providers[0]; p.Type != "file" || !filepath.IsAbs(p.Options.Path) {
		t.Errorf("want a file provider with an absolute path, got %+v", p)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
