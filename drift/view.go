package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/camera-exporter/camera_exporter/imagestats"
)

// The registration grid: the signature resampled to square pixels (the
// signature's 160x90 is square only for a 16:9 picture), as large as fits
// in boxW x boxH, the size of the Fourier transforms. 128x64 keeps 114x64
// of a 16:9 signature's 160x90: the coarse shifts come out within 0.3% of
// the picture after sub-pixel interpolation, which the alignment needs,
// at a quarter of the cost of 256x128.
const (
	boxW = 128
	boxH = 64
	// The log-polar resampling of the spectrum: lpA angles over half a
	// turn (a real picture's spectrum is symmetric), lpR radii from lpMin
	// to lpMax cycles per grid pixel. Below lpMin the spectrum is the
	// window's and the picture's coarsest shading, which does not rotate
	// with the view; above lpMax the grid's corners are missing from it.
	lpA   = 128
	lpR   = 64
	lpMin = 0.03
	lpMax = 0.45
	// blockSize is the side, in grid pixels, of the blocks that
	// MatchRatio counts: about a fourteenth of a 16:9 picture's width.
	blockSize = 8
)

// MatchRatio's thresholds, calibrated on the photos of the tests (see
// view_test.go).
const (
	// blockFloor is the mean gradient magnitude, in levels per grid
	// pixel, below which a reference block has no structure to find: a
	// sky, a wall. About what the signature's rounding leaves on a flat
	// block.
	blockFloor = 2
	// blockMatch is the normalized correlation, between a reference
	// block's gradients and the frame's at the registered position, from
	// which the block is found.
	blockMatch = 0.5
)

// View is a reference view prepared for registration: its gradients'
// spectra, log-polar spectrum and pyramid are computed once, in NewView,
// so that a frame costs its own only. A View is safe for concurrent use.
type View struct {
	width, height int // the reference picture's size
	gw, gh        int // the grid the picture fills
	ox, oy        int // where it lies in the box
	rx, ry        resampler
	win           []float32 // Hann window over the grid
	lpWin         []float32 // Hann window over the log-polar radii
	lpIdx         []int32   // the 4 box bins of each log-polar sample
	lpWgt         []float32 // and their bilinear weights
	box, lp       *fft2
	refSpec       []complex64 // transform of the reference's windowed gradients
	refLP         []complex64 // transform of its log-polar spectrum
	refGrad       []float32   // its gradient magnitude on the grid
	blocks        []int32     // the grid offsets of its structured blocks
	// The alignment's pyramid, its centre in signature columns, and the
	// reference's pixels it compares at each level.
	levels    [pyramidLevels]pyramidLevel
	cx, cy    float64
	refPixels [pyramidLevels][]refPixel
	scratch   *sync.Pool // of *viewScratch, shared with the Views of its grid
}

// scratchPools holds a pool of working memory for each grid size (a
// [2]int of its width and height), shared by the Views of that size: a
// pool per View would keep, and after each garbage collection allocate
// again, some 600 KB per camera; shared, the memory goes with the
// registrations running at once.
var scratchPools sync.Map

func scratchPool(gw, gh int) *sync.Pool {
	key := [2]int{gw, gh}
	if p, ok := scratchPools.Load(key); ok {
		return p.(*sync.Pool)
	}
	p, _ := scratchPools.LoadOrStore(key, &sync.Pool{New: func() any { return newScratch(gw, gh) }})
	return p.(*sync.Pool)
}

// Registration is how the current frame's view relates to the reference,
// as a similarity about the picture's centre: the scene point at p in the
// reference appears in the frame at c + Scale·Rot(RotationDegrees)·(p − c)
// + (ShiftX·width, ShiftY·height), c the centre, in the picture's physical
// (square pixel) coordinates.
type Registration struct {
	// ShiftX and ShiftY are how far the scene moved, in fractions of the
	// picture's width and height: positive when the scene moved right
	// (the camera panned left) and down (the camera tilted up).
	ShiftX, ShiftY float64
	// Scale is the zoom: 1 unchanged, 1.2 when the scene looks 1.2 times
	// larger (the camera zoomed in or moved closer); 0.5 to 2.
	Scale float64
	// RotationDegrees is how far the scene turned, counterclockwise as
	// seen in the picture (the camera rolled clockwise) positive, within
	// ±90° (Register reads nothing beyond).
	RotationDegrees float64
	// MatchRatio, 0 to 1, is the share of the reference's structured
	// blocks (8x8 of the grid, a fourteenth of a 16:9 picture's width)
	// found again in the frame at the registered position: about 1 for
	// the same view, busy or dim, less for the part of the view an
	// obstacle covers or a pan took out of the picture, near 0 for
	// another view. When it is low, below 0.3 say, the geometry above is
	// that of whatever correlated best and means little.
	MatchRatio float64
}

// viewScratch is one Register call's working memory.
type viewScratch struct {
	sig      []float32                // the signature in levels
	tmp      []float32                // the horizontal resampling
	luma     []float32                // the grid
	grad     []float32                // its gradient magnitude
	spec     []complex64              // box transforms
	lpSpec   []complex64              // log-polar transforms
	row      []complex64              // a row of a transform
	col      []complex64              // a column of a transform
	warped   []float32                // the frame's gradients in the reference's place
	inside   []bool                   // whether warped took them from the frame
	mag      []float32                // the frame's amplitude spectrum
	product  []complex64              // the normalized cross-power spectrum
	pyr      [pyramidLevels][]float32 // the alignment's pyramid
	flat     [pyramidLevels][]bool    // its pixels without structure
	tmpPyr   []float32                // a level's smoothing
	residual []float32                // of each reference pixel of a level, NaN outside
	abs      []float32                // their absolute values, for their median
	tried    []similarity             // the candidates aligned so far
}

