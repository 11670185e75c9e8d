package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestStack runs the shipped monitoring stack for real, on loopback: the
// exporter against test cameras, Debian's Prometheus with the rules from
// deploy/prometheus (their for: durations shrunk to a second) and
// Alertmanager with deploy/alertmanager's routes and inhibitions, which
// deliver to a webhook here. It asserts through the APIs what an operator
// would see.
func TestStack(t *testing.T) {
	dir := t.TempDir()
	cameras, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		// A moving test pattern: a picture with a scene to compare.
		"bright": stackClip(t, "testsrc2=s=320x240:r=5"),
		"dark":   stackClip(t, "color=c=0x080808:s=320x240:r=5"),
		"dying":  stackClip(t, "color=c=0x808080:s=320x240:r=5"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cameras.Close()

	webhook := &stackWebhook{}
	receiver := httptest.NewServer(webhook)
	defer receiver.Close()

	exporterAddr, promAddr, amAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	stackStartExporter(t, dir, exporterAddr, cameras)
	stackStartAlertmanager(t, dir, amAddr, receiver.URL)
	stackStartPrometheus(t, dir, promAddr, exporterAddr, amAddr)
	prom := &stackAPI{t: t, base: "http://" + promAddr}
	am := &stackAPI{t: t, base: "http://" + amAddr}

	t.Run("dark camera alerts, bright one does not", func(t *testing.T) {
		stackWait(t, "CameraTooDark for the dark camera at the webhook", func() bool {
			return webhook.received("CameraTooDark", "dark")
		})
		if alerts := prom.firing("CameraTooDark"); alerts["bright"] {
			t.Error("CameraTooDark fires for the bright camera")
		}
		if webhook.received("CameraTooDark", "bright") {
			t.Error("the bright camera's CameraTooDark reached the webhook")
		}
	})

	t.Run("dashboard queries return data", func(t *testing.T) {
		queries := stackDashboardQueries(t)
		if len(queries) < 10 {
			t.Fatalf("found only %d queries in the dashboard", len(queries))
		}
		// Rates need a few scrapes in their window, drift scores a
		// reference and a window of frames.
		stackWait(t, "rate() data and drift scores", func() bool {
			return len(prom.query("rate(camera_frames_received_total[30s])")) > 0 &&
				len(prom.query("camera_drift_combined_score")) == 3
		})
		// A series missing from one scrape, as an analysis cut off at the
		// scrape's deadline on a loaded machine, is stale until the next:
		// each query gets a few scrapes' time.
		for _, q := range queries {
			if !stackEventually(5*time.Second, func() bool { return len(prom.query(q)) > 0 }) {
				t.Errorf("no series for %s", q)
			}
		}
	})

	t.Run("silence mutes an alert", func(t *testing.T) {
		out, err := exec.Command("amtool", "silence", "add", "--alertmanager.url=http://"+amAddr,
			"--author=stack-test", "--comment=lens cleaning", "--duration=10m",
			"alertname=CameraTooDark", "camera=dark").CombinedOutput()
		if err != nil {
			t.Fatalf("amtool silence add: %v\n%s", err, out)
		}
		id := strings.TrimSpace(string(out))
		stackWait(t, "the dark camera's alert silenced", func() bool {
			a := am.alert("CameraTooDark", "dark")
			return a != nil && a.Status.State == "suppressed" && len(a.Status.SilencedBy) == 1 && a.Status.SilencedBy[0] == id
		})
	})

	t.Run("camera down inhibits the camera's other alerts", func(t *testing.T) {
		// On a loaded machine an analysis cut off at the deadline now and
		// then can fire the camera's CameraAnalysisFailing before: only what
		// arrives once the camera is gone counts.
		removed := webhook.mark()
		cameras.Remove("dying")
		stackWait(t, "CameraDown for the dying camera at the webhook", func() bool {
			return webhook.received("CameraDown", "dying")
		})
		// Analysis fails too while the camera is down: Prometheus fires the
		// alert, Alertmanager holds it back.
		stackWait(t, "CameraAnalysisFailing for the dying camera inhibited", func() bool {
			a := am.alert("CameraAnalysisFailing", "dying")
			return a != nil && a.Status.State == "suppressed" && len(a.Status.InhibitedBy) > 0
		})
		if !prom.firing("CameraAnalysisFailing")["dying"] {
			t.Error("Prometheus does not fire CameraAnalysisFailing for the dying camera")
		}
		if webhook.receivedSince(removed, "CameraAnalysisFailing", "dying") {
			t.Error("an inhibited alert reached the webhook")
		}
	})
}

func stackClip(t *testing.T, lavfi string) *rtsptest.Media {
	t.Helper()
	m, err := rtsptest.Encode(t.Context(), t.TempDir(), rtsptest.MJPEG, 5, 25, []string{"-f", "lavfi", "-i", lavfi})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stackRun starts a process that t's cleanup kills by pid and reaps; its
// output goes to a file in dir, shown if the test fails. A test may kill
// the process it returns before: it is only reaped at the cleanup.
func stackRun(t *testing.T, dir, name string, args ...string) *os.Process {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // it may have died already
		cmd.Wait()                                     //nolint:errcheck // killed
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", filepath.Base(name), stackTail(string(out), 40))
		}
	})
	return cmd.Process
}

