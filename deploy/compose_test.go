package deploy_test

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/camera-exporter/camera_exporter/config"
)

// There is no Docker engine to build the images or run the compose stack
// on, so these tests check what can be checked without one: that the
// runtime image installs the libraries a fresh build links, that
// docker-compose accepts the stack and that its parts fit together, and
// that the Loki and Promtail configurations do what they are meant to.

// The compose stacks: the CPU one, and the same with the CUDA override.
var composeStacks = []struct {
	name       string
	files      []string
	dockerfile string // the exporter's, relative to the repository root
	backend    string // the detector's in the exporter's configuration
	gpu        bool
}{
	{"cpu", []string{"compose/docker-compose.yml"}, "deploy/Dockerfile", "cpu", false},
	{"cuda", []string{"compose/docker-compose.yml", "compose/docker-compose.cuda.yml"}, "deploy/cuda/Dockerfile", "cuda", true},
}

// Where the exporter's container finds its configuration and its models.
const (
	composeExporterConfig = "/etc/camera_exporter/exporter.yml"
	composeModels         = "/var/lib/camera_exporter/models"
)

// composeService is what the tests read of a service in the output of
// docker-compose config: the override merged in, variables expanded,
// relative paths made absolute.
type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command []string `yaml:"command"`
	Volumes []string `yaml:"volumes"`
	Logging struct {
		Driver  string            `yaml:"driver"`
		Options map[string]string `yaml:"options"`
	} `yaml:"logging"`
	Deploy struct {
		Resources struct {
			Reservations struct {
				Devices []struct {
					Capabilities []string `yaml:"capabilities"`
				} `yaml:"devices"`
			} `yaml:"reservations"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

// mounts returns the service's volumes, source (a host path or a volume
// name) by target.
func (s composeService) mounts() map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

// composeRun runs docker-compose on files and returns its standard output.
func composeRun(t *testing.T, files []string, args ...string) []byte {
	t.Helper()
	var cmdArgs []string
	for _, f := range files {
		cmdArgs = append(cmdArgs, "-f", f)
	}
	cmd := exec.Command("docker-compose", append(cmdArgs, args...)...)
	// MODELS_DIR would move the models out of the repository.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "MODELS_DIR=") })
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr.Bytes())
	}
	return out
}

// composeServices returns the services of the stack made of files, as
// docker-compose reads them.
func composeServices(t *testing.T, files []string) map[string]composeService {
	t.Helper()
	var project struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(composeRun(t, files, "config"), &project); err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	return project.Services
}

// composeReadYAML decodes the YAML file at path into v.
func composeReadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// composeServiceHost checks that the host of addr, a host:port or a URL, is
// a service of the stack, that is a name the stack's DNS resolves.
func composeServiceHost(t *testing.T, services map[string]composeService, what, addr string) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		u, err := url.Parse(addr)
		if err != nil {
			t.Errorf("%s %s: %v", what, addr, err)
			return
		}
		host = u.Hostname()
	}
	if _, ok := services[host]; !ok {
		t.Errorf("%s %s: %q is not a service of the stack", what, addr, host)
	}
}

// TestComposeConfig runs docker-compose's own validation, then checks that
// images are pinned, that what the stack builds and mounts from the
// repository is there, and which Dockerfile and GPU the exporter gets.
func TestComposeConfig(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, stack := range composeStacks {
		t.Run(stack.name, func(t *testing.T) {
			composeRun(t, stack.files, "config", "-q")
			services := composeServices(t, stack.files)
			for name, s := range services {
				if s.Build.Context != "" {
					if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
						t.Errorf("service %s: %v", name, err)
					}
				} else if i := strings.LastIndex(s.Image, ":"); i < strings.LastIndex(s.Image, "/")+1 || s.Image[i+1:] == "latest" {
					t.Errorf("service %s: image %q has no pinned tag", name, s.Image)
				}
				for target, source := range s.mounts() {
					rel, _ := filepath.Rel(root, source)
					switch {
					case !filepath.IsAbs(source): // a named volume
					case rel == ".." || strings.HasPrefix(rel, "../"): // the host's, such as the journal
					case rel == "models": // made by make models
					default:
						if _, err := os.Stat(source); err != nil {
							t.Errorf("service %s mounts %s at %s: %v", name, rel, target, err)
						}
					}
				}
			}

			exporter := services["exporter"]
			if exporter.Build.Context != root || exporter.Build.Dockerfile != stack.dockerfile {
				t.Errorf("exporter builds %s from %s, want %s from %s", exporter.Build.Dockerfile, exporter.Build.Context, stack.dockerfile, root)
			}
			var gpu bool
			for _, d := range exporter.Deploy.Resources.Reservations.Devices {
				gpu = gpu || slices.Contains(d.Capabilities, "gpu")
			}
			if gpu != stack.gpu {
				t.Errorf("exporter reserves a GPU: %t, want %t", gpu, stack.gpu)
			}
		})
	}
}

// TestComposeExporterConfig loads the exporter's configuration of each
// stack as the container would, with the models make models fetches, and
// checks that its cameras are the stack's test cameras.
func TestComposeExporterConfig(t *testing.T) {
	models, err := filepath.Abs("../../shared/models")
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]*config.Config{}
	for _, stack := range composeStacks {
		services := composeServices(t, stack.files)
		mounts := services["exporter"].mounts()
		if _, ok := mounts[composeModels]; !ok {
			t.Fatalf("%s: the exporter has no models at %s", stack.name, composeModels)
		}
		b, err := os.ReadFile(mounts[composeExporterConfig])
		if err != nil {
			t.Fatalf("%s: the exporter's configuration: %v", stack.name, err)
		}
		path := filepath.Join(t.TempDir(), "exporter.yml")
		if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte(composeModels+"/"), []byte(models+"/")), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", stack.name, err)
		}
		configs[stack.name] = cfg
		if cfg.Detector == nil || cfg.Detector.Backend != stack.backend {
			t.Errorf("%s: detector %+v, want backend %s", stack.name, cfg.Detector, stack.backend)
		}

		published := map[string]bool{}
		for _, s := range services {
			for _, arg := range s.Command {
				if strings.HasPrefix(arg, "rtsp://") {
					published[arg] = true
				}
			}
		}
		if len(cfg.Cameras) == 0 {
			t.Errorf("%s: no cameras", stack.name)
		}
		for _, c := range cfg.Cameras {
			if !published[c.URL] {
				t.Errorf("%s: camera %s: no service publishes %s", stack.name, c.Name, c.URL)
			}
			composeServiceHost(t, services, "camera "+c.Name, c.URL)
		}
	}

	// The CUDA stack's configuration is a copy that only moves the detector.
	cuda := *configs["cuda"]
	detector := *cuda.Detector
	detector.Backend = configs["cpu"].Detector.Backend
	cuda.Detector = &detector
	if !reflect.DeepEqual(&cuda, configs["cpu"]) {
		t.Errorf("the CUDA stack's exporter configuration differs from the CPU one's in more than the backend")
	}
}

// TestComposePrometheus checks Prometheus' configuration in the files
// layout its container sees, rule files included, and that it scrapes the
// stack's exporter and alerts through the stack's Alertmanager.
func TestComposePrometheus(t *testing.T) {
	services := composeServices(t, composeStacks[0].files)
	dir := t.TempDir()
	for target, source := range services["prometheus"].mounts() {
		rel, ok := strings.CutPrefix(target, "/etc/prometheus/")
		if ok && filepath.IsAbs(source) {
			if err := os.Symlink(source, filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "prometheus.yml")
	if out, err := exec.Command("promtool", "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}

	type staticConfig struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []staticConfig `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string         `yaml:"job_name"`
			StaticConfigs []staticConfig `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	composeReadYAML(t, path, &cfg)
	var rules []string
	for _, pattern := range cfg.RuleFiles {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		rules = append(rules, m...)
	}
	if len(rules) == 0 {
		t.Errorf("rule_files %v: no rule file in the container", cfg.RuleFiles)
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			for _, target := range sc.Targets {
				composeServiceHost(t, services, "alertmanager", target)
			}
		}
	}
	var exporters int
	for _, job := range cfg.ScrapeConfigs {
		for _, sc := range job.StaticConfigs {
			for _, target := range sc.Targets {
				composeServiceHost(t, services, "job "+job.JobName+" target", target)
				if job.JobName != "camera" {
					continue
				}
				exporters++
				// The rules and the dashboard group by these.
				if sc.Labels["site"] == "" || sc.Labels["box"] == "" {
					t.Errorf("job camera target %s: labels %v, want site and box", target, sc.Labels)
				}
			}
		}
	}
	if exporters == 0 {
		t.Errorf("no job camera scrapes the exporter")
	}
}

// TestComposeGrafana checks that Grafana's provisioned dashboards are in
// folders its container has, and that its data sources are the stack's.
func TestComposeGrafana(t *testing.T) {
	services := composeServices(t, composeStacks[0].files)
	mounts := services["grafana"].mounts()
	provisioning := mounts["/etc/grafana/provisioning"]
	if provisioning == "" {
		t.Fatal("grafana has no /etc/grafana/provisioning")
	}

	providers, _ := filepath.Glob(filepath.Join(provisioning, "dashboards", "*.yml"))
	if len(providers) == 0 {
		t.Errorf("no dashboard providers in %s/dashboards", provisioning)
	}
	for _, p := range providers {
		var cfg struct {
			Providers []struct {
				Name    string `yaml:"name"`
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		composeReadYAML(t, p, &cfg)
		for _, provider := range cfg.Providers {
			var dashboards []string
			for target, source := range mounts {
				if rel, err := filepath.Rel(target, provider.Options.Path); err == nil && filepath.IsAbs(source) && !strings.HasPrefix(rel, "..") {
					found, _ := filepath.Glob(filepath.Join(source, rel, "*.json"))
					dashboards = append(dashboards, found...)
				}
			}
			if len(dashboards) == 0 {
				t.Errorf("%s: provider %s: no dashboards mounted at %s", p, provider.Name, provider.Options.Path)
			}
		}
	}

	datasources, _ := filepath.Glob(filepath.Join(provisioning, "datasources", "*.yml"))
	if len(datasources) == 0 {
		t.Errorf("no data sources in %s/datasources", provisioning)
	}
	for _, p := range datasources {
		var cfg struct {
			Datasources []struct {
				Name string `yaml:"name"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		composeReadYAML(t, p, &cfg)
		for _, ds := range cfg.Datasources {
			composeServiceHost(t, services, "data source "+ds.Name, ds.URL)
		}
	}
}