// NewView prepares signature, a reference's mean signature (imagestats
// SignatureWidth x SignatureHeight, 0 to 1, as in Profile.Signature) of
// pictures width x height, for registration. It fails for a flat signature
// (a reference taken with the lens covered has no view to find).
func NewView(signature []float32, width, height int) (*View, error) {
	const sw, sh = imagestats.SignatureWidth, imagestats.SignatureHeight
	if len(signature) != sw*sh {
		return nil, fmt.Errorf("drift: reference signature has %d values, want %d", len(signature), sw*sh)
	}
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("drift: picture size %dx%d", width, height)
	}
	for _, x := range signature {
		// As Profile.validate: a value out of range (from a damaged file)
		// would read as a view, or make the registration not a number.
		if !(x >= 0 && x <= 1) {
			return nil, fmt.Errorf("drift: reference signature value %v outside 0 to 1", x)
		}
	}
	v := &View{width: width, height: height}
	// A signature pixel is width/sw by height/sh of the picture: sized in
	// signature columns, the picture is sw by sh·py.
	py := float64(height) / sh / (float64(width) / sw)
	g := max(sw/float64(boxW), sh*py/boxH) // grid pixel, in signature columns
	v.gw = min(boxW, int(math.Round(sw/g)))
	v.gh = min(boxH, int(math.Round(sh*py/g)))
	if v.gw < 4*blockSize || v.gh < 4*blockSize {
		return nil, fmt.Errorf("drift: picture aspect %dx%d too far from the signature's", width, height)
	}
	v.ox, v.oy = (boxW-v.gw)/2, (boxH-v.gh)/2
	v.rx = newResampler(sw, v.gw)
	v.ry = newResampler(sh, v.gh)
	v.win = make([]float32, v.gw*v.gh)
	for y := range v.gh {
		wy := hann(y, v.gh)
		for x := range v.gw {
			v.win[y*v.gw+x] = float32(wy * hann(x, v.gw))
		}
	}
	v.lpWin = make([]float32, lpR)
	for r := range lpR {
		v.lpWin[r] = float32(hann(r, lpR))
	}
	v.initLogPolar()
	v.box = newFFT2(boxW, boxH)
	v.lp = newFFT2(lpR, lpA)
	v.scratch = scratchPool(v.gw, v.gh)

	sc := v.scratch.Get().(*viewScratch)
	defer v.scratch.Put(sc)
	for i, s := range signature {
		sc.sig[i] = s * 255
	}
	if !v.gradients(sc) {
		return nil, errors.New("drift: reference signature is flat")
	}
	v.initPyramid(sc, py)
	v.refGrad = append([]float32(nil), sc.grad...)
	v.refSpec = make([]complex64, boxW*boxH)
	v.windowed(v.refSpec, sc.grad)
	v.box.forward(v.refSpec, sc.row, sc.col, v.oy, v.oy+v.gh)
	v.refLP = make([]complex64, lpR*lpA)
	v.logPolar(v.refLP, v.refSpec, sc.mag)
	v.lp.forward(v.refLP, sc.row, sc.col, 0, lpA)
	for by := 0; by+blockSize <= v.gh; by += blockSize {
		for bx := 0; bx+blockSize <= v.gw; bx += blockSize {
			var sum float32
			for y := by; y < by+blockSize; y++ {
				for _, g := range v.refGrad[y*v.gw+bx : y*v.gw+bx+blockSize] {
					sum += g
				}
			}
			if sum >= blockFloor*blockSize*blockSize {
				v.blocks = append(v.blocks, int32(by*v.gw+bx))
			}
		}
	}
	if len(v.blocks) == 0 {
		return nil, errors.New("drift: reference signature has no structure")
	}
	return v, nil
}

// newScratch allocates a Register call's working memory for a gw x gh grid.
func newScratch(gw, gh int) *viewScratch {
	const n = imagestats.SignatureWidth * imagestats.SignatureHeight
	g := gw * gh
	sc := &viewScratch{
		sig:     make([]float32, n),
		tmp:     make([]float32, gw*imagestats.SignatureHeight),
		luma:    make([]float32, g),
		grad:    make([]float32, g),
		spec:    make([]complex64, boxW*boxH),
		lpSpec:  make([]complex64, lpR*lpA),
		row:     make([]complex64, max(boxW, lpR)),
		col:     make([]complex64, max(boxH, lpA)),
		warped:  make([]float32, g),
		inside:  make([]bool, g),
		mag:     make([]float32, boxW*boxH),
		product: make([]complex64, max(boxW*boxH, lpR*lpA)),
		tmpPyr:  make([]float32, n),
	}
	for l := range sc.pyr {
		sc.pyr[l] = make([]float32, n>>(2*l))
		sc.flat[l] = make([]bool, n>>(2*l))
	}
	m := levelPixels[0]
	sc.residual, sc.abs = make([]float32, m), make([]float32, 0, m)
	return sc
}

