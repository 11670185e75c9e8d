package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// BenchmarkExporter runs the exporter binary against BENCH_CAMERAS (default
// 4) in-process 1080p H264 streams, scraping every 15 s for BENCH_SECONDS
// (default 60), and reports the exporter's CPU seconds per camera-minute,
// its peak RSS and how long a scrape takes: in key frame mode, in key frame
// mode with the Yolo-Fastest detector, and in full-decode mode.
func BenchmarkExporter(b *testing.B) {
	cameras := envInt("BENCH_CAMERAS", 4)
	seconds := envInt("BENCH_SECONDS", 60)
	// testsrc2 moves every frame, so P-frames cost what a real scene's do.
	clip := rtsptest.Clip(b, rtsptest.H264, "testsrc2=s=1920x1080:r=25", 250, "-preset", "veryfast", "-g", "50")
	clips := map[string]*rtsptest.Media{}
	var cfg strings.Builder
	cfg.WriteString("cameras:\n")
	for i := range cameras {
		name := fmt.Sprintf("cam%d", i)
		clips[name] = clip
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, clips)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	for i := range cameras {
		name := fmt.Sprintf("cam%d", i)
		fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n", name, srv.URL(name))
	}

	for _, mode := range []struct{ name, config string }{
		{"decode=keyframe", "defaults:\n  decode: keyframe\n"},
		{"decode=keyframe+detect", detectorBlock(b, "") + "defaults:\n  decode: keyframe\n"},
		{"decode=all", "defaults:\n  decode: all\n"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for range b.N {
				e := startExporter(b, mode.config+cfg.String())
				testutil.WaitFor(b, "every camera analyzed", 60*time.Second, func() bool {
					m, _ := e.get("/metrics", nil)
					return strings.Count(m, "camera_frame_brightness_ratio{") == cameras
				})
				time.Sleep(15 * time.Second) // past the min interval: each scrape analyzes anew
				cpuBefore := cpuSeconds(b, e.cmd.Process.Pid)
				start := time.Now()
				var scrapes int
				var scraping time.Duration
				for time.Since(start) < time.Duration(seconds)*time.Second {
					begin := time.Now()
					if _, err := e.get("/metrics", nil); err != nil {
						b.Fatal(err)
					}
					scraping += time.Since(begin)
					scrapes++
					time.Sleep(15 * time.Second)
				}
				cpu := cpuSeconds(b, e.cmd.Process.Pid) - cpuBefore
				minutes := time.Since(start).Minutes()
				b.ReportMetric(cpu/minutes/float64(cameras), "cpu-s/camera-min")
				b.ReportMetric(float64(peakRSS(b, e.cmd.Process.Pid))/(1<<20), "peak-rss-MiB")
				b.ReportMetric(float64(scraping.Milliseconds())/float64(scrapes), "ms/scrape")
			}
		})
	}
}

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

// peakRSS reads a process's high-water resident set size in bytes.
func peakRSS(b *testing.B, pid int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
