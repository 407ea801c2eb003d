// Package media turns uploaded recordings into clips of the audio library.
//
// Every clip is kept in the one playback format of the system
// (playlists.SampleRate Hz, mono, 16-bit PCM) as a canonical WAV named by
// the sha256 of its bytes, so a box opens its output once at that format
// and can check every download. An upload (integer PCM WAV or MP3, told
// apart by content, not by name) is decoded completely before it is
// accepted; anything else, or anything cut short, damaged, empty, silent
// or too large, is refused with a message a clerk can act on. Each clip
// is measured for loudness (ITU-R BS.1770-4) and carries the gain that
// brings it to a common level; see Loudness.
package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
	"github.com/gopxl/beep/v2"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Defaults of Options.
const (
	DefaultMaxBytes    = 50 << 20
	DefaultMaxDuration = time.Hour
)

// Options configure a Library. The zero value works: clips go to ./audio.
type Options struct {
	// Dir holds the clips, <data>/audio. It is created if missing.
	Dir string
	// MaxBytes is the largest upload accepted (DefaultMaxBytes if 0).
	MaxBytes int64
	// MaxDuration is the longest recording accepted (DefaultMaxDuration
	// if 0). It also bounds the size of a converted clip.
	MaxDuration time.Duration
	// TargetLUFS is the loudness the clips' GainDB aims at
	// (DefaultTargetLUFS if 0).
	TargetLUFS float64
	Logger     *slog.Logger
}

// Library is the directory of converted clips.
type Library struct {
	dir         string
	maxBytes    int64
	maxDuration time.Duration
	target      float64
	log         *slog.Logger
}

// New returns a Library, creating its directory.
func New(o Options) (*Library, error) {
	l := &Library{dir: o.Dir, maxBytes: o.MaxBytes, maxDuration: o.MaxDuration, target: o.TargetLUFS, log: o.Logger}
	if l.target == 0 {
		l.target = DefaultTargetLUFS
	}
	if l.dir == "" {
		l.dir = "audio"
	}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.maxDuration <= 0 {
		l.maxDuration = DefaultMaxDuration
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("component", "media")
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return nil, fmt.Errorf("media dir: %w", err)
	}
	return l, nil
}

// MaxBytes is the largest upload the library accepts.
func (l *Library) MaxBytes() int64 { return l.maxBytes }

// Clip describes a recording converted to the playback format.
type Clip struct {
	SHA256     string
	DurationMS int64
	SampleRate int
	Channels   int
	SizeBytes  int64
	// Source is the format of the upload before conversion.
	Source Format
	// LoudnessLUFS is the clip's integrated loudness (ITU-R BS.1770-4)
	// and PeakDBFS its true peak, as stored.
	LoudnessLUFS float64
	PeakDBFS     float64
	// GainDB brings the clip to the library's target loudness without
	// its peaks going above -1 dBFS (see Gain). It is not applied to the
	// stored samples; a player applies it.
	GainDB float64
}

// Pending is a converted clip written to a temporary file in the library's
// directory, not yet part of the library: Commit puts it in place, Discard
// removes it. Exactly one of them must be called.
type Pending struct {
	Clip
	tmp  string
	path string
}

// Commit moves the clip into the library under its sha256. A clip already
// there has the same bytes, so replacing it changes nothing.
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("store clip: %w", err)
	}
	return nil
}

// Discard removes the temporary file.
func (p *Pending) Discard() { os.Remove(p.tmp) }