// Register measures how the view of a frame, its signature (as in
// imagestats.Stats) of a width x height picture, relates to the
// reference's. ok is false when the signature's size is wrong, when the
// picture's aspect differs from the reference's by more than 2% (another
// stream, whose signature is stretched otherwise), when the frame is
// flat (a covered lens, a blank picture), or when the registration leaves
// what a fixed camera's view can do: a zoom outside 0.5 to 2, a roll
// beyond ±90°, a shift of the whole picture or more.
//
// Two steps. The coarse one registers the views' gradient magnitudes, not
// their luma, so that light (dusk, gain, infrared night mode, which turns
// some dark surfaces bright) moves nothing: the edges stay where they are,
// whatever their contrast and polarity. For a candidate scale and rotation
// the frame is turned and scaled back, and the phase correlation of the
// gradients gives the translation. The candidates: the unchanged view's,
// then the phase correlation of the amplitude spectra in log-polar
// coordinates (Fourier–Mellin: the amplitude spectrum ignores translation,
// and scaling and rotating the view shift it along log-radius and angle),
// then coarseScales, until one is found (foundMatch). Each is aligned
// (align) at the coarsest level of a pyramid of the signature, and the one
// under which most of the reference's blocks are found is aligned down to
// the finest: on luma, with a gain and an offset for the light (a negative
// gain for inverted polarity), robust to people who come and go. Each
// candidate is scored before its alignment as well as after, the unmoved
// view first of all, and the refinement is kept only if it finds the view
// about as well: a card over most of the lens can drag the alignment
// anywhere, and must read as obstructed (a low MatchRatio), not moved. The
// Fourier–Mellin estimate alone was off by 10% of zoom on real footage,
// whose lawns and roads have a smooth spectrum, and now and then by 80° of
// roll.
func (v *View) Register(signature []uint8, width, height int) (Registration, bool) {
	if len(signature) != imagestats.SignatureWidth*imagestats.SignatureHeight || width <= 0 || height <= 0 {
		return Registration{}, false
	}
	aspect := float64(width) * float64(v.height) / (float64(height) * float64(v.width))
	if aspect > 1.02 || aspect < 1/1.02 {
		return Registration{}, false
	}
	// The same flatness as SceneChange's: a standard deviation under
	// flatSignature is rounding and noise.
	var s, ss int
	for _, x := range signature {
		s += int(x)
		ss += int(x) * int(x)
	}
	n, flat := float64(len(signature)), flatSignature*255
	if float64(ss)*n-float64(s)*float64(s) < flat*flat*n*n {
		return Registration{}, false
	}
	sc := v.scratch.Get().(*viewScratch)
	defer v.scratch.Put(sc)
	for i, x := range signature {
		sc.sig[i] = float32(x)
	}
	if !v.gradients(sc) {
		return Registration{}, false
	}

	// The coarse candidates, each with its translation, aligned at the
	// coarsest level; the one under which most of the reference's blocks
	// are found in the frame is refined. (The luma's correlation at the
	// coarsest level, smooth, is high for wrong ones too.) The unchanged
	// zoom comes first, since most frames are of an unmoved camera, then
	// Fourier–Mellin's.
	v.pyramid(sc)
	top := pyramidLevels - 1
	var best similarity
	bestMatch := -1.0
	tried := sc.tried[:0]
	score := func(s similarity) {
		v.warpSimilarity(sc, s)
		if m := v.matchRatio(sc); m > bestMatch {
			best, bestMatch = s, m
		}
	}
	try := func(scale, angle float64) {
		// Scored before its alignment too: when most of the reference's
		// strongest pixels are hidden (a card over half the lens), the
		// alignment can drag a right candidate away.
		s := v.coarse(sc, scale, angle)
		v.fitLight(sc, top, &s)
		unaligned := s
		v.align(sc, top, &s, levelIterations[top])
		for _, t := range tried {
			if v.near(s, t, top) {
				return
			}
		}
		tried = append(tried, s)
		score(s)
		if bestMatch < foundMatch {
			score(unaligned)
		}
	}
	try(1, 0)
	if bestMatch < foundMatch {
		// The unmoved view itself: a card's edge over most of the lens can
		// pull even the unchanged zoom's phase correlation elsewhere.
		unmoved := similarity{a: 1, gain: 1}
		v.fitLight(sc, top, &unmoved)
		score(unmoved)
	}
	if bestMatch < foundMatch {
		scale, angle := v.fourierMellin(sc)
		try(scale, angle)
	}
	for _, scale := range coarseScales {
		if bestMatch >= foundMatch {
			break
		}
		try(scale, 0)
	}
	sc.tried = tried
	fine := best
	for l := top - 1; l >= 0; l-- {
		v.align(sc, l, &fine, levelIterations[l])
	}
	v.warpSimilarity(sc, fine)
	match := v.matchRatio(sc)
	if match < bestMatch-refineSlack {
		// The refinement lost the view: the coarse registration stands.
		fine, match = best, bestMatch
	}

	scale, angle := math.Hypot(fine.a, fine.b), math.Atan2(fine.b, fine.a)
	reg := Registration{
		ShiftX:          fine.tx / (2 * v.cx),
		ShiftY:          fine.ty / (2 * v.cy),
		Scale:           scale,
		RotationDegrees: angle * 180 / math.Pi,
		MatchRatio:      match,
	}
	// Beyond these bounds the alignment followed something other than the
	// view: no reading is better than a wrong one.
	if !(scale >= minScale && scale <= maxScale) || !(math.Abs(reg.RotationDegrees) <= 90) ||
		!(math.Abs(reg.ShiftX) < 1 && math.Abs(reg.ShiftY) < 1) || !(reg.MatchRatio >= 0 && reg.MatchRatio <= 1) {
		return Registration{}, false
	}
	return reg, true
}

// fourierMellin returns the scale and angle of the frame against the
// reference from the phase correlation of the amplitude spectra of their
// gradients in log-polar coordinates.
func (v *View) fourierMellin(sc *viewScratch) (scale, angle float64) {
	v.windowed(sc.spec, sc.grad)
	v.box.forward(sc.spec, sc.row, sc.col, v.oy, v.oy+v.gh)
	v.logPolar(sc.lpSpec, sc.spec, sc.mag)
	v.lp.forward(sc.lpSpec, sc.row, sc.col, 0, lpA)
	dr, da := v.correlate(v.lp, sc.lpSpec, v.refLP, sc)
	return math.Exp(-dr * math.Log(lpMax/lpMin) / lpR), -da * math.Pi / lpA
}

