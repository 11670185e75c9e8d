package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	registerCollector("image", true, true, newImageCollector)
}

// imageCollector reports the statistics of each camera's analyzed
// picture, and whether the analysis succeeded.
type imageCollector struct {
	brightness, contrast, darkRatio, success        *prometheus.Desc
	overexposed, sharpness, edgeDensity, saturation *prometheus.Desc
	channelMean                                     *prometheus.Desc
}

func newImageCollector() Collector {
	return &imageCollector{
		brightness: cameraDesc("camera_frame_brightness_ratio",
			"Mean luma of the camera's latest analyzed frame, 0 (black) to 1 (white) on the full-range scale."),
		contrast: cameraDesc("camera_frame_contrast_ratio",
			"Standard deviation of luma of the camera's latest analyzed frame, on the full-range 0 to 1 scale."),
		darkRatio: cameraDesc("camera_frame_dark_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame whose luma is below the camera's dark_threshold."),
		success: cameraDesc("camera_frame_analysis_success",
			"1 if the camera's latest frame was decoded, analyzed and, if the camera detects, run through the detector within the scrape's deadline, else 0."),
		overexposed: cameraDesc("camera_frame_overexposed_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame that are near white (luma at or above 0.95): glare, a camera facing the sun."),
		sharpness: cameraDesc("camera_frame_sharpness",
			"Variance of the Laplacian of luma (0 to 1 scale) of the camera's latest analyzed frame: a defocused, dirty or fogged lens lowers it."),
		edgeDensity: cameraDesc("camera_frame_edge_density_ratio",
			"Share of edge pixels of the camera's latest analyzed frame: a covered lens or a blocked view lowers it."),
		saturation: cameraDesc("camera_frame_saturation_ratio",
			"Mean colour saturation of the camera's latest analyzed frame: 0 for gray pictures, as in infrared night mode, 1 for pure colours."),
		channelMean: cameraDesc("camera_frame_channel_mean_ratio",
			"Mean of a colour channel of the camera's latest analyzed frame, 0 to 1: a colour cast sets one apart.", "channel"),
	}
}

// Update fails when cameras are up but none could be analyzed within the
// deadline, a picture that did not arrive yet aside. A single camera's
// failure is camera_frame_analysis_success 0.
func (c *imageCollector) Update(scrape *Scrape, ch chan<- prometheus.Metric) error {
	round := scrape.Round()
	for _, sc := range round.Cameras {
		ch <- gauge(c.success, boolValue(sc.Analysis.Succeeded()), sc.Name)
		a := sc.Analysis
		if a == nil || a.Err != nil {
			continue
		}
		s := a.Stats
		ch <- gauge(c.brightness, s.Brightness, sc.Name)
		ch <- gauge(c.contrast, s.Contrast, sc.Name)
		ch <- gauge(c.darkRatio, s.DarkRatio, sc.Name)
		ch <- gauge(c.overexposed, s.OverexposedRatio, sc.Name)
		ch <- gauge(c.sharpness, s.Sharpness, sc.Name)
		ch <- gauge(c.edgeDensity, s.EdgeDensity, sc.Name)
		ch <- gauge(c.saturation, s.Saturation, sc.Name)
		ch <- gauge(c.channelMean, s.Red, sc.Name, "red")
		ch <- gauge(c.channelMean, s.Green, sc.Name, "green")
		ch <- gauge(c.channelMean, s.Blue, sc.Name, "blue")
	}
	if t := round.Tally(); t.Analyzed == 0 && t.Failed > 0 {
		return fmt.Errorf("none of the %d cameras that are up could be analyzed", t.Failed)
	}
	return nil
}
