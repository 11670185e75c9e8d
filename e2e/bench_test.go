package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// benchMode is a way the exporter runs in BenchmarkExporter.
type benchMode struct {
	name   string
	config string   // the configuration's head, before the cameras
	args   []string // the exporter's flags
}

// benchModes are BenchmarkExporter's modes, in the order they run.
func benchModes(b *testing.B) []benchMode {
	return []benchMode{
		// The stream collector only: receiving and depacketizing.
		{"stream", "defaults:\n  decode: keyframe\n", []string{"--no-collector.image", "--no-collector.detection", "--no-collector.drift"}},
		{"keyframe", "defaults:\n  decode: keyframe\n", nil},
		{"keyframe+detect", testutil.DetectorBlock(b, "") + "defaults:\n  decode: keyframe\n", nil},
		{"all", "defaults:\n  decode: all\n", nil},
	}
}

// Decoding every frame of more cameras than this cannot keep up on 2
// cores: BenchmarkExporter skips mode all then, unless BENCH_MODES names it.
const benchMaxAllCameras = 8

// benchScrapeInterval is Prometheus' default scrape interval.
const benchScrapeInterval = 15 * time.Second

// BenchmarkExporter runs the exporter binary against BENCH_CAMERAS (default
// 4) 1080p25 H264 streams at about 4 Mb/s, replayed by an in-process RTSP
// server, in each of BENCH_MODES (default stream,keyframe,keyframe+detect,all),
// scraping every 15 s for BENCH_SECONDS (default 60). It prints one line per
// mode to stdout:
//
//	cameras=4 mode=keyframe cpu_s_per_camera_minute=0.450 core_share_per_camera=0.75% receive_cpu_s_per_camera_minute=0.210 scrape_p50=85ms scrape_max=120ms rss=171MiB peak_rss=180MiB rss_per_camera=42.8MiB lost=0 scrapes=4 server_core_share=12%
//
// The fields:
//
//   - cpu_s_per_camera_minute: the exporter process's user+system CPU
//     seconds over the scraping window, per camera and minute;
//   - core_share_per_camera: the same as a share of one core;
//   - receive_cpu_s_per_camera_minute: cpu_s_per_camera_minute of mode
//     stream in the same run (the receive cost, without images), "-" when
//     stream did not run before;
//   - scrape_p50, scrape_max: the median (the lower of the middle two) and
//     the longest of the window's scrapes of /metrics;
//   - rss: the exporter's resident set at the end (VmRSS); peak_rss: its
//     high-water mark (VmHWM); rss_per_camera: rss divided by the cameras,
//     the process's base included (mode stream's line shows what receiving
//     alone holds);
//   - lost: the RTP packets lost in the window, camera_rtp_packets_lost_total
//     summed over the cameras, at the end minus at the first scrape;
//   - scrapes: the scrapes in the window;
//   - server_core_share: the benchmark process's CPU (the RTSP server, the
//     scrapes) over the window, as a share of one core.
//
// With BENCH_PROFILE set to a file, the first mode's exporter serves
// /debug/pprof and a CPU profile of min(30 s, BENCH_SECONDS) from the start
// of the window is written there; its line ends with profile=<file>, as the
// profiling costs the exporter a little CPU.
func BenchmarkExporter(b *testing.B) {
	cameras := envInt("BENCH_CAMERAS", 4)
	seconds := envInt("BENCH_SECONDS", 60)
	profile := os.Getenv("BENCH_PROFILE")
	modes, err := selectModes(benchModes(b), os.Getenv("BENCH_MODES"), cameras)
	if err != nil {
		b.Fatal(err)
	}

	// Like a real camera: 1080p25 at 4 Mb/s, a key frame every 2 s.
	// testsrc2 moves every frame, so P-frames cost what a real scene's do.
	// Encoded once for the run, into its temporary directory; the server
	// packetizes it once for all the cameras.
	const frames = 250
	clip := rtsptest.Clip(b, rtsptest.H264, "testsrc2=s=1920x1080:r=25", frames,
		"-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50")
	var clipBytes int
	for _, au := range clip.AccessUnits {
		for _, nalu := range au {
			clipBytes += len(nalu)
		}
	}
	fmt.Printf("clip: 1920x1080 H264 25 fps, GOP 50, %.1f Mb/s; %d cameras, %d s of 15 s scrapes per mode\n",
		float64(clipBytes*8)/(float64(frames)/25)/1e6, cameras, seconds)

	clips := map[string]*rtsptest.Media{}
	for i := range cameras {
		clips[fmt.Sprintf("cam%d", i)] = clip
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, clips)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var cfg strings.Builder
	cfg.WriteString("cameras:\n")
	for i := range cameras {
		name := fmt.Sprintf("cam%d", i)
		fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n", name, srv.URL(name))
	}

	receive := "-"
	for i, mode := range modes {
		if mode.config == "" { // skipped
			fmt.Printf("cameras=%d mode=%s skipped: decoding every frame of more than %d cameras cannot keep up on 2 cores (BENCH_MODES=%s runs it)\n",
				cameras, mode.name, benchMaxAllCameras, mode.name)
			continue
		}
		profileTo := ""
		if i == 0 {
			profileTo = profile
		}
		b.Run("mode="+mode.name, func(b *testing.B) {
			for range b.N {
				r := benchRun(b, mode, cfg.String(), cameras, seconds, profileTo)
				if mode.name == "stream" {
					receive = fmt.Sprintf("%.3f", r.cpuPerCameraMinute)
				}
				line := fmt.Sprintf("cameras=%d mode=%s cpu_s_per_camera_minute=%.3f core_share_per_camera=%.2f%% receive_cpu_s_per_camera_minute=%s scrape_p50=%dms scrape_max=%dms rss=%.0fMiB peak_rss=%.0fMiB rss_per_camera=%.1fMiB lost=%d scrapes=%d server_core_share=%.0f%%",
					cameras, mode.name, r.cpuPerCameraMinute, r.cpuPerCameraMinute/60*100, receive,
					r.scrapeP50.Milliseconds(), r.scrapeMax.Milliseconds(),
					mib(r.rss), mib(r.peakRSS), mib(r.rss)/float64(cameras), r.lost, r.scrapes, r.serverCoreShare*100)
				if profileTo != "" {
					line += " profile=" + profileTo
				}
				fmt.Println(line)
				b.ReportMetric(r.cpuPerCameraMinute, "cpu-s/camera-min")
				b.ReportMetric(mib(r.peakRSS), "peak-rss-MiB")
				b.ReportMetric(mib(r.rss)/float64(cameras), "rss-MiB/camera")
				b.ReportMetric(float64(r.scrapeP50.Microseconds())/1000, "p50-ms/scrape")
				b.ReportMetric(float64(r.lost), "lost-packets")
			}
		})
	}
}