// warpSimilarity warps the frame's gradients to the reference's place, as
// s says, and returns its scale and angle.
func (v *View) warpSimilarity(sc *viewScratch, s similarity) (scale, angle float64) {
	scale, angle = math.Hypot(s.a, s.b), math.Atan2(s.b, s.a)
	v.warp(sc, scale, angle, s.tx*float64(v.gw)/(2*v.cx), s.ty*float64(v.gh)/(2*v.cy))
	return scale, angle
}

// near tells whether s and t take the reference's corners within a pixel
// of level l of each other.
func (v *View) near(s, t similarity, l int) bool {
	da, db := math.Abs(s.a-t.a), math.Abs(s.b-t.b)
	return da*v.cx+db*v.cy+math.Abs(s.tx-t.tx) < v.levels[l].fx &&
		db*v.cx+da*v.cy+math.Abs(s.ty-t.ty) < v.levels[l].fy
}

// coarse returns the similarity of the given scale and angle whose
// translation, from the phase correlation of the gradients of the frame
// turned and scaled back with the reference's, registers the frame best.
func (v *View) coarse(sc *viewScratch, scale, angle float64) similarity {
	v.warp(sc, scale, angle, 0, 0)
	v.windowed(sc.spec, sc.warped)
	v.box.forward(sc.spec, sc.row, sc.col, v.oy, v.oy+v.gh)
	tx, ty := v.correlate(v.box, sc.spec, v.refSpec, sc)
	sin, cos := math.Sincos(angle)
	tx, ty = scale*(cos*tx+sin*ty), scale*(-sin*tx+cos*ty)
	return similarity{
		a: scale * cos, b: scale * sin,
		tx: tx * v.cx * 2 / float64(v.gw), ty: ty * v.cy * 2 / float64(v.gh),
		gain: 1,
	}
}

// gradients resamples sc.sig to the grid, sc.luma, and sets sc.grad to its
// Sobel gradient magnitude in levels per grid pixel. It returns false for a
// grid without gradients.
func (v *View) gradients(sc *viewScratch) bool {
	const sw, sh = imagestats.SignatureWidth, imagestats.SignatureHeight
	gw, gh := v.gw, v.gh
	for y := range sh {
		v.rx.apply(sc.tmp[y*gw:(y+1)*gw], sc.sig[y*sw:(y+1)*sw], 1)
	}
	for x := range gw {
		v.ry.apply(sc.luma[x:], sc.tmp[x:], gw)
	}
	l := sc.luma
	var total float32
	for y := range gh {
		y0, y1 := max(y-1, 0)*gw, min(y+1, gh-1)*gw
		y := y * gw
		for x := range gw {
			x0, x1 := max(x-1, 0), min(x+1, gw-1)
			gx := l[y0+x1] + 2*l[y+x1] + l[y1+x1] - l[y0+x0] - 2*l[y+x0] - l[y1+x0]
			gy := l[y1+x0] + 2*l[y1+x] + l[y1+x1] - l[y0+x0] - 2*l[y0+x] - l[y0+x1]
			g := float32(math.Sqrt(float64(gx*gx+gy*gy))) / 8
			sc.grad[y+x] = g
			total += g
		}
	}
	return total > 0
}

// windowed sets box to g less its mean, times the window, in the grid's
// place in the box, zero around.
func (v *View) windowed(box []complex64, g []float32) {
	var sum float32
	for _, x := range g {
		sum += x
	}
	mean := sum / float32(len(g))
	clear(box)
	for y := range v.gh {
		row := box[(v.oy+y)*boxW+v.ox:]
		for x := range v.gw {
			i := y*v.gw + x
			row[x] = complex((g[i]-mean)*v.win[i], 0)
		}
	}
}

// initLogPolar lays out the log-polar samples of the amplitude spectrum:
// angle a (of lpA over half a turn, in the picture's coordinates, y down)
// and radius lpMin·(lpMax/lpMin)^(r/lpR) cycles per grid pixel, each
// interpolated from the box's 4 nearest frequency bins.
func (v *View) initLogPolar() {
	v.lpIdx = make([]int32, 4*lpA*lpR)
	v.lpWgt = make([]float32, 4*lpA*lpR)
	for a := range lpA {
		sin, cos := math.Sincos(math.Pi * float64(a) / lpA)
		for r := range lpR {
			rho := lpMin * math.Pow(lpMax/lpMin, float64(r)/lpR)
			kx, ky := rho*cos*boxW, rho*sin*boxH
			x0, y0 := math.Floor(kx), math.Floor(ky)
			fx, fy := float32(kx-x0), float32(ky-y0)
			i := 4 * (a*lpR + r)
			for j, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				bx, by := int(x0)+d[0], int(y0)+d[1]
				if bx < 0 {
					// The transforms keep kx >= 0: |F(k)| = |F(−k)|.
					bx, by = -bx, -by
				}
				by = (by + boxH) % boxH
				v.lpIdx[i+j] = int32(by*boxW + bx)
			}
			v.lpWgt[i], v.lpWgt[i+1] = (1-fx)*(1-fy), fx*(1-fy)
			v.lpWgt[i+2], v.lpWgt[i+3] = (1-fx)*fy, fx*fy
		}
	}
}

// logPolar sets lp (lpR columns, lpA rows) to the log-polar resampling of
// spec's amplitude, mag being scratch, less its mean and windowed along
// the radius (the angle wraps around).
func (v *View) logPolar(lp, spec []complex64, mag []float32) {
	for y := range boxH {
		for i := y * boxW; i <= y*boxW+boxW/2; i++ {
			c := spec[i]
			mag[i] = float32(math.Sqrt(float64(real(c)*real(c) + imag(c)*imag(c))))
		}
	}
	var sum float32
	for i := range lpA * lpR {
		j := 4 * i
		x := mag[v.lpIdx[j]]*v.lpWgt[j] + mag[v.lpIdx[j+1]]*v.lpWgt[j+1] +
			mag[v.lpIdx[j+2]]*v.lpWgt[j+2] + mag[v.lpIdx[j+3]]*v.lpWgt[j+3]
		x = fastLog(x + 1)
		lp[i] = complex(x, 0)
		sum += x
	}
	mean := sum / (lpA * lpR)
	for i := range lp {
		lp[i] = complex((real(lp[i])-mean)*v.lpWin[i%lpR], 0)
	}
}

