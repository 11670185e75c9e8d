package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const alertmanagerConfig = "alertmanager/alertmanager.yml"

// alertmanagerRoutes documents where each alert goes: critical alerts page
// oncall, picture and detection alerts go to the site's people, the rest to
// the team. TestAlertmanagerRoutes checks each with amtool config routes test.
// alertname and severity come first: TestAlertmanagerRoutesCoverAlerts
// looks for them there.
var alertmanagerRoutes = []struct {
	labels   []string
	receiver string
}{
	{[]string{"alertname=CameraExporterDown", "severity=critical", "site=site-a", "box=edge-box-1"}, "oncall"},
	{[]string{"alertname=CameraBoxSilent", "severity=critical", "site=site-a", "box=edge-box-1"}, "oncall"},
	{[]string{"alertname=CameraProbeFailing", "severity=critical", "site=site-a", "box=site-a-gate", "instance=10.20.1.11:554/Streaming/Channels/101"}, "oncall"},
	{[]string{"alertname=CameraDown", "severity=critical", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "oncall"},
	{[]string{"alertname=CameraStalled", "severity=critical", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "oncall"},
	{[]string{"alertname=CameraFrozen", "severity=critical", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "oncall"},
	{[]string{"alertname=CameraTooDark", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraOverexposed", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraBrightnessShifted", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraLensBlurred", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraMoved", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraObstructed", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraNoDetections", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraDetectorSilent", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north", "class=person"}, "site-ops"},
	{[]string{"alertname=CameraDrifted", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "site-ops"},
	{[]string{"alertname=CameraAnalysisFailing", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "team-webhook"},
	{[]string{"alertname=CameraExporterCollectorFailing", "severity=warning", "site=site-a", "box=edge-box-1", "collector=image"}, "team-webhook"},
	{[]string{"alertname=CameraInferenceSlow", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "team-webhook"},
	{[]string{"alertname=CameraDecodeErrors", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "team-webhook"},
	{[]string{"alertname=CameraReconnectStorm", "severity=warning", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "team-webhook"},
	{[]string{"alertname=CameraDetectorOnCPU", "severity=warning", "site=site-a", "box=edge-box-1"}, "team-webhook"},
	// Severity comes first: a picture alert made critical pages.
	{[]string{"alertname=CameraTooDark", "severity=critical", "site=site-a", "box=edge-box-1", "camera=gate-north"}, "oncall"},
	// Anything else, from other rules sharing this Alertmanager.
	{[]string{"alertname=NodeFilesystemAlmostFull", "severity=warning", "instance=edge-box-1:9100"}, "team-webhook"},
}

// alertmanagerAmtool runs amtool and returns its standard output. A missing
// amtool or a failure fails the test with amtool's output.
func alertmanagerAmtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool (Debian package prometheus-alertmanager, installed by .ci/deps) is required: %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

func TestAlertmanagerConfig(t *testing.T) {
	out := alertmanagerAmtool(t, "check-config", alertmanagerConfig)
	// The configuration counts: a section dropped by mistake still parses.
	for _, want := range []string{"SUCCESS", "6 inhibit rules", "3 receivers"} {
		if !strings.Contains(out, want) {
			t.Errorf("amtool check-config: no %q in\n%s", want, out)
		}
	}
}

func TestAlertmanagerRoutes(t *testing.T) {
	for _, tc := range alertmanagerRoutes {
		t.Run(strings.Join(tc.labels, ","), func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerConfig,
				"--verify.receivers=" + tc.receiver}, tc.labels...)
			if got := strings.TrimSpace(alertmanagerAmtool(t, args...)); got != tc.receiver {
				t.Errorf("routed to %q, want %q", got, tc.receiver)
			}
		})
	}
}

// TestAlertmanagerRoutesCoverAlerts checks that the routing table above
// covers every alert of the rule file, with the severity the rule gives it.
func TestAlertmanagerRoutesCoverAlerts(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range alertmanagerRoutes {
		covered[strings.Join(tc.labels[:2], ",")] = true
	}
	for _, r := range promtoolRules(t, promtoolAlertsFile) {
		if key := "alertname=" + r.Alert + ",severity=" + r.Labels["severity"]; !covered[key] {
			t.Errorf("no route test for %s", key)
		}
	}
}

// alertmanagerAlert is an alert as Alertmanager's API v2 takes and returns
// it.
type alertmanagerAlert struct {
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Status      *struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status,omitempty"`
}

// TestAlertmanagerInhibition runs Alertmanager with the configuration, sends
// it alerts and checks which the inhibition rules hold back, and by which
// alert.
func TestAlertmanagerInhibition(t *testing.T) {
	box1 := map[string]string{"instance": "edge-box-1:9845", "site": "site-a", "box": "edge-box-1"}
	box2 := map[string]string{"instance": "edge-box-2:9845", "site": "site-a", "box": "edge-box-2"}
	// Targets without site and box labels.
	box3 := map[string]string{"instance": "edge-box-3:9845"}
	box4 := map[string]string{"instance": "edge-box-4:9845"}
	box5 := map[string]string{"instance": "edge-box-5:9845", "site": "site-b", "box": "edge-box-5"}
	box6 := map[string]string{"instance": "edge-box-6:9845", "site": "site-b", "box": "edge-box-6"}
	alert := func(target map[string]string, labels ...string) map[string]string {
		l := maps.Clone(target)
		l["job"] = "camera"
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = v
		}
		return l
	}
	exporterDown := alert(box1, "alertname=CameraExporterDown", "severity=critical")
	cameraDown := alert(box2, "alertname=CameraDown", "severity=critical", "camera=yard")
	stalled := alert(box2, "alertname=CameraStalled", "severity=critical", "camera=gate")
	frozen := alert(box2, "alertname=CameraFrozen", "severity=critical", "camera=lift")
	collectorFailing := alert(box5, "alertname=CameraExporterCollectorFailing", "severity=warning", "collector=image")
	detectionFailing := alert(box6, "alertname=CameraExporterCollectorFailing", "severity=warning", "collector=detection")
	moved := alert(box6, "alertname=CameraMoved", "severity=warning", "camera=crane")
	obstructed := alert(box6, "alertname=CameraObstructed", "severity=warning", "camera=pit")
	// The sources come first: Alertmanager's inhibitor takes the alerts in
	// the order they are posted, so once the later alerts show their
	// expected inhibitions, every source is known, and so is an alert
	// inhibited by mistake.
	cases := []alertmanagerInhibitionCase{
		{exporterDown, nil},
		{cameraDown, nil},
		{stalled, nil},
		{frozen, nil},
		{collectorFailing, nil},
		{detectionFailing, nil},
		{moved, nil},
		{obstructed, nil},
		// A stream without frames has no picture to freeze.
		{alert(box2, "alertname=CameraFrozen", "severity=critical", "camera=gate"), stalled},
		// Targets without site and box labels: as empty labels are equal,
		// only instance tells these boxes apart.
		{alert(box3, "alertname=CameraExporterDown", "severity=critical"), nil},
		{alert(box4, "alertname=CameraDecodeErrors", "severity=warning", "camera=yard"), nil},

		{alert(box1, "alertname=CameraTooDark", "severity=warning", "camera=gate-north"), exporterDown},
		{alert(box1, "alertname=CameraDetectorOnCPU", "severity=warning", "backend=opencv", "requested_backend=cuda"), exporterDown},
		{alert(box2, "alertname=CameraNoDetections", "severity=warning", "camera=yard"), cameraDown},
		{alert(box2, "alertname=CameraAnalysisFailing", "severity=warning", "camera=yard"), cameraDown},
		// Not among the alerts a dead stream explains, but a warning of a
		// camera with a critical alert.
		{alert(box2, "alertname=CameraReconnectStorm", "severity=warning", "camera=yard"), cameraDown},
		{alert(box2, "alertname=CameraInferenceSlow", "severity=warning", "camera=gate"), stalled},
		{alert(box2, "alertname=CameraOverexposed", "severity=warning", "camera=gate"), stalled},
		{alert(box2, "alertname=CameraLensBlurred", "severity=warning", "camera=yard"), cameraDown},
		{alert(box2, "alertname=CameraObstructed", "severity=warning", "camera=gate"), stalled},
		{alert(box1, "alertname=CameraDrifted", "severity=warning", "camera=gate-north"), exporterDown},
		// A frozen picture explains the picture, drift and detection alerts.
		{alert(box2, "alertname=CameraMoved", "severity=warning", "camera=lift"), frozen},
		{alert(box2, "alertname=CameraObstructed", "severity=warning", "camera=lift"), frozen},
		{alert(box2, "alertname=CameraDrifted", "severity=warning", "camera=lift"), frozen},
		{alert(box2, "alertname=CameraBrightnessShifted", "severity=warning", "camera=lift"), frozen},
		{alert(box2, "alertname=CameraDetectorSilent", "severity=warning", "camera=lift", "class=person"), frozen},
		{alert(box2, "alertname=CameraDetectorSilent", "severity=warning", "camera=yard", "class=person"), cameraDown},
		// A camera that moved or is blocked no longer sees where the
		// objects were.
		{alert(box6, "alertname=CameraDetectorSilent", "severity=warning", "camera=crane", "class=person"), moved},
		{alert(box6, "alertname=CameraDetectorSilent", "severity=warning", "camera=pit", "class=person"), obstructed},
		{alert(box6, "alertname=CameraDetectorSilent", "severity=warning", "camera=gate", "class=person"), nil},
		// An image collector that analyzes no camera explains each camera's
		// failing analyses.
		{alert(box5, "alertname=CameraAnalysisFailing", "severity=warning", "camera=gate"), collectorFailing},
		{alert(box6, "alertname=CameraAnalysisFailing", "severity=warning", "camera=gate"), detectionFailing},
		{alert(box4, "alertname=CameraAnalysisFailing", "severity=warning", "camera=gate"), nil},
		// Another camera of the same box.
		{alert(box2, "alertname=CameraTooDark", "severity=warning", "camera=crane"), nil},
	}

	url := alertmanagerStart(t)
	var post []alertmanagerAlert
	for _, c := range cases {
		post = append(post, alertmanagerAlert{Labels: c.alert})
	}
	body, err := json.Marshal(post)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}

	// Inhibition is evaluated as the API is asked; the source alerts reach
	// the inhibitor asynchronously, so ask until the answer is complete.
	var mismatches []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		mismatches = alertmanagerInhibitionMismatches(t, url, cases)
		if len(mismatches) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("inhibition:\n%s", strings.Join(mismatches, "\n"))
}

// alertmanagerInhibitionCase is an alert and the alert that should inhibit
// it, nil for none.
type alertmanagerInhibitionCase struct {
	alert, inhibitedBy map[string]string
}

// alertmanagerInhibitionMismatches compares the alerts' state in
// Alertmanager with the expected inhibitions.
func alertmanagerInhibitionMismatches(t *testing.T, url string, cases []alertmanagerInhibitionCase) []string {
	t.Helper()
	resp, err := http.Get(url + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []alertmanagerAlert
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	key := func(l map[string]string) string { return fmt.Sprint(l) }
	byLabels := map[string]alertmanagerAlert{}
	names := map[string]string{} // fingerprint → alert
	for _, a := range got {
		byLabels[key(a.Labels)] = a
		names[a.Fingerprint] = key(a.Labels)
	}
	var mismatches []string
	for _, c := range cases {
		a, ok := byLabels[key(c.alert)]
		if !ok || a.Status == nil {
			mismatches = append(mismatches, fmt.Sprintf("%v: not in Alertmanager", c.alert))
			continue
		}
		var by []string
		for _, fp := range a.Status.InhibitedBy {
			by = append(by, names[fp])
		}
		want := []string{}
		if c.inhibitedBy != nil {
			want = []string{key(c.inhibitedBy)}
		}
		if fmt.Sprint(by) != fmt.Sprint(want) {
			mismatches = append(mismatches, fmt.Sprintf("%v: inhibited by %v, want %v", c.alert, by, want))
		}
	}
	return mismatches
}

// alertmanagerStart runs Alertmanager with the configuration on a free
// loopback port until the test ends, and returns its URL.
func alertmanagerStart(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager") // Debian's name
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Fatalf("Alertmanager (Debian package prometheus-alertmanager, installed by .ci/deps) is required: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+alertmanagerConfig,
		"--storage.path="+t.TempDir(), "--web.listen-address=127.0.0.1:0", "--cluster.listen-address=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		log strings.Builder
	)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("Alertmanager's log:\n%s", log.String())
			mu.Unlock()
		}
	})

	// Alertmanager logs the port it was given.
	listening := regexp.MustCompile(`msg="Listening on" address=(\S+)`)
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			mu.Lock()
			log.WriteString(s.Text() + "\n")
			mu.Unlock()
			if m := listening.FindStringSubmatch(s.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		// Past a line too long for the scanner, keep the pipe drained so
		// that Alertmanager never blocks on its log.
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-done:
		t.Fatal("Alertmanager exited before it listened")
	case <-time.After(30 * time.Second):
		t.Fatal("Alertmanager did not listen within 30s")
	}
	return ""
}