// Prepare reads an upload (at most MaxBytes), decodes it fully, converts it
// to the playback format and writes it to a temporary file. On any error
// nothing is left behind.
//
// The upload is spooled to a temporary file in the library's directory as
// it arrives and decoded from there (mapped, not read into the heap), so
// the memory an upload costs does not grow with its size.
func (l *Library) Prepare(ctx context.Context, r io.Reader) (*Pending, error) {
	spool, err := os.CreateTemp(l.dir, ".upload-src-*")
	if err != nil {
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	size, err := io.Copy(spool, io.LimitReader(r, l.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	if size > l.maxBytes {
		return nil, l.tooLarge()
	}
	data, unmap, err := mapFile(spool, size)
	if err != nil {
		return nil, err
	}
	defer unmap()
	f, err := os.CreateTemp(l.dir, ".upload-*.wav")
	if err != nil {
		return nil, fmt.Errorf("temp clip: %w", err)
	}
	p := &Pending{tmp: f.Name()}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(p.tmp)
		}
	}()
	res, err := convert(ctx, data, spool, f, l.maxDuration)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("hash clip: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("hash clip: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write clip: %w", err)
	}
	p.Clip = Clip{
		SHA256:     hex.EncodeToString(h.Sum(nil)),
		DurationMS: res.frames * 1000 / playlists.SampleRate,
		SampleRate: playlists.SampleRate,
		Channels:   playlists.Channels,
		SizeBytes:  n,
		Source:     res.source,

		LoudnessLUFS: math.Round(res.lufs*100) / 100,
		PeakDBFS:     math.Round(res.peak*100) / 100,
		GainDB:       Gain(res.lufs, res.peak, l.target),
	}
	p.path = filepath.Join(l.dir, p.SHA256+".wav")
	ok = true
	l.log.Debug("converted upload", "from", res.source.String(), "bytes_in", size, "bytes_out", n, "duration_ms", p.DurationMS, "sha256", p.SHA256,
		"lufs", p.LoudnessLUFS, "peak_dbfs", p.PeakDBFS, "gain_db", p.GainDB)
	return p, nil
}

func (l *Library) tooLarge() error {
	return cx.Errorf(cx.ETOOLARGE, "the file is larger than the %s limit; upload a shorter recording, or export it as MP3, which is smaller", humanBytes(l.maxBytes)).With(api.ReasonFileTooLarge, "limit", humanBytes(l.maxBytes))
}

func humanBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Path is where the clip with this sha256 is stored.
func (l *Library) Path(sha string) (string, error) {
	if b, err := hex.DecodeString(sha); err != nil || len(b) != sha256.Size {
		return "", cx.Errorf(cx.EINVALID, "%q is not a sha256", sha).With(api.ReasonIDInvalid, "value", sha)
	}
	return filepath.Join(l.dir, sha+".wav"), nil
}

// Open opens a stored clip.
func (l *Library) Open(sha string) (*os.File, error) {
	p, err := l.Path(sha)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cx.Errorf(cx.ENOTFOUND, "the audio file of clip %s is missing from the library", sha[:12]).With(api.ReasonAudioFileMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open clip: %w", err)
	}
	return f, nil
}

// result is what a conversion produced.
type result struct {
	source     Format
	frames     int64 // output frames at playlists.SampleRate
	lufs, peak float64
}

// Convert decodes a WAV or MP3 upload completely and writes it to w as a
// canonical WAV in the playback format. A clip already in that format
// comes out sample for sample the same. It returns the output duration.
func Convert(ctx context.Context, data []byte, w io.WriteSeeker, maxDuration time.Duration) (Format, time.Duration, error) {
	res, err := convert(ctx, data, nil, w, maxDuration)
	return res.source, time.Duration(res.frames) * time.Second / playlists.SampleRate, err
}

// convert converts data; file, if not nil, holds the same bytes, and the
// samples of a WAV are read from it rather than through data, so that a
// mapped upload's pages are not all brought into memory.
func convert(ctx context.Context, data []byte, file io.ReaderAt, w io.WriteSeeker, maxDuration time.Duration) (result, error) {
	var res result
	enc := wav.NewEncoder(w, playlists.SampleRate, playlists.BitsPerSample, playlists.Channels, 1)
	out := &audio.IntBuffer{Format: &audio.Format{NumChannels: 1, SampleRate: playlists.SampleRate}, SourceBitDepth: 16}
	m := newMeter(playlists.SampleRate)
	var err error
	if sniffMP3(data) {
		res.frames, err = convertMP3(ctx, data, enc, out, m, maxDuration, &res.source)
	} else {
		res.frames, err = convertWAV(ctx, data, file, enc, out, m, maxDuration, &res.source)
	}
	if err != nil {
		return res, err
	}
	if res.frames == 0 {
		return res, invalid("the recording is empty: it holds no audio samples").With(api.ReasonAudioEmpty)
	}
	if res.lufs, res.peak, err = m.result(); err != nil {
		return res, err
	}
	if err := enc.Close(); err != nil {
		return res, fmt.Errorf("encode clip: %w", err)
	}
	return res, nil
}

func tooLong(d, maxDuration time.Duration) error {
	if maxDuration > 0 && d > maxDuration {
		return invalid("the recording is %s long; the longest accepted is %s", d.Round(time.Second), maxDuration).With(api.ReasonAudioTooLong, "seconds", int(d.Round(time.Second).Seconds()), "max_minutes", int(maxDuration.Minutes()))
	}
	return nil
}

func convertWAV(ctx context.Context, data []byte, file io.ReaderAt, enc *wav.Encoder, out *audio.IntBuffer, m *meter, maxDuration time.Duration, source *Format) (int64, error) {
	info, err := probe(data)
	if err != nil {
		return 0, err
	}
	*source = info.Format
	if err := tooLong(info.duration(), maxDuration); err != nil {
		return 0, err
	}
	// The samples are read straight from the checked data chunk: no size
	// in the upload can make the reader allocate or seek anywhere it
	// should not, and nothing is copied.
	var samples io.Reader = bytes.NewReader(info.data)
	if file != nil {
		samples = io.NewSectionReader(file, info.dataOff, int64(len(info.data)))
	}
	src := &pcmSource{ctx: ctx, r: samples, f: info.Format, want: info.frames * int64(info.Channels)}
	if info.SampleRate == playlists.SampleRate && info.Channels == 1 && info.BitsPerSample == 16 {
		return src.copyInts(enc, out, m)
	}
	want := (info.frames*playlists.SampleRate + int64(info.SampleRate) - 1) / int64(info.SampleRate)
	return writeFloats(resampler(src, info.SampleRate), enc, out, m, want)
}

func convertMP3(ctx context.Context, data []byte, enc *wav.Encoder, out *audio.IntBuffer, m *meter, maxDuration time.Duration, source *Format) (int64, error) {
	info, err := probeMP3(data)
	if err != nil {
		return 0, err
	}
	*source = info.Format
	if err := tooLong(info.duration(), maxDuration); err != nil {
		return 0, err
	}
	src, err := newMP3Source(ctx, info)
	if err != nil {
		return 0, err
	}
	want := (info.keep*playlists.SampleRate + int64(info.SampleRate) - 1) / int64(info.SampleRate)
	return writeFloats(resampler(src, info.SampleRate), enc, out, m, want)
}

// putHeader writes a canonical 44-byte PCM WAV header into b.
func putHeader(b []byte, f Format, dataLen int) {
	le := binary.LittleEndian
	copy(b[0:], "RIFF")
	le.PutUint32(b[4:], uint32(36+dataLen))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], tagPCM)
	le.PutUint16(b[22:], uint16(f.Channels))
	le.PutUint32(b[24:], uint32(f.SampleRate))
	block := f.Channels * f.BitsPerSample / 8
	le.PutUint32(b[28:], uint32(f.SampleRate*block))
	le.PutUint16(b[32:], uint16(block))
	le.PutUint16(b[34:], uint16(f.BitsPerSample))
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(dataLen))
}