// correlate returns the displacement (in cells, x then y, each within
// half the size) of the picture whose transform is spec from the one whose
// transform is ref (columns 0 to w/2 of each), from the peak of their
// phase correlation interpolated by a parabola through its neighbours.
func (v *View) correlate(f *fft2, spec, ref []complex64, sc *viewScratch) (dx, dy float64) {
	w, h := f.w, f.h
	p := sc.product[:w*h]
	for y := range h {
		for x := y * w; x <= y*w+w/2; x++ {
			a, b := spec[x], ref[x]
			re := real(a)*real(b) + imag(a)*imag(b)
			im := imag(a)*real(b) - real(a)*imag(b)
			m := float32(math.Sqrt(float64(re*re+im*im))) + 1e-6
			p[x] = complex(re/m, im/m)
		}
	}
	f.inverse(p, sc.row, sc.col)
	best, bi := float32(math.Inf(-1)), 0
	for i, c := range p {
		if real(c) > best {
			best, bi = real(c), i
		}
	}
	px, py := bi%w, bi/w
	at := func(x, y int) float64 { return float64(real(p[(y+h)%h*w+(x+w)%w])) }
	c := at(px, py)
	dx = float64(px) + parabola(at(px-1, py), c, at(px+1, py))
	dy = float64(py) + parabola(at(px, py-1), c, at(px, py+1))
	if dx >= float64(w)/2 {
		dx -= float64(w)
	}
	if dy >= float64(h)/2 {
		dy -= float64(h)
	}
	return dx, dy
}

// parabola returns the offset, within half a cell, of the vertex of the
// parabola through (-1, a), (0, b), (1, c), b the largest.
func parabola(a, b, c float64) float64 {
	d := a - 2*b + c
	if d >= 0 {
		return 0
	}
	return min(max((a-c)/(2*d), -0.5), 0.5)
}

// warp sets sc.warped to the frame's gradients sc.grad at the reference's
// place: grid point p takes the frame's at c + scale·Rot(angle)·(p − c) +
// (tx, ty), interpolated, or the frame's mean where that falls outside,
// as sc.inside records.
func (v *View) warp(sc *viewScratch, scale, angle, tx, ty float64) {
	gw, gh := v.gw, v.gh
	var sum float32
	for _, g := range sc.grad {
		sum += g
	}
	mean := sum / float32(len(sc.grad))
	sin, cos := math.Sincos(angle)
	a, b := float32(scale*cos), float32(scale*sin)
	cx, cy := float32(gw)/2, float32(gh)/2
	g := sc.grad
	maxX, maxY := float32(gw-1), float32(gh-1)
	for y := range gh {
		dy := float32(y) + 0.5 - cy
		dx := 0.5 - cx
		// Rot(angle), counterclockwise on screen with y down, from x = 0
		// on in steps of (a, −b).
		sx := cx + a*dx + b*dy + float32(tx) - 0.5
		sy := cy - b*dx + a*dy + float32(ty) - 0.5
		warped := sc.warped[y*gw : (y+1)*gw]
		inside := sc.inside[y*gw : (y+1)*gw]
		inside = inside[:len(warped)]
		for x := range warped {
			if sx >= 0 && sy >= 0 && sx < maxX && sy < maxY {
				x0, y0 := int(sx), int(sy)
				fx, fy := sx-float32(x0), sy-float32(y0)
				j := y0*gw + x0
				p := g[j : j+gw+2 : j+gw+2]
				warped[x] = (p[0]*(1-fx)+p[1]*fx)*(1-fy) + (p[gw]*(1-fx)+p[gw+1]*fx)*fy
				inside[x] = true
			} else {
				warped[x], inside[x] = mean, false
			}
			sx += a
			sy -= b
		}
	}
}

// matchRatio returns the share of the reference's structured blocks whose
// gradients correlate with sc.warped's by blockMatch or more, a block
// three quarters outside the frame counting as not found.
func (v *View) matchRatio(sc *viewScratch) float64 {
	found := 0
	gw := v.gw
	for _, b := range v.blocks {
		var n int
		var sa, sb, saa, sbb, sab float32
		for y := range blockSize {
			i := int(b) + y*gw
			for x := i; x < i+blockSize; x++ {
				if !sc.inside[x] {
					continue
				}
				p, q := v.refGrad[x], sc.warped[x]
				n++
				sa += p
				sb += q
				saa += p * p
				sbb += q * q
				sab += p * q
			}
		}
		if n < blockSize*blockSize/4 {
			continue
		}
		fn := float32(n)
		va, vb := saa-sa*sa/fn, sbb-sb*sb/fn
		if va <= 0 || vb <= 0 {
			continue
		}
		if (sab-sa*sb/fn)/float32(math.Sqrt(float64(va*vb))) >= blockMatch {
			found++
		}
	}
	return float64(found) / float64(len(v.blocks))
}

// resampler averages a row of n values into m, each output the mean of
// the input over its share of the row (INTER_AREA's rule, for any ratio).
// Each output reads taps inputs from start on, some weights zero, so that
// the loop has a fixed length.
type resampler struct {
	taps   int
	start  []int32
	weight []float32 // taps per output
}