// TestLokiConfig checks what Loki would refuse at start or get wrong
// silently: retention without a delete request store, data outside the
// volume, an old index.
func TestLokiConfig(t *testing.T) {
	var cfg struct {
		Common struct {
			PathPrefix string `yaml:"path_prefix"`
			Storage    struct {
				Filesystem map[string]string `yaml:"filesystem"`
			} `yaml:"storage"`
		} `yaml:"common"`
		SchemaConfig struct {
			Configs []struct {
				From        string `yaml:"from"`
				Store       string `yaml:"store"`
				ObjectStore string `yaml:"object_store"`
				Schema      string `yaml:"schema"`
			} `yaml:"configs"`
		} `yaml:"schema_config"`
		LimitsConfig struct {
			RetentionPeriod string `yaml:"retention_period"`
		} `yaml:"limits_config"`
		Compactor struct {
			WorkingDirectory   string `yaml:"working_directory"`
			RetentionEnabled   bool   `yaml:"retention_enabled"`
			DeleteRequestStore string `yaml:"delete_request_store"`
		} `yaml:"compactor"`
	}
	composeReadYAML(t, "loki/loki.yml", &cfg)

	periods := cfg.SchemaConfig.Configs
	if len(periods) == 0 {
		t.Fatal("no schema_config")
	}
	// The last period is the one Loki writes now.
	if p := periods[len(periods)-1]; p.Store != "tsdb" || p.Schema != "v13" || p.ObjectStore != "filesystem" {
		t.Errorf("schema from %s: %s/%s on %s, want tsdb/v13 on filesystem", p.From, p.Store, p.Schema, p.ObjectStore)
	}
	if d, err := model.ParseDuration(cfg.LimitsConfig.RetentionPeriod); err != nil || d == 0 {
		t.Errorf("retention_period %q: want a duration above 0 (%v)", cfg.LimitsConfig.RetentionPeriod, err)
	}
	if !cfg.Compactor.RetentionEnabled || cfg.Compactor.DeleteRequestStore == "" {
		t.Errorf("compactor: retention_enabled %t, delete_request_store %q: retention needs both", cfg.Compactor.RetentionEnabled, cfg.Compactor.DeleteRequestStore)
	}

	loki := composeServices(t, composeStacks[0].files)["loki"]
	mounts := loki.mounts()
	if source := mounts[cfg.Common.PathPrefix]; source == "" || filepath.IsAbs(source) {
		t.Errorf("path_prefix %s is not on a volume of the loki service: %v", cfg.Common.PathPrefix, mounts)
	}
	dirs := []string{cfg.Compactor.WorkingDirectory}
	for _, dir := range cfg.Common.Storage.Filesystem {
		dirs = append(dirs, dir)
	}
	for _, dir := range dirs {
		if !strings.HasPrefix(dir, cfg.Common.PathPrefix+"/") {
			t.Errorf("%s is outside path_prefix %s, on the container's own disk", dir, cfg.Common.PathPrefix)
		}
	}
	file, _ := strings.CutPrefix(strings.Join(loki.Command, " "), "-config.file=")
	if !strings.HasSuffix(mounts[file], "/deploy/loki/loki.yml") {
		t.Errorf("loki %v reads %s, which is not deploy/loki/loki.yml", loki.Command, file)
	}
}