const chunkFrames = 4096

// pcmSource pulls integer samples from the data chunk. As a beep.Streamer
// it yields them downmixed to mono (the average of the channels) as floats
// in [-1, 1).
type pcmSource struct {
	ctx  context.Context
	r    io.Reader // the data chunk, whole frames only
	f    Format
	want int64 // samples the data chunk holds
	got  int64
	raw  []byte
	buf  []int
	ints []int // decoded, not yet streamed (whole frames)
	err  error
}

// next returns the next decoded samples (whole frames), or nil at the end.
// Samples are as WAV stores them: 8-bit unsigned, wider ones signed, all
// little-endian.
func (s *pcmSource) next() []int {
	if s.err != nil {
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return nil
	}
	bps := s.f.BitsPerSample / 8
	if s.raw == nil {
		s.raw = make([]byte, chunkFrames*s.f.Channels*bps)
		s.buf = make([]int, chunkFrames*s.f.Channels)
	}
	m, err := io.ReadFull(s.r, s.raw)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		s.err = invalid("the audio data could not be read: %v", err)
		return nil
	}
	n := m / bps
	b := s.raw
	for i := range n {
		switch bps {
		case 1:
			s.buf[i] = int(b[i])
		case 2:
			s.buf[i] = int(int16(binary.LittleEndian.Uint16(b[2*i:])))
		case 3:
			s.buf[i] = int(int32(uint32(b[3*i])<<8|uint32(b[3*i+1])<<16|uint32(b[3*i+2])<<24) >> 8)
		case 4:
			s.buf[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	}
	s.got += int64(n)
	if n == 0 {
		if s.got != s.want {
			s.err = invalid("the file is cut short: %d of %d samples could be read", s.got, s.want)
		}
		return nil
	}
	return s.buf[:n-n%s.f.Channels]
}

// copyInts writes 16-bit mono samples straight through.
func (s *pcmSource) copyInts(enc *wav.Encoder, out *audio.IntBuffer, m *meter) (int64, error) {
	var frames int64
	for {
		d := s.next()
		if d == nil {
			return frames, s.err
		}
		out.Data = d
		m.addInts(d)
		if err := enc.Write(out); err != nil {
			return frames, fmt.Errorf("encode clip: %w", err)
		}
		frames += int64(len(d))
	}
}

// Stream implements beep.Streamer: mono samples in both channels.
func (s *pcmSource) Stream(samples [][2]float64) (n int, ok bool) {
	ch := s.f.Channels
	scale, offset := 1/float64(int64(1)<<(s.f.BitsPerSample-1)), 0.0
	if s.f.BitsPerSample == 8 {
		offset = -128 // 8-bit WAV is unsigned
	}
	for n < len(samples) {
		if len(s.ints) == 0 {
			s.ints = s.next()
			if s.ints == nil {
				return n, n > 0
			}
		}
		for len(s.ints) >= ch && n < len(samples) {
			var sum float64
			for _, v := range s.ints[:ch] {
				sum += float64(v) + offset
			}
			x := sum / float64(ch) * scale
			samples[n] = [2]float64{x, x}
			n++
			s.ints = s.ints[ch:]
		}
	}
	return n, true
}

// Err implements beep.Streamer.
func (s *pcmSource) Err() error { return s.err }

// resampler brings a mono stream at rate to playlists.SampleRate. Going
// down, a low-pass filter first removes what the lower rate cannot hold,
// which would otherwise fold back as audible aliasing; beep's resampler
// (polynomial interpolation) does not filter.
//
// beep's Resampler (v2.1.1) interpolates its last few outputs from a
// buffer it did not refill at the end of its input, which gives wild
// values; the input is therefore padded with silence and the caller cuts
// the output at the length the input implies.
func resampler(src beep.Streamer, rate int) beep.Streamer {
	if rate == playlists.SampleRate {
		return src
	}
	if rate > playlists.SampleRate {
		src = newLowpass(src, 0.45*playlists.SampleRate/float64(rate), rate)
	}
	src = &padEnd{src: src, zeros: 2048}
	return beep.Resample(6, beep.SampleRate(rate), beep.SampleRate(playlists.SampleRate), src)
}

// padEnd appends silence to a stream.
type padEnd struct {
	src   beep.Streamer
	ended bool
	zeros int
}

func (p *padEnd) Stream(samples [][2]float64) (n int, ok bool) {
	if !p.ended {
		n, ok = p.src.Stream(samples)
		if ok && n > 0 {
			return n, true
		}
		p.ended = true
	}
	for n < len(samples) && p.zeros > 0 {
		samples[n] = [2]float64{}
		n++
		p.zeros--
	}
	return n, n > 0
}

func (p *padEnd) Err() error { return p.src.Err() }

// writeFloats quantizes a float stream to 16 bits and encodes (and
// measures) at most limit frames of it.
func writeFloats(s beep.Streamer, enc *wav.Encoder, out *audio.IntBuffer, m *meter, limit int64) (int64, error) {
	var frames int64
	buf := make([][2]float64, chunkFrames)
	ints := make([]int, chunkFrames)
	for frames < limit {
		n, ok := s.Stream(buf[:min(int64(len(buf)), limit-frames)])
		for i := range n {
			v := math.Round(buf[i][0] * 32768)
			ints[i] = int(max(-32768, min(32767, v)))
		}
		if n > 0 {
			out.Data = ints[:n]
			m.addInts(out.Data)
			if err := enc.Write(out); err != nil {
				return frames, fmt.Errorf("encode clip: %w", err)
			}
			frames += int64(n)
		}
		if !ok || n == 0 {
			break
		}
	}
	return frames, s.Err()
}

// lowpass is a windowed-sinc FIR filter, as a streamer. Its output is
// aligned with its input: the filter's delay is skipped at the start and
// flushed with silence at the end.
type lowpass struct {
	src   beep.Streamer
	taps  []float64
	hist  []float64 // the last len(taps) inputs, twice, so a window is contiguous
	pos   int
	skip  int // outputs still to drop (the filter's delay)
	flush int // zeros still to feed after the input ended
	ended bool
	in    [][2]float64
	inN   int
	inAt  int
}

// newLowpass filters below cutoff (a fraction of the sample rate).
func newLowpass(src beep.Streamer, cutoff float64, rate int) *lowpass {
	// About 3 ms of taps, odd, between 31 and 255: enough for a sharp
	// edge below 11 kHz at any rate this system takes.
	n := min(255, max(31, rate*3/1000)) | 1
	taps := make([]float64, n)
	mid := n / 2
	var sum float64
	for i := range taps {
		x := float64(i - mid)
		sinc := 2 * cutoff
		if x != 0 {
			sinc = math.Sin(2*math.Pi*cutoff*x) / (math.Pi * x)
		}
		// Blackman window
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1)) + 0.08*math.Cos(4*math.Pi*float64(i)/float64(n-1))
		taps[i] = sinc * w
		sum += taps[i]
	}
	for i := range taps {
		taps[i] /= sum // unity gain at DC
	}
	return &lowpass{src: src, taps: taps, hist: make([]float64, 2*n), skip: mid, flush: mid, in: make([][2]float64, chunkFrames)}
}

func (f *lowpass) input() (float64, bool) {
	if f.inAt == f.inN && !f.ended {
		f.inN, _ = f.src.Stream(f.in)
		f.inAt = 0
		if f.inN == 0 {
			f.ended = true
		}
	}
	if f.inAt < f.inN {
		x := f.in[f.inAt][0]
		f.inAt++
		return x, true
	}
	if f.flush > 0 {
		f.flush--
		return 0, true
	}
	return 0, false
}

// Stream implements beep.Streamer.
func (f *lowpass) Stream(samples [][2]float64) (n int, ok bool) {
	k := len(f.taps)
	for n < len(samples) {
		x, more := f.input()
		if !more {
			return n, n > 0
		}
		f.hist[f.pos], f.hist[f.pos+k] = x, x
		f.pos = (f.pos + 1) % k
		if f.skip > 0 {
			f.skip--
			continue
		}
		// hist[pos:pos+k] is the window, oldest first.
		win := f.hist[f.pos : f.pos+k]
		var y float64
		for i, t := range f.taps {
			y += t * win[i]
		}
		samples[n] = [2]float64{y, y}
		n++
	}
	return n, true
}

// Err implements beep.Streamer.
func (f *lowpass) Err() error { return f.src.Err() }
