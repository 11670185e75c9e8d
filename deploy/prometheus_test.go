package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	// promtoolDir holds prometheus.yml; the paths in it, and in the rule
	// tests, are relative to it.
	promtoolDir        = "prometheus"
	promtoolRulesFile  = "rules/camera_exporter.rules.yml"
	promtoolAlertsFile = "rules/camera_exporter.alerts.yml"
	promtoolRunbook    = "RUNBOOK.md"
	promtoolRunbookURL = "https://github.com/camera-exporter/camera_exporter/blob/main/deploy/prometheus/RUNBOOK.md#"
)

// promtoolAlertNames are the alerts the end-to-end test and the Alertmanager
// routes rely on: renaming one breaks them.
var promtoolAlertNames = []string{
	"CameraExporterDown",
	"CameraProbeFailing",
	"CameraBoxSilent",
	"CameraExporterCollectorFailing",
	"CameraDown",
	"CameraStalled",
	"CameraFrozen",
	"CameraAnalysisFailing",
	"CameraTooDark",
	"CameraOverexposed",
	"CameraBrightnessShifted",
	"CameraLensBlurred",
	"CameraMoved",
	"CameraObstructed",
	"CameraNoDetections",
	"CameraDetectorSilent",
	"CameraDrifted",
	"CameraInferenceSlow",
	"CameraDecodeErrors",
	"CameraReconnectStorm",
	"CameraDetectorOnCPU",
}

type promtoolRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// promtoolRules returns the rules of a rule file under promtoolDir.
func promtoolRules(t *testing.T, file string) []promtoolRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(promtoolDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []promtoolRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var rules []promtoolRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", file)
	}
	return rules
}

// promtoolRun runs promtool in promtoolDir and returns its output. A missing
// promtool or a failed check fails the test with promtool's output.
func promtoolRun(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian package prometheus, installed by .ci/deps) is required: %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = promtoolDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if strings.Contains(strings.ToLower(string(out)), "warn") {
		t.Fatalf("promtool %s warns:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// promtoolGlob returns the files matching pattern under promtoolDir, relative
// to it.
func promtoolGlob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(promtoolDir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s in %s", pattern, promtoolDir)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(promtoolDir, f)
	}
	return files
}

// promtoolConfig is what the tests check of a Prometheus configuration.
type promtoolConfig struct {
	Global struct {
		ExternalLabels map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName string `yaml:"job_name"`
	} `yaml:"scrape_configs"`
	RemoteWrite []struct {
		URL string `yaml:"url"`
	} `yaml:"remote_write"`
}

func promtoolReadConfig(t *testing.T, file string) promtoolConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(promtoolDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var cfg promtoolConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

func TestPrometheusConfig(t *testing.T) {
	// The single-box Prometheus and a fleet's central one evaluate the rules.
	for _, file := range []string{"prometheus.yml", "central.yml"} {
		t.Run(file, func(t *testing.T) {
			promtoolRun(t, "check", "config", file)

			// promtool checks the rule files the configuration names; a rule
			// file it does not name would never be loaded.
			cfg := promtoolReadConfig(t, file)
			slices.Sort(cfg.RuleFiles)
			if files := promtoolGlob(t, "rules/*.yml"); !slices.Equal(cfg.RuleFiles, files) {
				t.Errorf("%s rule_files = %q, want the files in rules/: %q", file, cfg.RuleFiles, files)
			}
			if file != "central.yml" {
				return
			}
			// The boxes' agents send their series: a scrape of the boxes
			// would store them twice, with other labels.
			if len(cfg.ScrapeConfigs) > 0 {
				t.Errorf("central.yml scrapes %d jobs, want none: the agents remote-write", len(cfg.ScrapeConfigs))
			}
			// Its external labels would be added to every alert it sends.
			for _, l := range []string{"site", "box"} {
				if _, ok := cfg.Global.ExternalLabels[l]; ok {
					t.Errorf("central.yml sets external label %s, which each box's series carry", l)
				}
			}
		})
	}

	// Central probing's; TestProbeShardingConfig checks its rule_files.
	t.Run("probe.yml", func(t *testing.T) {
		promtoolRun(t, "check", "config", "probe.yml")
	})

	t.Run("agent.yml", func(t *testing.T) {
		// --agent: no rules, no alerting, no local storage settings.
		promtoolRun(t, "check", "config", "--agent", "agent.yml")
		cfg := promtoolReadConfig(t, "agent.yml")
		for _, l := range []string{"site", "box"} {
			if cfg.Global.ExternalLabels[l] == "" {
				t.Errorf("agent.yml has no external label %s: the alerts and the dashboard need it on every series", l)
			}
		}
		// The alerts select job="camera".
		if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "camera" {
			t.Errorf("agent.yml scrape_configs = %+v, want one job named camera", cfg.ScrapeConfigs)
		}
		if len(cfg.RemoteWrite) != 1 || !strings.HasSuffix(cfg.RemoteWrite[0].URL, "/api/v1/write") {
			t.Errorf("agent.yml remote_write = %+v, want one, to a Prometheus' /api/v1/write", cfg.RemoteWrite)
		}
	})
}

func TestPrometheusRules(t *testing.T) {
	promtoolRun(t, append([]string{"check", "rules"}, promtoolGlob(t, "rules/*.yml")...)...)
}

func TestPrometheusRuleUnitTests(t *testing.T) {
	for _, file := range promtoolGlob(t, "tests/*.yml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			promtoolRun(t, "test", "rules", file)
		})
	}
}