func newResampler(n, m int) resampler {
	f := float64(n) / float64(m)
	r := resampler{taps: int(math.Ceil(f)) + 1, start: make([]int32, m)}
	r.weight = make([]float32, m*r.taps)
	for i := range m {
		lo, hi := float64(i)*f, float64(i+1)*f
		j0 := min(int(math.Floor(lo)), n-r.taps)
		r.start[i] = int32(j0)
		for t := range r.taps {
			j := float64(j0 + t)
			if overlap := min(hi, j+1) - max(lo, j); overlap > 0 {
				r.weight[i*r.taps+t] = float32(overlap / f)
			}
		}
	}
	return r
}

// apply resamples src into dst, both read or written every stride values.
func (r resampler) apply(dst, src []float32, stride int) {
	for i, j := range r.start {
		w := r.weight[i*r.taps : (i+1)*r.taps]
		j := int(j) * stride
		var s float32
		for _, w := range w {
			s += src[j] * w
			j += stride
		}
		dst[i*stride] = s
	}
}

// fastLog is the natural logarithm of x > 0 within 2e-5: the exponent
// and a series in the mantissa m, ln m = 2 atanh((m−1)/(m+1)), a fraction
// of math.Log's time, which took a tenth of Register's.
func fastLog(x float32) float32 {
	b := math.Float32bits(x)
	e := float32(int32(b>>23) - 127)
	m := math.Float32frombits(b&0x7fffff | 0x3f800000) // in [1, 2)
	t := (m - 1) / (m + 1)                             // in [0, 1/3)
	t2 := t * t
	return e*math.Ln2 + 2*t*(1+t2*(1.0/3+t2*(1.0/5+t2*(1.0/7))))
}

// hann is the Hann window's value at sample i of n, zero just outside.
func hann(i, n int) float64 {
	return 0.5 - 0.5*math.Cos(2*math.Pi*(float64(i)+0.5)/float64(n))
}

// The direct alignment that refines the coarse registration: a pyramid of
// the signature and its halvings, each sampled at the reference's pixels
// of strongest gradient, up to levelPixels[level] of them.
const pyramidLevels = 3

var (
	levelPixels = [pyramidLevels]int{3000, 1500, 1000}
	// The Gauss–Newton iterations at most per level, finest first.
	levelIterations = [pyramidLevels]int{8, 8, 6}
)

// coarseScales are the zooms the coarse registration tries after the
// Fourier–Mellin estimate, nearest the usual first, each with its
// translation: the log-polar spectrum of a real scene (sky, lawn, road) is
// too smooth to be trusted alone. Neighbours are 8% apart, well within
// what the alignment converges from.
var coarseScales = []float64{0.93, 1.08, 0.86, 1.16, 0.8, 1.25}

// The scales the alignment keeps to, and Register reads: beyond what a
// camera's zoom does between two readings of a fixed camera, and away from
// the degenerate 0.
const minScale, maxScale = 0.5, 2

// refineSlack is how much of the MatchRatio the refinement may lose, a
// block or two of rounding, before the coarse registration is kept
// instead.
const refineSlack = 0.03

// foundMatch is the MatchRatio from which a candidate is taken without
// trying the others: wrong ones, measured on the tests' scenes and
// footage, stay under 0.3.
const foundMatch = 0.5

// pyramidLevel is one level of the pyramid: w x h pixels, each fx by fy
// signature columns (the refinement's unit of length, square pixels).
type pyramidLevel struct {
	w, h   int
	fx, fy float64
}

// refPixel is a reference pixel the alignment compares: its offset from
// the picture's centre, in signature columns, its luma and its gradient,
// in levels per signature column.
type refPixel struct {
	dx, dy, t, gx, gy float32
}

// similarity maps the reference's point c + d to the frame's
// c + [a b; −b a]·d + (tx, ty), in signature columns, and the reference's
// luma t to the frame's gain·t + bias.
type similarity struct {
	a, b, tx, ty, gain, bias float64
}

// initPyramid sets the levels' sizes and, from the reference's luma in
// levels (sc.sig), their reference pixels.
func (v *View) initPyramid(sc *viewScratch, py float64) {
	const sw, sh = imagestats.SignatureWidth, imagestats.SignatureHeight
	v.cx, v.cy = sw/2.0, sh*py/2
	w, h := sw, sh
	for l := range pyramidLevels {
		f := float64(int(1) << l)
		v.levels[l] = pyramidLevel{w: w, h: h, fx: f, fy: f * py}
		w, h = w/2, h/2
	}
	v.pyramid(sc)
	type candidate struct {
		p refPixel
		m float32
	}
	for l, lv := range v.levels {
		lum := sc.pyr[l]
		var cands []candidate
		for y := 1; y < lv.h-1; y++ {
			for x := 1; x < lv.w-1; x++ {
				i := y*lv.w + x
				gx := (lum[i+1] - lum[i-1]) / float32(2*lv.fx)
				gy := (lum[i+lv.w] - lum[i-lv.w]) / float32(2*lv.fy)
				m := gx*gx + gy*gy
				if m == 0 {
					continue
				}
				cands = append(cands, candidate{refPixel{
					dx: float32((float64(x)+0.5)*lv.fx - v.cx),
					dy: float32((float64(y)+0.5)*lv.fy - v.cy),
					t:  lum[i], gx: gx, gy: gy,
				}, m})
			}
		}
		slices.SortStableFunc(cands, func(a, b candidate) int {
			switch {
			case a.m > b.m:
				return -1
			case a.m < b.m:
				return 1
			}
			return 0
		})
		cands = cands[:min(len(cands), levelPixels[l])]
		v.refPixels[l] = make([]refPixel, len(cands))
		for i, c := range cands {
			v.refPixels[l][i] = c.p
		}
	}
}

