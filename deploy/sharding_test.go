package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// shardingCamera is a camera of TestProbeSharding's inventory.
type shardingCamera struct {
	path   string // on the test server, for Sessions and Teardowns
	label  string // __param_camera, the camera label
	box    string
	auth   string // __param_auth, if not the job's
	shard  string // __shard, if pinned
	target string // host:port/path, filled in by the test
}

// TestProbeSharding runs deploy/prometheus/probe.yml for real, on loopback:
// two exporter replicas probe test cameras for an HA pair of Prometheus
// servers, which shard the cameras over the replicas with hashmod. Each
// camera has one RTSP session however many servers probe it, a target
// outside the module's allowed_targets is never connected to, a camera
// taken out of the inventory loses its session once the idle timeout has
// passed, and one moved to the other replica keeps its series.
func TestProbeSharding(t *testing.T) {
	dir := t.TempDir()
	gray := stackClip(t, "color=c=0x808080:s=160x120:r=5")
	dark := stackClip(t, "color=c=0x080808:s=160x120:r=5")
	const user, pass = "viewer", "s3cret"
	cams := []*shardingCamera{
		{path: "ch101", label: "gate-north", box: "gate"},
		{path: "ch102", label: "gate-south", box: "gate"},
		{path: "ch201", label: "hall-east", box: "hall", auth: "hall"},
		{path: "ch202", label: "hall-west", box: "hall"},
		// The pins make sure that both replicas have cameras, whatever the
		// others' addresses hash to.
		{path: "ch301", label: "yard-1", box: "yard", shard: "0"},
		{path: "ch302", label: "yard-2", box: "yard", shard: "1"},
	}
	clips := map[string]*rtsptest.Media{}
	for _, c := range cams {
		clips[c.path] = gray
	}
	clips["ch202"], clips["ch302"] = dark, dark
	cameras, err := rtsptest.Start(rtsptest.Options{User: user, Pass: pass}, clips)
	if err != nil {
		t.Fatal(err)
	}
	defer cameras.Close()
	for _, c := range cams {
		c.target = strings.TrimPrefix(cameras.URL(c.path), "rtsp://")
	}

	// Targets the module does not allow: a name, though it leads to an
	// allowed address, and another loopback address. Both listen, to see
	// that nothing connects.
	var disallowed []string
	var accepts atomic.Int64
	for _, l := range []struct{ listen, host string }{{"127.0.0.1:0", "localhost"}, {"127.0.0.2:0", "127.0.0.2"}} {
		ln, err := net.Listen("tcp", l.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepts.Add(1)
				c.Close()
			}
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		disallowed = append(disallowed, net.JoinHostPort(l.host, port)+"/x")
	}

	replicas := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	for i, addr := range replicas {
		shardingStartReplica(t, filepath.Join(dir, fmt.Sprint("replica-", i)), addr, user, pass)
	}
	inventory := filepath.Join(dir, "targets", "cameras.yml")
	if err := os.MkdirAll(filepath.Dir(inventory), 0o700); err != nil {
		t.Fatal(err)
	}
	shardingWriteInventory(t, inventory, cams, disallowed)
	var proms []*stackAPI
	for i := range 2 {
		addr := testutil.FreeAddr(t)
		shardingStartPrometheus(t, filepath.Join(dir, fmt.Sprint("prometheus-", i)), addr, inventory, replicas)
		proms = append(proms, &stackAPI{t: t, base: "http://" + addr})
	}

	t.Run("every camera probed, with its inventory labels", func(t *testing.T) {
		for i, prom := range proms {
			stackWait(t, fmt.Sprintf("Prometheus %d: every camera up and probed", i), func() bool {
				return shardingAllUp(prom, cams)
			})
			for _, s := range shardingSeries(prom, `camera_up{job="camera_probe"}`) {
				c := shardingFind(cams, func(c *shardingCamera) bool { return c.target == s["instance"] })
				if c == nil {
					t.Errorf("Prometheus %d: camera_up series %v of no camera of the inventory", i, s)
					continue
				}
				want := map[string]string{
					"__name__": "camera_up", "job": "camera_probe", "instance": c.target,
					"camera": c.label, "site": "site-test", "box": c.box,
				}
				if !shardingEqualLabels(s, want) {
					t.Errorf("Prometheus %d: camera_up series %v, want the labels %v", i, s, want)
				}
			}
		}
		// The pictures are analyzed: the dark cameras read dark, the others
		// do not.
		stackWait(t, "the dark cameras, and only they, dark", func() bool {
			var dark []string
			for _, s := range shardingSeries(proms[0], `camera_frame_brightness_ratio{job="camera_probe"} < 0.1`) {
				dark = append(dark, s["camera"])
			}
			slices.Sort(dark)
			return slices.Equal(dark, []string{"hall-west", "yard-2"}) &&
				len(proms[0].query(`camera_frame_brightness_ratio{job="camera_probe"} > 0.4`)) == len(cams)-2
		})
	})

	t.Run("one session per camera, cameras split over the replicas", func(t *testing.T) {
		// Both Prometheus servers probe every camera by now: a second
		// session would have opened at the second server's first probe.
		for _, c := range cams {
			if n := cameras.Sessions(c.path); n != 1 {
				t.Errorf("camera %s: %d RTSP sessions, want 1", c.label, n)
			}
		}
		shardingCheckSplit(t, proms, cams, replicas)
	})

	t.Run("targets outside allowed_targets are never connected to", func(t *testing.T) {
		for _, target := range disallowed {
			for _, addr := range replicas {
				u := "http://" + addr + "/probe?" + url.Values{"target": {target}, "module": {"site"}}.Encode()
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "allowed_targets") {
					t.Errorf("GET %s: %s %.200s, want 400 naming allowed_targets", u, resp.Status, body)
				}
			}
		}
		// In the inventory too, as a mistake would put them: both
		// Prometheus servers see them down.
		for i, prom := range proms {
			stackWait(t, fmt.Sprintf("Prometheus %d: the disallowed targets down", i), func() bool {
				down := 0
				for _, s := range shardingSeries(prom, `up{job="camera_probe"} == 0`) {
					if slices.Contains(disallowed, s["instance"]) {
						down++
					}
				}
				return down == len(disallowed)
			})
		}
		rejected := 0.0
		for _, addr := range replicas {
			rejected += shardingMetric(t, addr, "camera_exporter_probes_total", map[string]string{"result": "rejected"})
		}
		if want := float64(len(disallowed) * len(replicas)); rejected <= want {
			t.Errorf("%v probes rejected, want more than the %v direct ones", rejected, want)
		}
		if n := accepts.Load(); n != 0 {
			t.Errorf("%d connections to disallowed targets", n)
		}
	})

	t.Run("a camera out of the inventory loses its session, a moved one moves", func(t *testing.T) {
		// Both hashed; the pinned cameras keep a camera on each replica.
		removed, moved := cams[1], cams[0]
		query := fmt.Sprintf(`camera_up{camera=%q}`, moved.label)
		before := shardingSeries(proms[0], query)
		// Pinned to the shard of the other replica.
		from := slices.Index(replicas, shardingReplicaOf(t, proms, cams, replicas)[moved.label])
		moved.shard = fmt.Sprint(1 - from)
		kept := slices.DeleteFunc(slices.Clone(cams), func(c *shardingCamera) bool { return c == removed })
		shardingWriteInventory(t, inventory, kept, disallowed)
		// The moved camera's first probe at its new replica opens a second
		// session; its old replica closes the first when no probe came for
		// the idle timeout, as a removed camera's.
		stackWait(t, "the removed camera's session torn down, and the moved camera's old one", func() bool {
			return cameras.Teardowns(removed.path) == 1 && cameras.Sessions(removed.path) == 0 &&
				cameras.Teardowns(moved.path) == 1 && cameras.Sessions(moved.path) == 1
		})
		for _, c := range kept {
			if c == moved {
				continue
			}
			if n, down := cameras.Sessions(c.path), cameras.Teardowns(c.path); n != 1 || down != 0 {
				t.Errorf("camera %s: %d sessions and %d teardowns, want 1 and 0", c.label, n, down)
			}
		}
		idle := 0.0
		for _, addr := range replicas {
			idle += shardingMetric(t, addr, "camera_exporter_probe_sessions_closed_total", map[string]string{"reason": "idle"})
		}
		if idle != 2 {
			t.Errorf("replicas closed %v idle sessions, want 2", idle)
		}
		shardingCheckSplit(t, proms, kept, replicas)
		for i, prom := range proms {
			stackWait(t, fmt.Sprintf("Prometheus %d: the removed camera's series gone, every other camera up", i), func() bool {
				return len(prom.query(fmt.Sprintf(`probe_success{instance=%q}`, removed.target))) == 0 && shardingAllUp(prom, kept)
			})
			// Which replica probes a camera is no label of its series: the
			// moved camera kept its series.
			if after := shardingSeries(prom, fmt.Sprintf("count_over_time(%s[1m])", query)); len(after) != 1 || len(before) != 1 ||
				!shardingEqualLabels(after[0], shardingWithout(before[0], "__name__")) {
				t.Errorf("Prometheus %d: the moved camera's series %v in the last minute, want its series before the move, %v", i, after, before)
			}
		}
		if n := accepts.Load(); n != 0 {
			t.Errorf("%d connections to disallowed targets", n)
		}
	})
}

