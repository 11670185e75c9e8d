package camera_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
)

// BenchmarkReceive receives 8 cameras' 1080p25 4 Mb/s H264 for 20 s per
// iteration without analyzing them: the receive path alone, for profiles
// (go test -run '^$' -bench Receive -cpuprofile cpu.pprof ./camera/). The
// in-process server's share shows under rtsptest and gortsplib's server.
func BenchmarkReceive(b *testing.B) {
	clip := rtsptest.Clip(b, rtsptest.H264, "testsrc2=s=1920x1080:r=25", 100,
		"-preset", "veryfast", "-g", "50", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M")
	clips := map[string]*rtsptest.Media{}
	for i := range 8 {
		clips[fmt.Sprint("cam", i)] = clip
	}
	srv := serve(b, rtsptest.Options{}, clips)
	// The in-process server serves TCP only.
	for _, transport := range []string{"tcp"} {
		b.Run(transport, func(b *testing.B) {
			for range b.N {
				pool := camera.NewDecoderPool(camera.AsNewDecoder(decode.New))
				var streams []*camera.Stream
				for name := range clips {
					cfg := cameraConfig(b, fmt.Sprintf("name: %s\nurl: %s\ntransport: %s", name, srv.URL(name), transport))
					streams = append(streams, camera.NewStream(cfg, pool, slog.New(slog.NewTextHandler(io.Discard, nil))))
				}
				reads := readSyscalls(b)
				time.Sleep(20 * time.Second)
				reads = readSyscalls(b) - reads
				var frames uint64
				for _, s := range streams {
					frames += s.Status().FramesReceived
					s.Stop()
				}
				pool.Close()
				b.ReportMetric(float64(frames)/float64(len(streams))/20, "fps/camera")
				b.ReportMetric(float64(reads)/float64(len(streams))/20, "reads/camera-s")
			}
		})
	}
}

// readSyscalls reads the process's count of read system calls.
func readSyscalls(b *testing.B) int {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	b.Fatal("no syscr in /proc/self/io")
	return 0
}