// pyramid sets sc.pyr from sc.sig: each level smoothed by a 1-2-1 kernel,
// the next the 2x2 mean of the last.
func (v *View) pyramid(sc *viewScratch) {
	copy(sc.pyr[0], sc.sig)
	for l, lv := range v.levels {
		if l > 0 {
			prev, pw := sc.pyr[l-1], v.levels[l-1].w
			dst := sc.pyr[l]
			for y := range lv.h {
				r0, r1 := prev[2*y*pw:], prev[(2*y+1)*pw:]
				for x := range lv.w {
					dst[y*lv.w+x] = (r0[2*x] + r0[2*x+1] + r1[2*x] + r1[2*x+1]) / 4
				}
			}
		}
		smooth(sc.pyr[l], sc.tmpPyr[:lv.w*lv.h], lv.w, lv.h)
		markFlat(sc.flat[l][:lv.w*lv.h], sc.pyr[l], lv.w, lv.h)
	}
}

// flatLevels is the sum of a pixel's central differences, in levels,
// under which it has no structure: a card or a hand over the lens. The
// reference's strongest pixels that fall there are treated as outside the
// frame, since a flat cover over most of them fits a gain of 0 better
// than the view fits any.
const flatLevels = 0.5

// markFlat sets flat for the pixels of the w x h picture p whose central
// differences add up to less than flatLevels.
func markFlat(flat []bool, p []float32, w, h int) {
	for y := range h {
		up, down := p[max(y-1, 0)*w:], p[min(y+1, h-1)*w:]
		row := p[y*w : (y+1)*w]
		for x := range row {
			d := abs32(row[min(x+1, w-1)]-row[max(x-1, 0)]) + abs32(down[x]-up[x])
			flat[y*w+x] = d < flatLevels
		}
	}
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// smooth blurs a w x h picture by a separable 1-2-1 kernel, the edges
// extended, tmp being scratch of its size.
func smooth(p, tmp []float32, w, h int) {
	for y := range h {
		row, out := p[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		for x := range w {
			out[x] = (row[max(x-1, 0)] + 2*row[x] + row[min(x+1, w-1)]) / 4
		}
	}
	for y := range h {
		up, mid, down := tmp[max(y-1, 0)*w:], tmp[y*w:], tmp[min(y+1, h-1)*w:]
		out := p[y*w : (y+1)*w]
		for x := range out {
			out[x] = (up[x] + 2*mid[x] + down[x]) / 4
		}
	}
}

// sampler reads a level of the frame's pyramid where a similarity takes
// the reference's pixels: at column u0 + ux·dx + uy·dy, row
// w0 + wx·dx + wy·dy for the pixel at offset (dx, dy).
type sampler struct {
	lum                    []float32
	flat                   []bool
	w                      int
	maxU, maxW             float32
	u0, ux, uy, w0, wx, wy float32
}

func (v *View) sampler(sc *viewScratch, l int, s *similarity) sampler {
	lv := v.levels[l]
	return sampler{
		lum: sc.pyr[l], flat: sc.flat[l], w: lv.w, maxU: float32(lv.w - 1), maxW: float32(lv.h - 1),
		u0: float32((v.cx+s.tx)/lv.fx - 0.5), ux: float32(s.a / lv.fx), uy: float32(s.b / lv.fx),
		w0: float32((v.cy+s.ty)/lv.fy - 0.5), wx: float32(-s.b / lv.fy), wy: float32(s.a / lv.fy),
	}
}

// at returns the frame's luma, interpolated, where the reference's pixel q
// falls, and whether that is inside the frame and not flat there.
func (p *sampler) at(q *refPixel) (float32, bool) {
	u := p.u0 + p.ux*q.dx + p.uy*q.dy
	w := p.w0 + p.wx*q.dx + p.wy*q.dy
	if !(u >= 0 && w >= 0 && u < p.maxU && w < p.maxW) {
		return 0, false
	}
	x0, y0 := int(u), int(w)
	fx, fy := u-float32(x0), w-float32(y0)
	j := y0*p.w + x0
	if p.flat[j] {
		return 0, false
	}
	l := p.lum[j : j+p.w+2 : j+p.w+2]
	return (l[0]*(1-fx)+l[1]*fx)*(1-fy) + (l[p.w]*(1-fx)+l[p.w+1]*fx)*fy, true
}

// fitLight sets s's gain and bias to the fit of the frame's luma, at level
// l where s takes the reference's pixels, to theirs: least squares, then
// again over the pixels whose residual is under the median, twice, so
// that a card over part of the lens, or people, do not pull the light.
func (v *View) fitLight(sc *viewScratch, l int, s *similarity) {
	ref := v.refPixels[l]
	frame := sc.residual[:len(ref)]
	p := v.sampler(sc, l, s)
	for k := range ref {
		i, ok := p.at(&ref[k])
		if !ok {
			i = float32(math.NaN())
		}
		frame[k] = i
	}
	s.gain, s.bias = 1, 0
	limit := float32(math.Inf(1))
	const rounds = 3
	for round := range rounds {
		var n, st, si, stt, sti float64
		for k, i := range frame {
			if i != i {
				continue
			}
			t := float64(ref[k].t)
			if round > 0 && float32(math.Abs(float64(i)-s.gain*t-s.bias)) > limit {
				continue
			}
			n++
			st += t
			si += float64(i)
			stt += t * t
			sti += t * float64(i)
		}
		d := n*stt - st*st
		if !(n > 0 && d > 0) {
			return
		}
		s.gain = (n*sti - st*si) / d
		s.bias = (si - s.gain*st) / n
		if round == rounds-1 {
			return
		}
		abs := sc.abs[:0]
		for k, i := range frame {
			if i == i {
				abs = append(abs, float32(math.Abs(float64(i)-s.gain*float64(ref[k].t)-s.bias)))
			}
		}
		limit = median(abs)
	}
}

// align refines s at level l by iteratively reweighted Gauss–Newton: the
// frame's luma where s takes each reference pixel, less the reference's
// under s's light, weighted by Tukey's biweight of the residual over its
// median absolute value, so that people and cars that were not there, or
// are no more, do not pull the view. A step that would take the scale
// out of minScale to maxScale, or leave too few pixels inside the frame,
// ends it.
func (v *View) align(sc *viewScratch, l int, s *similarity, iterations int) {
	lv, ref := v.levels[l], v.refPixels[l]
	res := sc.residual[:len(ref)]
	for range iterations {
		abs := sc.abs[:0]
		p := v.sampler(sc, l, s)
		for k := range ref {
			i, ok := p.at(&ref[k])
			if !ok {
				res[k] = float32(math.NaN())
				continue
			}
			r := i - float32(s.gain)*ref[k].t - float32(s.bias)
			res[k] = r
			if k%3 == 0 { // enough for the median
				abs = append(abs, float32(math.Abs(float64(r))))
			}
		}
		if len(abs) == 0 || len(abs) < len(ref)/15 {
			return
		}
		sigma := max(1.4826*float64(median(abs)), 0.5)
		c2 := float32(4.685 * 4.685 * sigma * sigma)
		// The normal equations' sums, float32 per pixel into float64
		// totals: the lower triangle of JᵀWJ, row by row, then JᵀWr.
		var sum [27]float64
		n2 := s.a*s.a + s.b*s.b
		ga, gb := float32(s.gain*s.a/n2), float32(s.gain*s.b/n2)
		for k, q := range ref {
			r := res[k]
			if r != r || r*r >= c2 {
				continue
			}
			wt := 1 - r*r/c2
			wt *= wt
			// The frame's gradient where s takes q, from the reference's:
			// gain·A^−T·∇t.
			gx, gy := ga*q.gx+gb*q.gy, -gb*q.gx+ga*q.gy
			j0, j1, j2, j3, j4 := gx*q.dx+gy*q.dy, gx*q.dy-gy*q.dx, gx, gy, -q.t
			w0, w1, w2, w3, w4, w5 := wt*j0, wt*j1, wt*j2, wt*j3, wt*j4, -wt
			sum[0] += float64(w0 * j0)
			sum[1] += float64(w1 * j0)
			sum[2] += float64(w1 * j1)
			sum[3] += float64(w2 * j0)
			sum[4] += float64(w2 * j1)
			sum[5] += float64(w2 * j2)
			sum[6] += float64(w3 * j0)
			sum[7] += float64(w3 * j1)
			sum[8] += float64(w3 * j2)
			sum[9] += float64(w3 * j3)
			sum[10] += float64(w4 * j0)
			sum[11] += float64(w4 * j1)
			sum[12] += float64(w4 * j2)
			sum[13] += float64(w4 * j3)
			sum[14] += float64(w4 * j4)
			sum[15] += float64(w5 * j0)
			sum[16] += float64(w5 * j1)
			sum[17] += float64(w5 * j2)
			sum[18] += float64(w5 * j3)
			sum[19] += float64(w5 * j4)
			sum[20] += float64(wt)
			sum[21] += float64(w0 * r)
			sum[22] += float64(w1 * r)
			sum[23] += float64(w2 * r)
			sum[24] += float64(w3 * r)
			sum[25] += float64(w4 * r)
			sum[26] += float64(w5 * r)
		}
		var h [6][6]float64
		var g [6]float64
		k := 0
		for a := range 6 {
			for b := 0; b <= a; b++ {
				h[a][b] = sum[k]
				k++
			}
		}
		copy(g[:], sum[21:])
		d, ok := solve6(&h, &g)
		if !ok {
			break
		}
		next := similarity{s.a - d[0], s.b - d[1], s.tx - d[2], s.ty - d[3], s.gain - d[4], s.bias - d[5]}
		if scale := math.Hypot(next.a, next.b); !(scale >= minScale && scale <= maxScale) ||
			math.IsNaN(next.tx+next.ty+next.gain+next.bias) {
			return
		}
		*s = next
		// Converged when no corner moves by a twentieth of a pixel.
		if math.Abs(d[0])*v.cx+math.Abs(d[1])*v.cy+math.Abs(d[2]) < 0.05*lv.fx &&
			math.Abs(d[1])*v.cx+math.Abs(d[0])*v.cy+math.Abs(d[3]) < 0.05*lv.fy {
			break
		}
	}
}

// solve6 solves h·d = g for d, h symmetric positive definite given by its
// lower triangle, by Cholesky's decomposition (in place); false if h is
// singular.
func solve6(h *[6][6]float64, g *[6]float64) ([6]float64, bool) {
	var d [6]float64
	for i := range 6 {
		for j := 0; j <= i; j++ {
			s := h[i][j]
			for k := range j {
				s -= h[i][k] * h[j][k]
			}
			if i == j {
				if !(s > 1e-9) {
					return d, false
				}
				h[i][i] = math.Sqrt(s)
			} else {
				h[i][j] = s / h[j][j]
			}
		}
	}
	for i := range 6 {
		s := g[i]
		for k := range i {
			s -= h[i][k] * d[k]
		}
		d[i] = s / h[i][i]
	}
	for i := 5; i >= 0; i-- {
		s := d[i]
		for k := i + 1; k < 6; k++ {
			s -= h[k][i] * d[k]
		}
		d[i] = s / h[i][i]
	}
	return d, true
}

// median returns the median of x, reordering it (Hoare's selection).
func median(x []float32) float32 {
	k := len(x) / 2
	lo, hi := 0, len(x)-1
	for lo < hi {
		p := x[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for x[i] < p {
				i++
			}
			for x[j] > p {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return x[k]
		}
	}
	return x[k]
}
