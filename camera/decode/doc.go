// Package decode implements camera.Decoder with libavcodec through cgo, and
// analyzes photographs (Image) the same way, to build a camera's reference
// from a training set.
//
// Each Decoder owns one single-threaded codec context, so the CPU spent per
// camera stays bounded and predictable. Only the latest decoded picture is
// kept; Analyze copies its luma plane into a reused gocv Mat, rescaled to full
// range 8-bit samples, and measures it with gocv. Picture converts it to BGR
// at the detector's input size with libswscale. Building this package needs
// the libavcodec, libavutil, libswscale and OpenCV development files; the
// rest of the exporter only sees the camera.Decoder interface.
//
// # Statistics
//
// Brightness, contrast, dark and overexposed ratios are measured on the full
// size luma. Sharpness and edge density are measured on the luma shrunk to
// imagestats.AnalysisWidth (area averaging, aspect kept, never enlarged), so
// their scales do not depend on the camera's resolution; the colours on a
// BGR picture half that size. Measured on the shared test photos (640 to
// 773 px wide), as JPEG files and through MJPEG and H264:
//
//   - Sharpness, the variance of the 4-neighbour Laplacian of luma on the
//     0 to 1 scale: 0 for a flat picture; 0.018 to 0.022 for the person, dog
//     and eagle photos (person.jpg through H264: 0.017), 0.11 for the
//     highly textured giraffe.jpg, 0.007 for ffmpeg's 1080p testsrc2. A
//     gaussian blur of sigma 1, 2 and 4 px (at 640 px wide) divides it by 2
//     to 4, 7 to 25 and 35 to 240 (person.jpg: 0.0058, 0.0015, 0.00026). It
//     depends on the view, so thresholds belong to a camera, relative to its
//     reference.
//   - EdgeDensity, the share of Canny edge pixels (thresholds 50 and 150 on
//     8-bit luma, 3x3 Sobel): 0 for a flat picture; 0.15 to 0.2 for the
//     person, dog and eagle photos, 0.36 for giraffe.jpg, 0.04 for
//     testsrc2 and its large flat areas; 0.025 to 0.075 once blurred with
//     sigma 4.
//   - Saturation, the mean HSV saturation: 0 for gray, 1 for pure colours;
//     0.24 to 0.28 for the person, dog and eagle photos, 0.67 for the
//     giraffe's savanna. Dark pictures read higher, since the saturation of
//     near-black pixels is mostly noise.
//   - Red, Green and Blue, the channel means: equal for a neutral picture.
//
// Compression lowers sharpness a little (H264 at CRF 23: 8%) and leaves the
// other statistics within a few thousandths of the photo's.
package decode
