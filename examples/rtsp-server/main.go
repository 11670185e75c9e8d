// rtsp-server serves synthetic camera streams over RTSP, encoded with
// ffmpeg at start. `make demo` points the exporter at it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
)

// The demo cameras: a busy scene, a mid-gray one and one at dusk.
var sources = []struct {
	name  string
	codec rtsptest.Codec
	lavfi string
}{
	{"h264-testsrc", rtsptest.H264, "testsrc2=s=640x360:r=%d"},
	{"h265-gray", rtsptest.H265, "color=c=0x404040:s=640x360:r=%d"},
	{"mjpeg-dusk", rtsptest.MJPEG, "color=c=0x141414:s=640x360:r=%d,noise=alls=12:allf=t"},
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8554", "RTSP address to serve on.")
	fps := flag.Int("fps", 25, "Frames per second of every stream.")
	seconds := flag.Int("seconds", 4, "Length of the clip each stream loops.")
	flag.Parse()

	dir, err := os.MkdirTemp("", "rtsp-server")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	clips := map[string]*rtsptest.Media{}
	for _, src := range sources {
		input := []string{"-f", "lavfi", "-i", fmt.Sprintf(src.lavfi, *fps)}
		clip, err := rtsptest.Encode(context.Background(), dir, src.codec, *fps, *fps**seconds, input)
		if err != nil {
			log.Fatalf("encoding %s: %v", src.name, err)
		}
		clips[src.name] = clip
	}
	srv, err := rtsptest.Start(rtsptest.Options{Addr: *listen}, clips)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	for _, src := range sources {
		log.Printf("serving %s", srv.URL(src.name))
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}