// TestProbeShardingInventory checks the shipped camera inventory of
// probe.yml: one camera per target group, since __param_camera names one,
// a valid camera label, the site and box that the alerts and
// Alertmanager need, and no credentials in a target.
func TestProbeShardingInventory(t *testing.T) {
	files := promtoolGlob(t, "targets/cameras/*.yml")
	validName := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(promtoolDir, file))
		if err != nil {
			t.Fatal(err)
		}
		var groups []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		}
		if err := yaml.Unmarshal(b, &groups); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(groups) == 0 {
			t.Errorf("%s: no cameras", file)
		}
		for _, g := range groups {
			if len(g.Targets) != 1 {
				t.Errorf("%s: group %v has %d targets, want one camera", file, g.Targets, len(g.Targets))
			}
			for _, target := range g.Targets {
				if strings.Contains(target, "@") || strings.Contains(target, "://") {
					t.Errorf("%s: target %q: want host:port/path, without rtsp:// and credentials", file, target)
				}
			}
			if !validName.MatchString(g.Labels["__param_camera"]) {
				t.Errorf("%s: %v: __param_camera %q, want a camera name", file, g.Targets, g.Labels["__param_camera"])
			}
			for _, l := range []string{"site", "box"} {
				if g.Labels[l] == "" {
					t.Errorf("%s: %v: no %s label", file, g.Targets, l)
				}
			}
			if _, ok := g.Labels["camera"]; ok {
				t.Errorf("%s: %v: a camera label would clash with the probe's; use __param_camera", file, g.Targets)
			}
			if s, ok := g.Labels["__shard"]; ok && s != "0" && s != "1" {
				t.Errorf("%s: %v: __shard %q, want one that probe.yml maps to a replica", file, g.Targets, s)
			}
		}
	}
}

