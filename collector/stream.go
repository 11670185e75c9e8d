package collector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
)

func init() {
	registerCollector("stream", true, false, newStreamCollector)
}

// streamCollector reports session state and counters. It never decodes, so
// it costs the same whatever the cameras send.
type streamCollector struct {
	up, sessionUp, info, lastFrame             *prometheus.Desc
	frames, keyframes, bytes, lost, reconnects *prometheus.Desc
	decodeErrors                               *prometheus.Desc
}

func newStreamCollector() Collector {
	return &streamCollector{
		up: cameraDesc("camera_up",
			"1 if the camera's RTSP session is up and a frame arrived within the camera's timeout, else 0."),
		sessionUp: cameraDesc("camera_session_up",
			"1 while the camera's RTSP session is established, whether frames arrive or not, else 0. With camera_up 0 it means a stalled stream."),
		info: cameraDesc("camera_info",
			"Stream properties of the camera's current session, value 1.", "codec", "width", "height", "transport"),
		lastFrame: cameraDesc("camera_last_frame_timestamp_seconds",
			"Unix time the camera's last complete frame arrived."),
		frames: cameraDesc("camera_frames_received_total",
			"Complete frames (access units) received from the camera."),
		keyframes: cameraDesc("camera_keyframes_received_total",
			"Key frames (IDR/CRA access units, every MJPEG frame) received from the camera."),
		bytes: cameraDesc("camera_received_bytes_total",
			"RTP payload bytes received from the camera."),
		lost: cameraDesc("camera_rtp_packets_lost_total",
			"RTP packets the camera sent that never arrived."),
		reconnects: cameraDesc("camera_reconnects_total",
			"Attempts to re-establish the camera's RTSP session, by why the session before ended: refused, timeout, auth, redirect_limit, stalled, closed or protocol.", "reason"),
		decodeErrors: cameraDesc("camera_decode_errors_total",
			"Frames that could not be depacketized or decoded."),
	}
}

// Update never fails: it reads counters the sessions keep in memory, and a
// camera that is down is a value (camera_up 0), not a failure to collect.
func (c *streamCollector) Update(scrape *Scrape, ch chan<- prometheus.Metric) error {
	now := time.Now()
	for _, s := range scrape.Cameras() {
		name := s.Name()
		st := s.Status()
		ch <- gauge(c.up, boolValue(s.Up(now)), name)
		ch <- gauge(c.sessionUp, boolValue(st.Connected), name)
		if st.Codec != "" {
			ch <- gauge(c.info, 1, name, string(st.Codec), strconv.Itoa(st.Width), strconv.Itoa(st.Height), st.Transport)
		}
		if !st.LastFrame.IsZero() {
			ch <- gauge(c.lastFrame, float64(st.LastFrame.UnixNano())/1e9, name)
		}
		for _, total := range []struct {
			desc  *prometheus.Desc
			value uint64
		}{
			{c.frames, st.FramesReceived},
			{c.keyframes, st.KeyframesReceived},
			{c.bytes, st.BytesReceived},
			{c.lost, st.PacketsLost},
			{c.decodeErrors, st.DecodeErrors},
		} {
			ch <- counter(total.desc, float64(total.value), name)
		}
		// Every reason from the start, so that rate() sees the first one.
		for _, r := range camera.Reasons() {
			ch <- counter(c.reconnects, float64(st.Reconnects[r]), name, r.String())
		}
	}
	return nil
}