func stackTail(s string, lines int) string {
	all := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func stackStartExporter(t *testing.T, dir, addr string, cameras *rtsptest.Server) {
	t.Helper()
	models, err := filepath.Abs("../../shared/models/yolo-fastest-1.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`detector:
  model: %[1]s/yolo-fastest-1.1.weights
  config: %[1]s/yolo-fastest-1.1.cfg
  labels: %[1]s/coco.names
  input_size: 320
defaults:
  timeout: 2s
  detect:
    classes: [person]
  # Every camera learns its reference from its first frames.
  reference:
    dir: %[2]s
    calibration: 2s
cameras:
`, models, filepath.Join(dir, "references"))
	for _, name := range []string{"bright", "dark", "dying"} {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, cameras.URL(name))
	}
	if err := os.Mkdir(filepath.Join(dir, "references"), 0o700); err != nil {
		t.Fatal(err)
	}
	stackRunExporter(t, dir, addr, cfg)
}

// stackRunExporter runs the exporter with configuration cfg, written to
// dir, and waits until it serves.
func stackRunExporter(t *testing.T, dir, addr, cfg string, flags ...string) *os.Process {
	t.Helper()
	bin := exporterBinary(t)
	cfgPath := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every scrape analyzes a new frame, so that references and drift
	// windows fill in seconds.
	p := stackRun(t, dir, bin, append([]string{"--config.file=" + cfgPath, "--web.listen-address=" + addr, "--collector.image.min-interval=0s",
		// 200 ms scrapes: keep most of them for the analyses.
		"--web.timeout-offset=0.05"}, flags...)...)
	stackWait(t, "the exporter", func() bool { return stackGet("http://"+addr+"/-/healthy") == nil })
	return p
}

func stackStartPrometheus(t *testing.T, dir, addr, exporterAddr, amAddr string) {
	t.Helper()
	ruleFiles := stackRewriteRules(t, dir)
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"alerting": map[string]any{"alertmanagers": []any{
			map[string]any{"static_configs": []any{map[string]any{"targets": []string{amAddr}}}},
		}},
		"rule_files": ruleFiles,
		"scrape_configs": []any{map[string]any{
			"job_name":        "camera",
			"scrape_interval": "200ms",
			"static_configs": []any{map[string]any{
				"targets": []string{exporterAddr},
				"labels":  map[string]string{"site": "test-site", "box": "box-1"},
			}},
		}},
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	stackWriteYAML(t, cfgPath, cfg)
	stackRun(t, dir, "prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr)
	stackWait(t, "Prometheus", func() bool { return stackGet("http://"+addr+"/-/ready") == nil })
}

// stackRewriteRules writes the rule files of deploy/prometheus/rules to dir,
// test-sized, and returns their paths.
func stackRewriteRules(t *testing.T, dir string) []string {
	t.Helper()
	rules, err := filepath.Glob("prometheus/rules/*.yml")
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rule files in deploy/prometheus/rules: %v", err)
	}
	var ruleFiles []string
	for _, path := range rules {
		out := filepath.Join(dir, filepath.Base(path))
		stackRewriteYAML(t, path, out, func(doc *yaml.Node) {
			// Test-sized: every alert fires one second after its condition holds.
			for _, rule := range stackNodes(doc, "groups", "*", "rules", "*") {
				if v := stackMapValue(rule, "for"); v != nil {
					v.Value = "1s"
				}
			}
			for _, group := range stackNodes(doc, "groups", "*") {
				if v := stackMapValue(group, "interval"); v != nil {
					v.Value = "1s"
				}
			}
		})
		ruleFiles = append(ruleFiles, out)
	}
	return ruleFiles
}

func stackStartAlertmanager(t *testing.T, dir, addr, webhookURL string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	stackRewriteYAML(t, "alertmanager/alertmanager.yml", cfgPath, func(doc *yaml.Node) {
		for _, route := range append(stackNodes(doc, "route"), stackRoutes(stackNodes(doc, "route"))...) {
			for key, value := range map[string]string{"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"} {
				if v := stackMapValue(route, key); v != nil {
					v.Value = value
				}
			}
		}
		// Only webhooks, all to the test's receiver: mail and chat would
		// only fail on loopback.
		for _, receiver := range stackNodes(doc, "receivers", "*") {
			var kept []*yaml.Node
			for i := 0; i+1 < len(receiver.Content); i += 2 {
				key := receiver.Content[i].Value
				if key == "name" || key == "webhook_configs" {
					kept = append(kept, receiver.Content[i], receiver.Content[i+1])
				}
			}
			receiver.Content = kept
		}
		for _, hook := range stackNodes(doc, "receivers", "*", "webhook_configs", "*") {
			for i := 0; i+1 < len(hook.Content); i += 2 {
				if key := hook.Content[i].Value; key == "url" {
					hook.Content[i+1].Value = webhookURL
				} else if key == "url_file" {
					hook.Content[i].Value, hook.Content[i+1].Value = "url", webhookURL
				}
			}
		}
	})
	stackRun(t, dir, "prometheus-alertmanager", "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	stackWait(t, "Alertmanager", func() bool { return stackGet("http://"+addr+"/-/ready") == nil })
}

// stackRoutes returns every route below routes, depth first.
func stackRoutes(routes []*yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, r := range routes {
		children := stackNodes(r, "routes", "*")
		out = append(out, children...)
		out = append(out, stackRoutes(children)...)
	}
	return out
}

func stackRewriteYAML(t *testing.T, in, out string, edit func(*yaml.Node)) {
	t.Helper()
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	edit(&doc)
	stackWriteYAML(t, out, &doc)
}

func stackWriteYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stackNodes follows a path of mapping keys and "*" (every item of a
// sequence) from n, a document or a node.
func stackNodes(n *yaml.Node, path ...string) []*yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	nodes := []*yaml.Node{n}
	for _, step := range path {
		var next []*yaml.Node
		for _, node := range nodes {
			switch {
			case step == "*" && node.Kind == yaml.SequenceNode:
				next = append(next, node.Content...)
			case step != "*":
				if v := stackMapValue(node, step); v != nil {
					next = append(next, v)
				}
			}
		}
		nodes = next
	}
	return nodes
}

func stackMapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var (
	// stackVariables are the dashboard's template variables and Grafana's
	// built-in ones, with what a user selecting "All" would send.
	stackVariables = strings.NewReplacer(
		"$__rate_interval", "30s", "${__rate_interval}", "30s",
		"$__interval", "5s", "${__interval}", "5s",
		"$__range_s", "60", "${__range_s}", "60",
		"$__range", "1m", "${__range}", "1m",
		"${site:regex}", ".*", "${box:regex}", ".*", "${camera:regex}", ".*",
		"${site}", ".*", "${box}", ".*", "${camera}", ".*",
		"$site", ".*", "$box", ".*", "$camera", ".*",
	)
	stackUnreplaced = regexp.MustCompile(`\$\{?\w+`)
)

// stackDashboardQueries returns every Prometheus query of the dashboard:
// panel targets, in rows too, and annotations, with variables filled in.
func stackDashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/camera.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	}
	type panel struct {
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var dash struct {
		Panels      []panel `json:"panels"`
		Annotations struct {
			List []target `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			for _, tg := range p.Targets {
				// Loki targets carry LogQL, which Prometheus cannot run.
				if tg.Expr != "" && !strings.Contains(string(tg.Datasource), "loki") {
					exprs = append(exprs, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, a := range dash.Annotations.List {
		if a.Expr != "" {
			exprs = append(exprs, a.Expr)
		}
	}
	for i, e := range exprs {
		exprs[i] = stackVariables.Replace(e)
		if v := stackUnreplaced.FindString(exprs[i]); v != "" {
			t.Errorf("query uses unknown variable %s: %s", v, e)
		}
	}
	return exprs
}

// stackWebhook records the alerts Alertmanager delivers.
type stackWebhook struct {
	mu     sync.Mutex
	alerts []stackAlert
}

type stackAlert struct {
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
}

func (w *stackWebhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []stackAlert `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.alerts = append(w.alerts, msg.Alerts...)
}

// received reports whether a firing alert of that name and camera arrived.
func (w *stackWebhook) received(alertname, camera string) bool {
	return w.receivedSince(0, alertname, camera)
}

// mark returns a position in the notifications, for receivedSince.
func (w *stackWebhook) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.alerts)
}

// receivedSince is received, for the notifications since mark.
func (w *stackWebhook) receivedSince(mark int, alertname, camera string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.alerts[mark:] {
		if a.Status == "firing" && a.Labels["alertname"] == alertname && a.Labels["camera"] == camera {
			return true
		}
	}
	return false
}

// stackAPI queries Prometheus' and Alertmanager's HTTP APIs.
type stackAPI struct {
	t    *testing.T
	base string
}

func (a *stackAPI) get(path string, v any) {
	a.t.Helper()
	resp, err := http.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
}

// query runs an instant PromQL query and returns its series.
func (a *stackAPI) query(q string) []json.RawMessage {
	a.t.Helper()
	var resp struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	a.get("/api/v1/query?query="+url.QueryEscape(q), &resp)
	return resp.Data.Result
}

// firing returns the cameras for which Prometheus fires the alert.
func (a *stackAPI) firing(alertname string) map[string]bool {
	a.t.Helper()
	cameras := map[string]bool{}
	for _, labels := range a.firingLabels(alertname) {
		cameras[labels["camera"]] = true
	}
	return cameras
}

// firingLabels returns the labels of each firing alert of that name.
func (a *stackAPI) firingLabels(alertname string) []map[string]string {
	a.t.Helper()
	var resp struct {
		Data struct {
			Alerts []struct {
				State  string            `json:"state"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		} `json:"data"`
	}
	a.get("/api/v1/alerts", &resp)
	var out []map[string]string
	for _, al := range resp.Data.Alerts {
		if al.State == "firing" && al.Labels["alertname"] == alertname {
			out = append(out, al.Labels)
		}
	}
	return out
}

type stackAMAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// alert returns Alertmanager's view of one camera's alert, or nil.
func (a *stackAPI) alert(alertname, camera string) *stackAMAlert {
	a.t.Helper()
	var alerts []stackAMAlert
	a.get("/api/v2/alerts", &alerts)
	for i, al := range alerts {
		if al.Labels["alertname"] == alertname && al.Labels["camera"] == camera {
			return &alerts[i]
		}
	}
	return nil
}

func stackGet(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}

func stackWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !stackEventually(30*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// stackEventually polls cond until it holds or timeout passes, and
// reports whether it held.
func stackEventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// stackSet sets key of mapping n to v, adding it if n has none.
func stackSet(t *testing.T, n *yaml.Node, key string, v any) {
	t.Helper()
	var value yaml.Node
	if err := value.Encode(v); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = &value
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &value)
}

// stackDelete removes key from mapping n.
func stackDelete(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = slices.Delete(n.Content, i, i+2)
			return
		}
	}
}