// TestProbeShardingConfig checks that probe.yml's parts agree: it loads
// every rule file, its hashmod has a replica for each shard, and the
// camera_exporter job scrapes those replicas.
func TestProbeShardingConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(promtoolDir, "probe.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type relabel struct {
		SourceLabels []string `yaml:"source_labels"`
		TargetLabel  string   `yaml:"target_label"`
		Regex        string   `yaml:"regex"`
		Replacement  string   `yaml:"replacement"`
		Modulus      int      `yaml:"modulus"`
		Action       string   `yaml:"action"`
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string              `yaml:"job_name"`
			MetricsPath   string              `yaml:"metrics_path"`
			Params        map[string][]string `yaml:"params"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			RelabelConfigs []relabel `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	slices.Sort(cfg.RuleFiles)
	if files := promtoolGlob(t, "rules/*.yml"); !slices.Equal(cfg.RuleFiles, files) {
		t.Errorf("probe.yml rule_files = %q, want the files in rules/: %q", cfg.RuleFiles, files)
	}
	var modulus int
	var shards, replicas, scraped []string
	for _, job := range cfg.ScrapeConfigs {
		switch job.JobName {
		case "camera_probe":
			if job.MetricsPath != "/probe" || len(job.Params["module"]) != 1 {
				t.Errorf("camera_probe: metrics_path %q, module %q: want /probe and one module", job.MetricsPath, job.Params["module"])
			}
			for _, r := range job.RelabelConfigs {
				switch {
				case r.Action == "hashmod":
					modulus = r.Modulus
				case slices.Equal(r.SourceLabels, []string{"__tmp_shard"}) && r.TargetLabel == "__address__":
					shards = append(shards, r.Regex)
					replicas = append(replicas, r.Replacement)
				}
			}
		case "camera_exporter":
			for _, sc := range job.StaticConfigs {
				scraped = append(scraped, sc.Targets...)
			}
		}
	}
	var want []string
	for i := range modulus {
		want = append(want, fmt.Sprint(i))
	}
	if modulus == 0 || !slices.Equal(shards, want) {
		t.Errorf("camera_probe: hashmod modulus %d, rules for shards %q: want one rule per shard, %q", modulus, shards, want)
	}
	if !slices.Equal(replicas, scraped) {
		t.Errorf("camera_probe's shards go to %q, the camera_exporter job scrapes %q: want the same replicas", replicas, scraped)
	}
}

