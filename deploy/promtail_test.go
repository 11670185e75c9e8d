package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// promtailRelabel is a relabel_configs entry.
type promtailRelabel struct {
	SourceLabels []string `yaml:"source_labels"`
	Separator    *string  `yaml:"separator"`
	Regex        *string  `yaml:"regex"`
	TargetLabel  string   `yaml:"target_label"`
	Replacement  *string  `yaml:"replacement"`
	Action       string   `yaml:"action"`
}

// promtailRelabelApply applies rules as Promtail does to a journal entry's
// fields, and returns the labels and whether the entry is kept. Only the
// keep and replace actions are implemented.
func promtailRelabelApply(t *testing.T, rules []promtailRelabel, labels map[string]string) (map[string]string, bool) {
	t.Helper()
	labels = maps.Clone(labels)
	for _, r := range rules {
		sep, regex, replacement := ";", "(.*)", "$1"
		if r.Separator != nil {
			sep = *r.Separator
		}
		if r.Regex != nil {
			regex = *r.Regex
		}
		if r.Replacement != nil {
			replacement = *r.Replacement
		}
		re := regexp.MustCompile("^(?:" + regex + ")$")
		var values []string
		for _, l := range r.SourceLabels {
			values = append(values, labels[l])
		}
		value := strings.Join(values, sep)
		switch r.Action {
		case "keep":
			if !re.MatchString(value) {
				return nil, false
			}
		case "", "replace":
			if m := re.FindStringSubmatchIndex(value); m != nil {
				if v := string(re.ExpandString(nil, replacement, value, m)); v != "" {
					labels[r.TargetLabel] = v
				} else {
					delete(labels, r.TargetLabel)
				}
			}
		default:
			t.Fatalf("relabel action %s: not implemented here", r.Action)
		}
	}
	return labels, true
}

