package media

import (
	"math"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Loudness normalisation.
//
// Every clip is measured when it is converted, as integrated loudness per
// ITU-R BS.1770-4 (the measure of EBU R128), and given the gain that would
// bring it to a common target, so that a recorded announcement, a phone
// recording and a synthesized notice sound equally loud on a box at the
// same volume setting. The clip itself is stored as uploaded; the gain is
// metadata for whoever plays it.
//
// The target is -16 LUFS, not the -23 LUFS of EBU R128. R128's level is
// for broadcast programmes heard over a calibrated chain with room for
// wide dynamics; a village loudspeaker plays speech outdoors against
// wind, traffic and livestock, where a denser, louder level carries
// better. -16 LUFS is the level commonly used for spoken word on phones
// and podcasts (AES TD1004 recommends -16 to -20), and with speech's
// usual 10-15 dB between loudness and true peak it still leaves the
// headroom below.
const (
	// DefaultTargetLUFS is the loudness clips are normalised to.
	DefaultTargetLUFS = -16.0
	// MaxGainDB bounds the gain either way: a clip that needs more than
	// 20 dB is mostly noise or silence, and raising it that far would
	// raise its hiss and hum as much.
	MaxGainDB = 20.0
	// HeadroomDB is kept between the clip's true peak after the gain and
	// full scale, so applying the gain never clips.
	HeadroomDB = 1.0
)

// BS.1770-4 gating and calibration.
const (
	absoluteGate = -70.0  // LUFS: blocks quieter than this are silence
	relativeGate = -10.0  // LU below the absolutely gated loudness
	lufsOffset   = -0.691 // makes a 997 Hz sine read its RMS level in mono
)

// ErrSilent is returned for a clip in which nothing is louder than the
// absolute gate of BS.1770 (-70 LUFS): it would play as silence.
var ErrSilent = cx.Errorf(cx.EINVALID, "the recording is silent: no part of it is louder than %.0f LUFS; check the microphone and record it again", absoluteGate).With(api.ReasonAudioSilent)

// Loudness measures 16-bit mono samples at rate Hz: their integrated
// loudness per ITU-R BS.1770-4 (K-weighting, 400 ms blocks every 100 ms,
// absolute gate -70 LUFS, relative gate -10 LU) and their true peak in
// dB relative to full scale (4× oversampled as in BS.1770-4 Annex 2; never
// below the sample peak). A clip shorter than one 400 ms block is
// measured as a single block. For a clip with nothing above the absolute
// gate, lufs is -Inf and err is ErrSilent; peakDBFS is still measured
// (-Inf for digital silence).
func Loudness(pcm []int16, rate int) (lufs float64, peakDBFS float64, err error) {
	if rate < minSampleRate || rate > maxSampleRate {
		return math.Inf(-1), math.Inf(-1), invalid("the sample rate is %d Hz; only %d to %d Hz can be measured", rate, minSampleRate, maxSampleRate)
	}
	if len(pcm) == 0 {
		return math.Inf(-1), math.Inf(-1), invalid("the recording is empty: it holds no audio samples")
	}
	m := newMeter(rate)
	for _, v := range pcm {
		m.add(float64(v) / 32768)
	}
	return m.result()
}

// Gain is the gain in dB that brings a clip of loudness lufs to target,
// held to ±MaxGainDB and lowered where needed so that the clip's true
// peak stays HeadroomDB below full scale. It is rounded to 0.01 dB.
func Gain(lufs, peakDBFS, target float64) float64 {
	if math.IsInf(lufs, 0) || math.IsNaN(lufs) {
		return 0
	}
	g := max(-MaxGainDB, min(MaxGainDB, target-lufs))
	if !math.IsInf(peakDBFS, -1) {
		g = min(g, -HeadroomDB-peakDBFS)
	}
	return math.Round(g*100) / 100
}

// biquad is a second-order IIR section in transposed direct form II.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	z1, z2             float64
}

func (f *biquad) step(x float64) float64 {
	y := f.b0*x + f.z1
	f.z1 = f.b1*x - f.a1*y + f.z2
	f.z2 = f.b2*x - f.a2*y
	return y
}