// shardingStartReplica starts an exporter with no camera of its own, whose
// module site may probe 127.0.0.1.
func shardingStartReplica(t *testing.T, dir, addr, user, pass string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	passwordFile := filepath.Join(dir, "hall.password")
	if err := os.WriteFile(passwordFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`modules:
  site:
    allowed_targets: [127.0.0.1]
    timeout: 2s
auths:
  cameras:
    modules: [site]
    username: %[1]s
    password: %[2]s
  hall:
    modules: [site]
    username: %[1]s
    password_file: %[3]s
`, user, pass, passwordFile)
	cfgPath := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stackRun(t, dir, exporterBinary(t), "--config.file="+cfgPath, "--web.listen-address="+addr,
		"--probe.session-idle-timeout=3s", "--collector.image.min-interval=0s",
		// 500 ms scrapes: keep most of them for the first picture and the analysis.
		"--web.timeout-offset=0.05")
	stackWait(t, "the replica at "+addr, func() bool { return stackGet("http://"+addr+"/-/healthy") == nil })
}

// shardingStartPrometheus starts a Prometheus with deploy/prometheus/probe.yml,
// test-sized: 500 ms scrapes, the replicas at replicas, the inventory at
// inventory, the rules loaded from deploy/prometheus/rules and no
// Alertmanager.
func shardingStartPrometheus(t *testing.T, dir, addr, inventory string, replicas []string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	stackRewriteYAML(t, "prometheus/probe.yml", cfgPath, func(doc *yaml.Node) {
		root := doc.Content[0]
		stackDelete(root, "alerting")
		for _, f := range stackNodes(doc, "rule_files", "*") {
			abs, err := filepath.Abs(filepath.Join("prometheus", f.Value))
			if err != nil {
				t.Fatal(err)
			}
			f.Value = abs
		}
		jobs := map[string]*yaml.Node{}
		for _, job := range stackNodes(doc, "scrape_configs", "*") {
			jobs[stackMapValue(job, "job_name").Value] = job
			stackSet(t, job, "scrape_interval", "500ms")
			stackSet(t, job, "scrape_timeout", "500ms")
		}
		probe := jobs["camera_probe"]
		if probe == nil || jobs["camera_exporter"] == nil {
			t.Fatalf("probe.yml: jobs %v, want camera_probe and camera_exporter", slices.Collect(maps.Keys(jobs)))
		}
		files := stackNodes(probe, "file_sd_configs", "*", "files")
		if len(files) != 1 {
			t.Fatalf("probe.yml: camera_probe has %d file_sd_configs, want 1", len(files))
		}
		files[0].Content = []*yaml.Node{{Kind: yaml.ScalarNode, Value: inventory}}
		// The replicas' auth block for the cameras that name none.
		params := stackMapValue(probe, "params")
		params.Content = append(params.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "auth"},
			&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "cameras"}}})
		// The replicas' addresses, in the shards' rules and the replicas'
		// own job.
		for i, addr := range replicas {
			if n := shardingReplace(root, fmt.Sprintf("camera-exporter-%d:9845", i), addr); n != 2 {
				t.Fatalf("probe.yml names replica %d %d times, want 2: its shard's rule and the camera_exporter job", i, n)
			}
		}
	})
	stackRun(t, dir, "prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr)
	stackWait(t, "Prometheus at "+addr, func() bool { return stackGet("http://"+addr+"/-/ready") == nil })
}

