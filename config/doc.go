// Package config loads and validates the camera_exporter configuration file,
// exporter.yml:
//
//	detector:                  # optional
//	  model: models/yolo-fastest-1.1/yolo-fastest-1.1.weights
//	  config: models/yolo-fastest-1.1/yolo-fastest-1.1.cfg
//	  labels: models/yolo-fastest-1.1/coco.names
//	  input_size: 320
//	defaults:                  # optional, for cameras that leave a field unset
//	  transport: tcp
//	  auth: any                # or digest: never send the password as Basic
//	  timeout: 10s
//	  dark_threshold: 0.15
//	  decode: keyframe
//	  max_picture_pixels: 12000000   # larger pictures end the session
//	cameras:
//	  - name: gate-north       # unique; becomes the camera label
//	    url: rtsp://10.0.0.5:554/stream1
//	    username: viewer
//	    password_file: gate-north.pass   # or password; not both
//	    transport: udp
//	    frozen_overlay:        # overlays besides the top and bottom fifth, for camera_frame_frozen
//	      - {left: 0.4, top: 0.45, right: 0.6, bottom: 0.55}   # fractions of the picture
//	    detect:
//	      classes: [person]
//
// A camera's options come from the camera itself, else from the defaults
// block, else from the built-in defaults (tcp, any, 10s, 0.15, keyframe, 12 MP,
// detect enabled for every class). After [Load] every camera's [CameraOptions] are
// set, and the detector's labels are read.
//
// Every file the configuration names is checked to be a regular file no
// larger than its kind may be before it is read, so that a FIFO, a device
// or a huge file neither blocks a reload nor fills the memory.
//
// Errors name the file and the line of the offending field. They never
// contain credentials, and neither does [Config.Redacted], which is meant for
// display.
package config
