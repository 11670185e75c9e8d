package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// fleetBox is an edge box of TestFleetAgents: its labels, and which of its
// cameras, named alike on every box, shows a dark picture.
type fleetBox struct {
	site, box string
	dark      map[string]bool
}

// TestFleetAgents runs a fleet on loopback: two edge boxes, each with its
// exporter and Debian's Prometheus in agent mode from
// deploy/prometheus/agent.yml, remote-write to one central Prometheus from
// deploy/prometheus/central.yml, which evaluates the shipped rules (their
// for: durations shrunk to a second). The boxes' cameras have the same
// names: only site and box, the agents' external labels, tell them apart.
func TestFleetAgents(t *testing.T) {
	dir := t.TempDir()
	boxes := []fleetBox{
		{site: "site-a", box: "edge-box-1", dark: map[string]bool{"yard": true}},
		{site: "site-b", box: "edge-box-2", dark: map[string]bool{}},
	}
	cameraNames := []string{"gate", "yard"}
	bright := stackClip(t, "testsrc2=s=320x240:r=5")
	dark := stackClip(t, "color=c=0x080808:s=320x240:r=5")
	clips := map[string]*rtsptest.Media{}
	for _, b := range boxes {
		for _, c := range cameraNames {
			clips[b.box+"-"+c] = bright
			if b.dark[c] {
				clips[b.box+"-"+c] = dark
			}
		}
	}
	cameras, err := rtsptest.Start(rtsptest.Options{}, clips)
	if err != nil {
		t.Fatal(err)
	}
	defer cameras.Close()

	centralAddr := testutil.FreeAddr(t)
	fleetStartCentral(t, filepath.Join(dir, "central"), centralAddr)
	exporters, agents := map[string]*os.Process{}, map[string]*os.Process{}
	for _, b := range boxes {
		boxDir := filepath.Join(dir, b.box)
		if err := os.Mkdir(boxDir, 0o700); err != nil {
			t.Fatal(err)
		}
		// Stream and image metrics only: CameraTooDark needs no detector.
		cfg := "defaults:\n  timeout: 2s\ncameras:\n"
		for _, c := range cameraNames {
			cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", c, cameras.URL(b.box+"-"+c))
		}
		exporterAddr := testutil.FreeAddr(t)
		exporters[b.box] = stackRunExporter(t, boxDir, exporterAddr, cfg, "--web.external-url="+fleetExternalURL(b))
		agents[b.box] = fleetStartAgent(t, boxDir, testutil.FreeAddr(t), exporterAddr, "http://"+centralAddr+"/api/v1/write", b)
	}
	central := &stackAPI{t: t, base: "http://" + centralAddr}

	t.Run("central store has every box's series", func(t *testing.T) {
		stackWait(t, "every camera up at the central Prometheus", func() bool {
			return len(central.query("camera_up == 1")) == len(boxes)*len(cameraNames)
		})
		var got []string
		for _, s := range fleetQuery(central, "camera_up") {
			for _, l := range []string{"site", "box", "camera", "job", "instance"} {
				if s.Metric[l] == "" {
					t.Errorf("camera_up%v: no %s label", s.Metric, l)
				}
			}
			if s.Metric["job"] != "camera" {
				t.Errorf("camera_up%v: job %q, want camera", s.Metric, s.Metric["job"])
			}
			got = append(got, s.Metric["site"]+"/"+s.Metric["box"]+"/"+s.Metric["camera"])
		}
		var want []string
		for _, b := range boxes {
			for _, c := range cameraNames {
				want = append(want, b.site+"/"+b.box+"/"+c)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("camera_up at the central Prometheus for %q, want %q", got, want)
		}
		// The agents send their scrapes' up too, which CameraExporterDown
		// reads.
		stackWait(t, "every box's up at the central Prometheus", func() bool {
			return len(central.query(`up{job="camera"} == 1`)) == len(boxes)
		})
	})

	t.Run("dark camera alerts on its box only", func(t *testing.T) {
		stackWait(t, "CameraTooDark for edge-box-1's yard", func() bool {
			return slices.Contains(fleetFiring(central, "CameraTooDark"), "site-a/edge-box-1/yard")
		})
		if got := fleetFiring(central, "CameraTooDark"); !slices.Equal(got, []string{"site-a/edge-box-1/yard"}) {
			t.Errorf("CameraTooDark fires for %q, want only site-a/edge-box-1/yard", got)
		}
		// The alert links the camera's page on its box's exporter, though
		// every box's instance is localhost:9845.
		var resp struct {
			Data struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"alerts"`
			} `json:"data"`
		}
		central.get("/api/v1/alerts", &resp)
		for _, a := range resp.Data.Alerts {
			if a.Labels["alertname"] == "CameraTooDark" {
				if got, want := a.Annotations["snapshot_url"], fleetExternalURL(boxes[0])+"/cameras/yard"; got != want {
					t.Errorf("CameraTooDark snapshot_url %q, want %q", got, want)
				}
			}
		}
	})

	t.Run("dashboard variables list every box", func(t *testing.T) {
		// As a user selecting All, then site-b and edge-box-2 would see.
		// exporter_url, of the links to the camera pages, is each box's
		// --web.external-url.
		all := map[string][]string{"site": {"site-a", "site-b"}, "box": {"edge-box-1", "edge-box-2"}, "camera": cameraNames,
			"exporter_url": {fleetExternalURL(boxes[0]), fleetExternalURL(boxes[1])}}
		fleetCheckVariables(t, central, stackVariables, all)
		one := strings.NewReplacer("$site", "site-b", "$box", "edge-box-2")
		fleetCheckVariables(t, central, one, map[string][]string{"site": all["site"], "box": {"edge-box-2"}, "camera": cameraNames,
			"exporter_url": {fleetExternalURL(boxes[1])}})
	})

	t.Run("exporter down alerts on its box only", func(t *testing.T) {
		// The agent goes on scraping, and sends up == 0.
		if err := exporters["edge-box-2"].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		stackWait(t, "CameraExporterDown for edge-box-2", func() bool {
			return slices.Contains(fleetFiring(central, "CameraExporterDown"), "site-b/edge-box-2/")
		})
		if got := fleetFiring(central, "CameraExporterDown"); !slices.Equal(got, []string{"site-b/edge-box-2/"}) {
			t.Errorf("CameraExporterDown fires for %q, want only site-b/edge-box-2", got)
		}
	})

	t.Run("silent box alerts", func(t *testing.T) {
		// Nothing arrives from the box any more: its series end.
		if err := agents["edge-box-1"].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		stackWait(t, "CameraBoxSilent for edge-box-1", func() bool {
			return slices.Contains(fleetFiring(central, "CameraBoxSilent"), "site-a/edge-box-1/")
		})
		// edge-box-2's agent still sends its exporter's up 0.
		if got := fleetFiring(central, "CameraBoxSilent"); !slices.Equal(got, []string{"site-a/edge-box-1/"}) {
			t.Errorf("CameraBoxSilent fires for %q, want only site-a/edge-box-1", got)
		}
	})
}

// fleetExternalURL is the box's exporter's --web.external-url.
func fleetExternalURL(b fleetBox) string { return "https://" + b.box + ".example/camera" }

// fleetStartCentral runs the central Prometheus from
// deploy/prometheus/central.yml, test-sized, with the remote-write receiver
// on. It has no Alertmanager: the tests read its alerts.
func fleetStartCentral(t *testing.T, dir, addr string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ruleFiles := stackRewriteRules(t, dir)
	cfgPath := filepath.Join(dir, "central.yml")
	stackRewriteYAML(t, "prometheus/central.yml", cfgPath, func(doc *yaml.Node) {
		root := stackNodes(doc)[0]
		stackSet(t, stackMapValue(root, "global"), "evaluation_interval", "1s")
		stackSet(t, root, "rule_files", ruleFiles)
		stackDelete(root, "alerting")
	})
	stackRun(t, dir, "prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver",
		// Test-sized, as the for: durations: a series that stops is gone
		// after 2 s instead of 5 m.
		"--query.lookback-delta=2s")
	stackWait(t, "the central Prometheus", func() bool { return stackGet("http://"+addr+"/-/ready") == nil })
}

// fleetStartAgent runs Prometheus in agent mode on a box, from
// deploy/prometheus/agent.yml: it scrapes the box's exporter and
// remote-writes to writeURL, with the box's site and box.
func fleetStartAgent(t *testing.T, dir, addr, exporterAddr, writeURL string, b fleetBox) *os.Process {
	t.Helper()
	cfgPath := filepath.Join(dir, "agent.yml")
	stackRewriteYAML(t, "prometheus/agent.yml", cfgPath, func(doc *yaml.Node) {
		labels := stackNodes(doc, "global", "external_labels")
		if len(labels) != 1 || stackMapValue(labels[0], "site") == nil || stackMapValue(labels[0], "box") == nil {
			t.Fatal("agent.yml: no external_labels site and box")
		}
		stackMapValue(labels[0], "site").Value = b.site
		stackMapValue(labels[0], "box").Value = b.box
		stackSet(t, stackNodes(doc, "global")[0], "scrape_interval", "200ms")
		// 200 ms scrapes, as TestStack's.
		for _, job := range stackNodes(doc, "scrape_configs", "*") {
			stackSet(t, job, "scrape_interval", "200ms")
			stackSet(t, job, "scrape_timeout", "200ms")
		}
		for _, sc := range stackNodes(doc, "scrape_configs", "*", "static_configs", "*") {
			stackSet(t, sc, "targets", []string{exporterAddr})
		}
		// Batches go when full or after 5 s by default.
		for _, rw := range stackNodes(doc, "remote_write", "*") {
			stackSet(t, rw, "url", writeURL)
			stackSet(t, rw, "queue_config", map[string]string{"batch_send_deadline": "200ms"})
		}
	})
	agent := stackRun(t, dir, "prometheus", "--enable-feature=agent", "--config.file="+cfgPath,
		"--storage.agent.path="+filepath.Join(dir, "agent"), "--web.listen-address="+addr)
	stackWait(t, b.box+"'s agent", func() bool { return stackGet("http://"+addr+"/-/ready") == nil })
	return agent
}

type fleetSample struct {
	Metric map[string]string `json:"metric"`
}

// fleetQuery runs an instant query and returns its series' labels.
func fleetQuery(a *stackAPI, q string) []fleetSample {
	a.t.Helper()
	var out []fleetSample
	for _, raw := range a.query(q) {
		var s fleetSample
		if err := json.Unmarshal(raw, &s); err != nil {
			a.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// fleetFiring returns the firing alerts of that name, as site/box/camera
// (camera empty for an alert without one), sorted.
func fleetFiring(a *stackAPI, alertname string) []string {
	a.t.Helper()
	var out []string
	for _, labels := range a.firingLabels(alertname) {
		out = append(out, labels["site"]+"/"+labels["box"]+"/"+labels["camera"])
	}
	slices.Sort(out)
	return out
}

// fleetLabelValues matches the dashboard variables' label_values(metric,
// label) queries.
var fleetLabelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// fleetCheckVariables runs the dashboard's query variables, with vars
// filled in, against a, as Grafana's label values requests, and checks that
// each lists want[variable].
func fleetCheckVariables(t *testing.T, a *stackAPI, vars *strings.Replacer, want map[string][]string) {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/camera.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := fleetLabelValues.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, v.Query)
			continue
		}
		match, label := vars.Replace(m[1]), m[2]
		var resp struct {
			Data []string `json:"data"`
		}
		a.get("/api/v1/label/"+url.PathEscape(label)+"/values?match[]="+url.QueryEscape(match), &resp)
		slices.Sort(resp.Data)
		if w, ok := want[v.Name]; !ok {
			t.Errorf("variable %s: not expected", v.Name)
		} else if !slices.Equal(resp.Data, w) {
			t.Errorf("variable %s (%s values of %s) = %q, want %q", v.Name, label, match, resp.Data, w)
		}
		checked[v.Name] = true
	}
	for name := range want {
		if !checked[name] {
			t.Errorf("the dashboard has no variable %s", name)
		}
	}
}