// shardingWriteInventory writes the file_sd file of cams and the
// disallowed targets, whole: Prometheus never reads half of it.
func shardingWriteInventory(t *testing.T, path string, cams []*shardingCamera, disallowed []string) {
	t.Helper()
	var groups []any
	for _, c := range cams {
		labels := map[string]string{"__param_camera": c.label, "site": "site-test", "box": c.box}
		if c.auth != "" {
			labels["__param_auth"] = c.auth
		}
		if c.shard != "" {
			labels["__shard"] = c.shard
		}
		groups = append(groups, map[string]any{"targets": []string{c.target}, "labels": labels})
	}
	for i, target := range disallowed {
		groups = append(groups, map[string]any{"targets": []string{target},
			"labels": map[string]string{"__param_camera": fmt.Sprint("stray-", i), "site": "site-test", "box": "stray"}})
	}
	tmp := path + ".new"
	stackWriteYAML(t, tmp, groups)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// shardingAllUp reports whether prom has every camera of cams probed
// successfully and up, under its camera label.
func shardingAllUp(prom *stackAPI, cams []*shardingCamera) bool {
	succeeded := map[string]bool{}
	for _, s := range shardingSeries(prom, `probe_success{job="camera_probe"} == 1`) {
		succeeded[s["instance"]] = true
	}
	up := map[string]bool{}
	for _, s := range shardingSeries(prom, `camera_up{job="camera_probe"} == 1`) {
		up[s["instance"]+" "+s["camera"]] = true
	}
	for _, c := range cams {
		if !succeeded[c.target] || !up[c.target+" "+c.label] {
			return false
		}
	}
	return true
}

// shardingCheckSplit checks that the replicas have a session for each
// camera of cams that Prometheus sends them, and no other, so that they
// have len(cams) in all: each has some, and the cameras pinned to a shard
// are at its replica.
func shardingCheckSplit(t *testing.T, proms []*stackAPI, cams []*shardingCamera, replicas []string) {
	t.Helper()
	byReplica := shardingReplicaOf(t, proms, cams, replicas)
	for i, addr := range replicas {
		want := 0
		for _, c := range cams {
			if byReplica[c.label] == addr {
				want++
			}
		}
		if n := shardingMetric(t, addr, "camera_exporter_probe_sessions", nil); n == 0 || n != float64(want) {
			t.Errorf("replica %d: %v sessions, want %d, the cameras Prometheus sends it", i, n, want)
		}
	}
	for _, c := range cams {
		if c.shard == "" {
			continue
		}
		if want := replicas[shardingShard(t, c.shard)]; byReplica[c.label] != want {
			t.Errorf("camera %s pinned to shard %s is probed by %s, want %s", c.label, c.shard, byReplica[c.label], want)
		}
	}
}

// shardingReplicaOf returns the replica that each camera's probes go to,
// by camera label, from the Prometheus servers' targets, which must agree.
func shardingReplicaOf(t *testing.T, proms []*stackAPI, cams []*shardingCamera, replicas []string) map[string]string {
	t.Helper()
	byLabel := map[string]string{}
	for i, prom := range proms {
		var resp struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					ScrapeURL string            `json:"scrapeUrl"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		prom.get("/api/v1/targets?state=active", &resp)
		for _, tg := range resp.Data.ActiveTargets {
			c := shardingFind(cams, func(c *shardingCamera) bool { return c.target == tg.Labels["instance"] })
			if tg.Labels["job"] != "camera_probe" || c == nil {
				continue
			}
			u, err := url.Parse(tg.ScrapeURL)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(replicas, u.Host) {
				t.Errorf("Prometheus %d probes %s at %s, not a replica", i, c.label, tg.ScrapeURL)
			}
			if prev, ok := byLabel[c.label]; ok && prev != u.Host {
				t.Errorf("the Prometheus servers probe %s at different replicas, %s and %s", c.label, prev, u.Host)
			}
			byLabel[c.label] = u.Host
		}
	}
	if len(byLabel) != len(cams) {
		t.Fatalf("Prometheus probes %d cameras, want %d: %v", len(byLabel), len(cams), byLabel)
	}
	return byLabel
}

// shardingSeries returns the label sets of an instant query's series.
func shardingSeries(prom *stackAPI, q string) []map[string]string {
	var out []map[string]string
	for _, raw := range prom.query(q) {
		var s struct {
			Metric map[string]string `json:"metric"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			prom.t.Fatal(err)
		}
		out = append(out, s.Metric)
	}
	return out
}

// shardingMetric returns the value of the series of name with labels on
// the replica's /metrics, 0 without one.
func shardingMetric(t *testing.T, addr, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := families[name]
	if f == nil {
		t.Fatalf("replica %s: no %s", addr, name)
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if shardingEqualLabels(got, labels) {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func shardingShard(t *testing.T, shard string) int {
	t.Helper()
	n, err := strconv.Atoi(shard)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func shardingWithout(labels map[string]string, name string) map[string]string {
	out := maps.Clone(labels)
	delete(out, name)
	return out
}

func shardingEqualLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func shardingFind(cams []*shardingCamera, match func(*shardingCamera) bool) *shardingCamera {
	if i := slices.IndexFunc(cams, match); i >= 0 {
		return cams[i]
	}
	return nil
}

// shardingReplace replaces the scalars below n that are old with new, and
// returns how many it replaced.
func shardingReplace(n *yaml.Node, old, new string) int {
	count := 0
	if n.Kind == yaml.ScalarNode && n.Value == old {
		n.Value = new
		count++
	}
	for _, c := range n.Content {
		count += shardingReplace(c, old, new)
	}
	return count
}