// kWeighting returns the two stages of the BS.1770 K-weighting filter at
// rate Hz. The standard tabulates them only for 48 kHz; these are the
// analogue prototypes behind that table (a high shelf of +4 dB above
// about 1.7 kHz modelling the head, and the RLB high-pass at 38 Hz)
// brought to the given rate by the bilinear transform, as libebur128
// does. At 48 kHz they reproduce the table (TestKWeightingAt48kHz).
func kWeighting(rate int) (shelf, highpass biquad) {
	fs := float64(rate)

	const (
		f0 = 1681.974450955533
		g  = 3.999843853973347 // dB
		q  = 0.7071752369554196
	)
	k := math.Tan(math.Pi * f0 / fs)
	vh := math.Pow(10, g/20)
	vb := math.Pow(vh, 0.4996667741545416)
	a0 := 1 + k/q + k*k
	shelf = biquad{
		b0: (vh + vb*k/q + k*k) / a0,
		b1: 2 * (k*k - vh) / a0,
		b2: (vh - vb*k/q + k*k) / a0,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/q + k*k) / a0,
	}

	const (
		f1 = 38.13547087602444
		q1 = 0.5003270373238773
	)
	k = math.Tan(math.Pi * f1 / fs)
	a0 = 1 + k/q1 + k*k
	// The numerator is left as 1, -2, 1, as in the standard's table.
	highpass = biquad{
		b0: 1, b1: -2, b2: 1,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/q1 + k*k) / a0,
	}
	return shelf, highpass
}

// truePeakTaps is the interpolation filter of BS.1770-4 Annex 2: 48 taps
// in 4 phases of 12, each phase giving the signal at a quarter-sample
// offset.
var truePeakTaps = [4][12]float64{
	{0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625, 0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500},
	{-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250, 0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375},
	{-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500, 0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875},
	{-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500, 0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750},
}

// meter measures loudness and true peak of a mono stream, sample by
// sample, keeping only one energy sum per 100 ms (36,000 for an hour).
type meter struct {
	shelf, highpass biquad
	stepLen         int       // samples in 100 ms
	steps           []float64 // energy (sum of squares) of each whole 100 ms step
	cur             float64   // energy of the step being filled
	curN            int
	total           float64 // energy of everything, for clips shorter than a block
	n               int64

	hist [24]float64 // the last 12 samples, twice, so a window is contiguous
	pos  int
	peak float64 // largest absolute value, sampled or interpolated
}

func newMeter(rate int) *meter {
	m := &meter{stepLen: (rate + 5) / 10}
	m.shelf, m.highpass = kWeighting(rate)
	return m
}

// add takes one sample, full scale ±1.
func (m *meter) add(x float64) {
	y := m.highpass.step(m.shelf.step(x))
	e := y * y
	m.cur += e
	m.total += e
	m.n++
	if m.curN++; m.curN == m.stepLen {
		m.steps = append(m.steps, m.cur)
		m.cur, m.curN = 0, 0
	}
	m.peakAdd(x)
}

func (m *meter) addInts(v []int) {
	for _, s := range v {
		m.add(float64(s) / 32768)
	}
}

func (m *meter) peakAdd(x float64) {
	m.peak = max(m.peak, math.Abs(x))
	m.hist[m.pos], m.hist[m.pos+12] = x, x
	m.pos = (m.pos + 1) % 12
	win := m.hist[m.pos : m.pos+12] // oldest first
	for _, taps := range truePeakTaps {
		var y float64
		for i, t := range taps {
			y += t * win[11-i]
		}
		m.peak = max(m.peak, math.Abs(y))
	}
}

// result ends the measurement.
func (m *meter) result() (lufs, peakDBFS float64, err error) {
	// Let the interpolator run past the last sample.
	for range 12 {
		m.peakAdd(0)
	}
	peakDBFS = 20 * math.Log10(m.peak)
	if m.n == 0 {
		return math.Inf(-1), peakDBFS, invalid("the recording is empty: it holds no audio samples")
	}
	var blocks []float64 // mean square of each 400 ms block
	if len(m.steps) < 4 {
		blocks = []float64{m.total / float64(m.n)}
	} else {
		blocks = make([]float64, 0, len(m.steps)-3)
		for i := 3; i < len(m.steps); i++ {
			e := m.steps[i-3] + m.steps[i-2] + m.steps[i-1] + m.steps[i]
			blocks = append(blocks, e/float64(4*m.stepLen))
		}
	}
	gated := func(threshold float64) (mean float64, n int) {
		var sum float64
		for _, z := range blocks {
			if z > 0 && loudness(z) > threshold {
				sum += z
				n++
			}
		}
		if n == 0 {
			return 0, 0
		}
		return sum / float64(n), n
	}
	za, n := gated(absoluteGate)
	if n == 0 {
		return math.Inf(-1), peakDBFS, ErrSilent
	}
	zr, _ := gated(max(absoluteGate, loudness(za)+relativeGate))
	return loudness(zr), peakDBFS, nil
}

func loudness(meanSquare float64) float64 { return lufsOffset + 10*math.Log10(meanSquare) }