// TestPrometheusRulesTested checks that the unit tests name every alert and
// every recorded series, so that a new rule cannot come without a test.
func TestPrometheusRulesTested(t *testing.T) {
	var tests strings.Builder
	for _, file := range promtoolGlob(t, "tests/*.yml") {
		b, err := os.ReadFile(filepath.Join(promtoolDir, file))
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	for _, r := range promtoolRules(t, promtoolRulesFile) {
		if !strings.Contains(tests.String(), r.Record) {
			t.Errorf("recording rule %s: no test in tests/", r.Record)
		}
	}
	for _, r := range promtoolRules(t, promtoolAlertsFile) {
		if !regexp.MustCompile(`(?m)alertname: ` + r.Alert + `\s*\n\s*exp_alerts:`).MatchString(tests.String()) {
			t.Errorf("alert %s: no test in tests/ expects it to fire", r.Alert)
		}
	}
}

func TestPrometheusRecordingRuleNames(t *testing.T) {
	// level:metric:operations, https://prometheus.io/docs/practices/rules/
	name := regexp.MustCompile(`^camera:camera_[a-z0-9_]+:[a-z0-9_]+$`)
	for _, r := range promtoolRules(t, promtoolRulesFile) {
		if !name.MatchString(r.Record) {
			t.Errorf("recording rule %q is not named camera:<metric>:<operations>", r.Record)
		}
	}
}

func TestPrometheusAlerts(t *testing.T) {
	anchors := promtoolRunbookAnchors(t)
	var names []string
	for _, r := range promtoolRules(t, promtoolAlertsFile) {
		names = append(names, r.Alert)
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.For == "" {
			t.Errorf("%s: no for:, a single evaluation would notify", r.Alert)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor := strings.ToLower(r.Alert)
		if got, want := r.Annotations["runbook_url"], promtoolRunbookURL+anchor; got != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
		}
		if !anchors[anchor] {
			t.Errorf("%s: %s has no section with anchor #%s", r.Alert, promtoolRunbook, anchor)
		}
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(promtoolAlertNames))
	if !slices.Equal(names, want) {
		t.Errorf("alerts %q, want %q", names, want)
	}
}

// promtoolRunbookAnchors returns the anchors GitHub gives the headings of
// the runbook: lower case, punctuation dropped, spaces as hyphens.
func promtoolRunbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(promtoolDir, promtoolRunbook))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	anchors := map[string]bool{}
	s := bufio.NewScanner(f)
	fenced := false // in a code block, where # starts a shell comment
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok {
			continue
		}
		a := drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(heading)), "")
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}