// promtailLogfmt matches a logfmt key and its value, bare or quoted.
var promtailLogfmt = regexp.MustCompile(`(?:^|\s)([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// promtailPipelineRun runs line through stages as Promtail does and returns
// the labels it gets, or false if it is dropped. Only the stages and
// options promtail.yml uses are implemented: one more fails the test.
func promtailPipelineRun(t *testing.T, stages []map[string]yaml.Node, line string) (map[string]string, bool) {
	t.Helper()
	extracted := map[string]string{}
	labels := map[string]string{}
	for _, stage := range stages {
		for kind, node := range stage {
			switch kind {
			case "logfmt":
				var cfg struct {
					Mapping map[string]string `yaml:"mapping"`
				}
				promtailDecodeStage(t, kind, &node, &cfg)
				fields := map[string]string{}
				for _, m := range promtailLogfmt.FindAllStringSubmatch(line, -1) {
					v := m[2]
					if unquoted, err := strconv.Unquote(v); err == nil {
						v = unquoted
					}
					fields[m[1]] = v
				}
				for name, key := range cfg.Mapping {
					if key == "" {
						key = name
					}
					if v, ok := fields[key]; ok {
						extracted[name] = v
					}
				}
			case "template":
				var cfg struct {
					Source   string `yaml:"source"`
					Template string `yaml:"template"`
				}
				promtailDecodeStage(t, kind, &node, &cfg)
				tmpl, err := template.New(kind).Funcs(template.FuncMap{"ToLower": strings.ToLower, "ToUpper": strings.ToUpper}).Parse(cfg.Template)
				if err != nil {
					t.Fatalf("template stage: %v", err)
				}
				data := map[string]any{"Entry": line}
				for k, v := range extracted {
					data[k] = v
				}
				if v, ok := extracted[cfg.Source]; ok {
					data["Value"] = v
				}
				var b strings.Builder
				// Promtail leaves the value as it is when the template fails.
				if err := tmpl.Execute(&b, data); err == nil {
					if b.Len() == 0 {
						delete(extracted, cfg.Source)
					} else {
						extracted[cfg.Source] = b.String()
					}
				}
			case "drop":
				var cfg struct {
					Source            string `yaml:"source"`
					Value             string `yaml:"value"`
					DropCounterReason string `yaml:"drop_counter_reason"`
				}
				promtailDecodeStage(t, kind, &node, &cfg)
				if v, ok := extracted[cfg.Source]; ok && v == cfg.Value {
					return nil, false
				}
			case "labels":
				var cfg map[string]string
				promtailDecodeStage(t, kind, &node, &cfg)
				for name, source := range cfg {
					if source == "" {
						source = name
					}
					if v, ok := extracted[source]; ok && v != "" {
						labels[name] = v
					}
				}
			default:
				t.Fatalf("pipeline stage %s: not implemented here", kind)
			}
		}
	}
	return labels, true
}

// promtailDecodeStage decodes a stage's configuration into cfg, failing on
// options that promtailPipelineRun does not implement.
func promtailDecodeStage(t *testing.T, kind string, node *yaml.Node, cfg any) {
	t.Helper()
	b, err := yaml.Marshal(node)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("%s stage: %v", kind, err)
	}
}

// promtailExporterLine runs the exporter with a camera that refuses
// connections and returns the first line it logs about the camera.
func promtailExporterLine(t *testing.T, camera string) string {
	t.Helper()
	bin := exporterBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	path := filepath.Join(t.TempDir(), "exporter.yml")
	cfg := fmt.Sprintf("cameras:\n  - name: %s\n    url: rtsp://%s/stream\n", camera, closed)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, "--config.file="+path, "--web.listen-address=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait() // killed
	}()
	var lines []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " camera="+camera) {
			return sc.Text()
		}
		lines = append(lines, sc.Text())
	}
	t.Fatalf("the exporter logged nothing about camera %s within 30s:\n%s", camera, strings.Join(lines, "\n"))
	return ""
}

func TestPromtailConfig(t *testing.T) {
	var cfg struct {
		Positions struct {
			Filename string `yaml:"filename"`
		} `yaml:"positions"`
		Clients []struct {
			URL string `yaml:"url"`
		} `yaml:"clients"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
			Journal *struct {
				Path   string `yaml:"path"`
				MaxAge string `yaml:"max_age"`
			} `yaml:"journal"`
			RelabelConfigs []promtailRelabel      `yaml:"relabel_configs"`
			PipelineStages []map[string]yaml.Node `yaml:"pipeline_stages"`
		} `yaml:"scrape_configs"`
	}
	composeReadYAML(t, "promtail/promtail.yml", &cfg)
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].Journal == nil {
		t.Fatalf("want one scrape config, of the journal: %+v", cfg.ScrapeConfigs)
	}
	sc := cfg.ScrapeConfigs[0]
	if sc.Journal.Path != "/var/log/journal" {
		t.Errorf("journal path %s, want /var/log/journal", sc.Journal.Path)
	}
	if _, err := time.ParseDuration(sc.Journal.MaxAge); err != nil {
		t.Errorf("journal max_age: %v", err)
	}
	if len(cfg.Clients) != 1 || !strings.HasSuffix(cfg.Clients[0].URL, "/loki/api/v1/push") {
		t.Errorf("clients %+v: want one, pushing to Loki", cfg.Clients)
	}

	// In the compose stack, Promtail reads the host's journal and keeps its
	// positions on a volume.
	services := composeServices(t, composeStacks[0].files)
	mounts := services["promtail"].mounts()
	if mounts[sc.Journal.Path] != sc.Journal.Path {
		t.Errorf("compose mounts %q at the journal path %s", mounts[sc.Journal.Path], sc.Journal.Path)
	}
	if source := mounts[filepath.Dir(cfg.Positions.Filename)]; source == "" || filepath.IsAbs(source) {
		t.Errorf("positions %s are not on a volume: %v", cfg.Positions.Filename, mounts)
	}

	// The journal entries of the exporter, from the systemd unit that
	// deploy/systemd installs (systemd names the entries after the binary)
	// and from the compose stack's container, are kept; others are not.
	unit, err := os.ReadFile("systemd/camera_exporter.service")
	if err != nil {
		t.Fatal(err)
	}
	execStart := regexp.MustCompile(`(?m)^ExecStart=(\S+)`).FindSubmatch(unit)
	if execStart == nil {
		t.Fatal("camera_exporter.service has no ExecStart")
	}
	exporter := services["exporter"]
	if exporter.Logging.Driver != "journald" {
		t.Errorf("the compose exporter logs to %q, not to the journal", exporter.Logging.Driver)
	}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		want   map[string]string // nil: dropped
	}{
		{
			"systemd",
			map[string]string{"__journal__systemd_unit": "camera_exporter.service", "__journal_syslog_identifier": filepath.Base(string(execStart[1])), "__journal__hostname": "edge-box-1"},
			map[string]string{"unit": "camera_exporter.service", "host": "edge-box-1"},
		},
		{
			"compose",
			map[string]string{"__journal__systemd_unit": "docker.service", "__journal_syslog_identifier": exporter.Logging.Options["tag"], "__journal__hostname": "edge-box-1", "__journal_container_name": "compose_exporter_1"},
			map[string]string{"unit": "docker.service", "host": "edge-box-1", "container": "compose_exporter_1"},
		},
		{
			"other",
			map[string]string{"__journal__systemd_unit": "ssh.service", "__journal_syslog_identifier": "sshd", "__journal__hostname": "edge-box-1"},
			nil,
		},
	} {
		labels, kept := promtailRelabelApply(t, sc.RelabelConfigs, tc.fields)
		if kept != (tc.want != nil) {
			t.Errorf("%s: kept %t, want %t", tc.name, kept, tc.want != nil)
			continue
		}
		for k, v := range tc.want {
			if labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", tc.name, k, labels[k], v)
			}
		}
	}

	// The pipeline on what the exporter really logs.
	line := promtailExporterLine(t, "gate-north")
	labels, kept := promtailPipelineRun(t, sc.PipelineStages, line)
	if want := map[string]string{"camera": "gate-north", "level": "warn"}; !kept || !reflect.DeepEqual(labels, want) {
		t.Errorf("%s\nkept %t with labels %v, want kept with %v", line, kept, labels, want)
	}
	debug := strings.Replace(line, " level=WARN ", " level=DEBUG ", 1)
	if _, kept := promtailPipelineRun(t, sc.PipelineStages, debug); debug == line || kept {
		t.Errorf("%s\nkept, want dropped", debug)
	}
	// Lines that are not logfmt, such as a Go panic's, are shipped as they
	// are.
	if labels, kept := promtailPipelineRun(t, sc.PipelineStages, "panic: runtime error: index out of range [3] with length 3"); !kept || len(labels) != 0 {
		t.Errorf("a panic: kept %t with labels %v, want kept without", kept, labels)
	}
}