// selectModes picks the modes that list (comma-separated, all by default)
// names, in their order. Mode all, unless named, is kept with an empty
// config, to be reported skipped, for more than benchMaxAllCameras.
func selectModes(all []benchMode, list string, cameras int) ([]benchMode, error) {
	if list == "" {
		var out []benchMode
		for _, m := range all {
			if m.name == "all" && cameras > benchMaxAllCameras {
				m.config = ""
			}
			out = append(out, m)
		}
		return out, nil
	}
	var out []benchMode
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(all, func(m benchMode) bool { return m.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("BENCH_MODES: unknown mode %q (stream, keyframe, keyframe+detect, all)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// benchResult is what one mode's run measured.
type benchResult struct {
	cpuPerCameraMinute   float64
	scrapeP50, scrapeMax time.Duration
	rss, peakRSS         int
	lost                 int
	scrapes              int
	serverCoreShare      float64
}

// benchRun starts the exporter in mode, waits until every camera is
// analyzed (up, for stream) and past the image collector's min interval,
// then scrapes every 15 s for seconds and measures.
func benchRun(b *testing.B, mode benchMode, cameraConfig string, cameras, seconds int, profileTo string) benchResult {
	args := mode.args
	if profileTo != "" {
		args = append(slices.Clone(args), "--web.enable-pprof")
	}
	e := startExporter(b, mode.config+cameraConfig, args...)
	defer e.stop(b)
	pid := e.cmd.Process.Pid
	ready, want := `camera_frame_brightness_ratio{`, "every camera analyzed"
	if mode.name == "stream" {
		ready, want = `camera_up{`, "every camera up"
	}
	// Polled every second, not faster: each scrape analyzes the cameras.
	deadline := time.Now().Add(30*time.Second + time.Duration(cameras)*time.Second)
	for {
		m, _ := e.get("/metrics", nil)
		n := 0
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, ready) && !strings.HasSuffix(line, " 0") {
				n++
			}
		}
		if n == cameras {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: timed out waiting for %s (%d of %d)\n%s", mode.name, want, n, cameras, e.logs)
		}
		time.Sleep(time.Second)
	}
	// Past --collector.image.min-interval (5 s), each scrape analyzes anew,
	// as Prometheus' do; one scrape at their cadence first, as the exporter
	// prepares each scrape's analyses from the interval it sees.
	time.Sleep(benchScrapeInterval)
	if _, err := e.get("/metrics", nil); err != nil {
		b.Fatal(err)
	}
	time.Sleep(benchScrapeInterval)

	var profiled chan error
	window := time.Duration(seconds) * time.Second
	if profileTo != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchProfile(e.addr, min(30*time.Second, window), profileTo) }()
	}
	cpuBefore := cpuSeconds(b, pid)
	selfBefore := cpuSeconds(b, os.Getpid())
	start := time.Now()
	var durations []time.Duration
	var lostBefore int
	for k := 0; time.Duration(k)*benchScrapeInterval < window; k++ {
		time.Sleep(time.Until(start.Add(time.Duration(k) * benchScrapeInterval)))
		begin := time.Now()
		m, err := e.get("/metrics", nil)
		if err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(begin))
		if k == 0 {
			lostBefore = sumSeries(m, "camera_rtp_packets_lost_total{")
		}
	}
	time.Sleep(time.Until(start.Add(window)))
	cpu := cpuSeconds(b, pid) - cpuBefore
	self := cpuSeconds(b, os.Getpid()) - selfBefore
	elapsed := time.Since(start)
	r := benchResult{
		cpuPerCameraMinute: cpu / elapsed.Minutes() / float64(cameras),
		rss:                procStatus(b, pid, "VmRSS"),
		peakRSS:            procStatus(b, pid, "VmHWM"),
		scrapes:            len(durations),
		serverCoreShare:    self / elapsed.Seconds(),
	}
	slices.Sort(durations)
	r.scrapeP50, r.scrapeMax = durations[(len(durations)-1)/2], durations[len(durations)-1]
	// After the measures: this scrape is not in the window.
	m, err := e.get("/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.lost = sumSeries(m, "camera_rtp_packets_lost_total{") - lostBefore
	if profiled != nil {
		if err := <-profiled; err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// fetchProfile writes a CPU profile of the exporter at addr, for d, to path.
func fetchProfile(addr string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CPU profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sumSeries sums the values of the series in metrics whose lines start
// with prefix.
func sumSeries(metrics, prefix string) int {
	var sum float64
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			if v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return int(sum)
}

func mib(bytes int) float64 { return float64(bytes) / (1 << 20) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cpuSeconds reads a process's user+system time from /proc.
func cpuSeconds(b *testing.B, pid int) float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesized command name; utime and stime are 14 and 15.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const clockTicks = 100 // USER_HZ on Linux
	return (utime + stime) / clockTicks
}

// procStatus reads a size field of a process's /proc status (VmRSS, VmHWM)
// in bytes.
func procStatus(b *testing.B, pid int, field string) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc status", field)
	return 0
}
