package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	mp3 "github.com/hajimehoshi/go-mp3"
)

// MP3 uploads are checked frame by frame before any decoding, the way
// probe checks a WAV's chunks: every frame must be whole and of the same
// format, from the first to the last, with nothing but tags around them.
// go-mp3 on its own takes a cut-off last frame for the end of the file
// and skips garbage silently looking for the next frame, so a damaged
// upload would otherwise be accepted shorter or with a gap.

// mpegHeader is the 4-byte header of an MPEG audio frame.
type mpegHeader struct {
	version int // 1 (MPEG-1), 2 (MPEG-2) or 25 (MPEG-2.5)
	layer   int // 1, 2 or 3
	crc     bool
	brIndex int
	rate    int
	padding bool
	mono    bool
}

const (
	codecWAV = "wav"
	codecMP3 = "mp3"
)

// layer3Kbps are the Layer III bitrates by index: MPEG-1, then MPEG-2
// and 2.5. Index 0 is free format.
var layer3Kbps = [2][15]int{
	{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
}

// parseMPEGHeader reads a frame header, reporting whether it is one at all.
func parseMPEGHeader(b []byte) (mpegHeader, bool) {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return mpegHeader{}, false
	}
	var h mpegHeader
	switch (b[1] >> 3) & 3 {
	case 0:
		h.version = 25
	case 2:
		h.version = 2
	case 3:
		h.version = 1
	default:
		return h, false
	}
	h.layer = 4 - int((b[1]>>1)&3)
	if h.layer == 4 {
		return h, false
	}
	h.crc = b[1]&1 == 0
	h.brIndex = int(b[2] >> 4)
	ri := int((b[2] >> 2) & 3)
	if h.brIndex == 15 || ri == 3 || b[3]&3 == 2 {
		return h, false
	}
	h.rate = [3]int{44100, 48000, 32000}[ri]
	switch h.version {
	case 2:
		h.rate /= 2
	case 25:
		h.rate /= 4
	}
	h.padding = b[2]&2 != 0
	h.mono = b[3]>>6 == 3
	return h, true
}

func (h mpegHeader) lsf() bool { return h.version != 1 }

// kbps is the frame's bitrate (Layer III).
func (h mpegHeader) kbps() int {
	if h.lsf() {
		return layer3Kbps[1][h.brIndex]
	}
	return layer3Kbps[0][h.brIndex]
}

// samples is the number of samples per channel a Layer III frame holds.
func (h mpegHeader) samples() int {
	if h.lsf() {
		return 576
	}
	return 1152
}

// size is the length of a Layer III frame, header included.
func (h mpegHeader) size() int {
	n := 144 * 1000 * h.kbps() / h.rate
	if h.lsf() {
		n = 72 * 1000 * h.kbps() / h.rate
	}
	if h.padding {
		n++
	}
	return n
}

// sideInfoLen is the length of a Layer III frame's side information.
func (h mpegHeader) sideInfoLen() int {
	switch {
	case h.lsf() && h.mono:
		return 9
	case h.lsf():
		return 17
	case h.mono:
		return 17
	}
	return 32
}

// mainStart is where a frame's main data begins, from the frame's start.
func (h mpegHeader) mainStart() int {
	n := 4 + h.sideInfoLen()
	if h.crc {
		n += 2
	}
	return n
}

// sameStream reports whether two frames can belong to one stream.
func (h mpegHeader) sameStream(o mpegHeader) bool {
	return h.version == o.version && h.layer == o.layer && h.rate == o.rate && h.mono == o.mono
}

func (h mpegHeader) describe() string {
	ch := "stereo"
	if h.mono {
		ch = "mono"
	}
	v := fmt.Sprintf("MPEG-%d", h.version)
	if h.version == 25 {
		v = "MPEG-2.5"
	}
	return fmt.Sprintf("%s layer %d, %d Hz %s", v, h.layer, h.rate, ch)
}

// sniffMP3 reports whether data looks like an MP3 file: an ID3v2 tag, or
// an MPEG audio frame header right at the start.
func sniffMP3(data []byte) bool {
	if bytes.HasPrefix(data, []byte("ID3")) {
		return true
	}
	_, ok := parseMPEGHeader(data)
	return ok
}

// mp3Info is the checked frame structure of an MP3 file.
type mp3Info struct {
	Format
	stream  []byte // the audio frames to decode, whole, without tags or an info frame
	frames  int    // how many
	samples int64  // the samples per channel they decode to
	// Encoder delay and padding from a LAME/Xing info frame: skip samples
	// are dropped at the start, and at most keep samples are kept.
	skip, keep int64
}

func (m mp3Info) duration() time.Duration {
	return time.Duration(m.keep) * time.Second / time.Duration(m.SampleRate)
}

// decoderDelay is the delay of the MP3 synthesis filterbank, which
// LAME's gapless information leaves to the decoder (528 + 1 samples).
const decoderDelay = 529

// probeMP3 walks the frames of an MP3 file without decoding them.
func probeMP3(data []byte) (mp3Info, error) {
	var info mp3Info
	off, err := skipID3v2(data, 0)
	if err != nil {
		return info, err
	}
	for off < len(data) && data[off] == 0 { // padding after the tag
		off++
	}
	first, ok := parseMPEGHeader(data[off:])
	if !ok {
		if off == len(data) {
			return info, invalid("the MP3 file holds no audio, only a tag")
		}
		return info, invalid("this looks like an MP3 file (it starts with an ID3 tag), but no MP3 audio follows the tag; it is damaged or not an MP3 file")
	}
	switch {
	case first.layer == 1:
		return info, invalid("the file is MPEG layer 1 audio (MP1), which is not supported; convert it to MP3 or WAV first")
	case first.layer == 2:
		return info, invalid("the file is MPEG layer 2 audio (MP2), which is not supported; convert it to MP3 or WAV first")
	case first.version == 25:
		return info, invalid("the MP3 file is MPEG-2.5 at %d Hz, which is not supported; export it at 16000 Hz or more, or as WAV", first.rate)
	}
	var (
		starts  []int // offsets of the frames
		buggy   bool  // a frame go-mp3 would mismeasure (see remux)
		lastEnd int
	)
	for off < len(data) {
		h, ok := parseMPEGHeader(data[off:])
		if !ok {
			err := trailingTags(data[off:])
			if err == nil {
				break
			}
			if err != errNotTags {
				return info, err
			}
			return info, invalid("the MP3 file is damaged: the data at byte %d, after %d audio frames, is not MP3 audio", off, len(starts))
		}
		if !h.sameStream(first) {
			return info, invalid("the MP3 file changes format at byte %d, from %s to %s; it is damaged or joined from several files; export it again", off, first.describe(), h.describe())
		}
		if h.brIndex == 0 {
			return info, invalid("the MP3 file uses a free-format bitrate, which is not supported; export it at a standard bitrate, or as WAV")
		}
		n := h.size()
		if n > len(data)-off {
			return info, invalid("the MP3 file is cut short: its last frame should hold %d bytes but only %d are there (was the upload or the recording interrupted?)", n, len(data)-off)
		}
		if n < h.mainStart() {
			return info, invalid("the MP3 file is damaged: the frame at byte %d is too short to hold audio", off)
		}
		if h.lsf() && h.padding && (144*1000*h.kbps()/h.rate)%2 == 0 {
			buggy = true
		}
		starts = append(starts, off)
		off += n
		lastEnd = off
	}
	if len(starts) == 0 {
		return info, invalid("the MP3 file holds no audio frames")
	}
	info.Format = Format{SampleRate: first.rate, Channels: 2, BitsPerSample: 16, Codec: codecMP3}
	if first.mono {
		info.Channels = 1
	}
	spf := int64(first.samples())
	audio := starts
	if d, p, count, ok := infoFrame(data[starts[0]:], first); ok {
		audio = starts[1:]
		// The count leaves the info frame out; allow for encoders that
		// count it in.
		if count > len(audio)+1 {
			return info, invalid("the MP3 file is cut short: it should hold %d audio frames but only %d are there (was the upload or the recording interrupted?)", count, len(audio))
		}
		total := int64(len(audio)) * spf
		if d >= 0 && d+p < total {
			info.skip, info.keep = d+decoderDelay, total-d-p
		}
	}
	if len(audio) == 0 {
		return info, invalid("the MP3 file holds no audio frames, only its header frame")
	}
	info.frames = len(audio)
	info.samples = int64(len(audio)) * spf
	if info.keep == 0 {
		info.keep = info.samples
	}
	info.Kbps = int((int64(lastEnd-audio[0])*8*int64(first.rate)/info.samples + 500) / 1000)
	info.stream = data[audio[0]:lastEnd]
	if buggy {
		s, err := remuxLSF(data, audio)
		if err != nil {
			return info, err
		}
		info.stream = s
	}
	return info, nil
}

// skipID3v2 skips the ID3v2 tags at off (a file can carry several).
func skipID3v2(data []byte, off int) (int, error) {
	for bytes.HasPrefix(data[off:], []byte("ID3")) {
		if len(data)-off < 10 {
			return off, invalid("the MP3 file is cut short: it ends inside its ID3 tag")
		}
		h := data[off : off+10]
		if h[6]|h[7]|h[8]|h[9] >= 0x80 {
			return off, invalid("the MP3 file's ID3 tag is damaged (its size is not valid)")
		}
		size := int(h[6])<<21 | int(h[7])<<14 | int(h[8])<<7 | int(h[9])
		size += 10
		if h[5]&0x10 != 0 { // footer present
			size += 10
		}
		if size > len(data)-off {
			return off, invalid("the MP3 file is cut short: its ID3 tag should hold %d bytes but only %d are there", size, len(data)-off)
		}
		off += size
	}
	return off, nil
}

// trailingTags checks that what follows the last frame is metadata
// (ID3v1, APEv2, Lyrics3, an appended ID3v2) or zero padding.
func trailingTags(b []byte) error {
	for len(b) > 0 {
		switch {
		case bytes.HasPrefix(b, []byte("TAG")):
			if len(b) < 128 {
				return invalid("the MP3 file is cut short: it ends inside its ID3v1 tag")
			}
			b = b[128:]
		case bytes.HasPrefix(b, []byte("APETAGEX")), bytes.HasPrefix(b, []byte("LYRICSBEGIN")):
			return nil
		case bytes.HasPrefix(b, []byte("ID3")):
			n, err := skipID3v2(b, 0)
			if err != nil {
				return err
			}
			b = b[n:]
		default:
			if len(bytes.Trim(b, "\x00")) > 0 {
				return errNotTags
			}
			return nil
		}
	}
	return nil
}

var errNotTags = errors.New("not tags")

// infoFrame recognises the Xing/Info (or Fraunhofer VBRI) frame encoders
// put first: it holds no audio. It may give the number of audio frames
// (0 if not), and a LAME tag in it the encoder's delay and padding in
// samples (delay -1 if there is no LAME tag).
func infoFrame(f []byte, h mpegHeader) (delay, padding int64, frames int, ok bool) {
	x := h.mainStart()
	if len(f) >= 40 && string(f[36:40]) == "VBRI" {
		return -1, 0, 0, true
	}
	if len(f) < x+8 || (string(f[x:x+4]) != "Xing" && string(f[x:x+4]) != "Info") {
		return -1, 0, 0, false
	}
	flags := binary.BigEndian.Uint32(f[x+4:])
	t := x + 8
	if flags&1 != 0 && len(f) >= t+4 {
		frames = int(min(binary.BigEndian.Uint32(f[t:]), 1<<24))
		t += 4
	}
	if flags&2 != 0 {
		t += 4 // bytes
	}
	if flags&4 != 0 {
		t += 100 // seek table
	}
	if flags&8 != 0 {
		t += 4 // quality
	}
	// The LAME tag (also written by ffmpeg as "Lavc"/"Lavf"): encoder
	// delay and padding are 12 bits each at byte 21.
	if len(f) < t+24 || (string(f[t:t+4]) != "LAME" && string(f[t:t+3]) != "Lav") {
		return -1, 0, frames, true
	}
	d := f[t+21:]
	return int64(d[0])<<4 | int64(d[1]>>4), int64(d[1]&0xf)<<8 | int64(d[2]), frames, true
}

// remuxLSF rewrites an MPEG-2 stream for go-mp3 (v0.3.4), which computes
// the length of a padded MPEG-2 frame one byte short whenever 144 ×
// bitrate / rate is even (as at 22050 Hz and 32 kbps, a common setting
// for voice). It then loses that byte and decodes noise from the bit
// reservoir onwards. The audio data is kept exactly; only its packing
// changes: every frame becomes unpadded at the lowest bitrate that holds
// at least what the original frame held, and each frame's main data is
// placed as early as the reservoir allows, with main_data_begin set to
// match. Bitrate and padding change nothing in the decoded sound.
func remuxLSF(data []byte, starts []int) ([]byte, error) {
	damaged := invalid("the MP3 file is damaged: its frames refer to audio data that is not there")
	type frame struct {
		h                mpegHeader
		off              int
		start, end       int // its main data in the original stream of main data
		newKbpsIndex     int
		newCap, newBegin int
	}
	frames := make([]frame, len(starts))
	var orig []byte // the main data of all frames, back to back
	for i, off := range starts {
		h, _ := parseMPEGHeader(data[off:])
		n, ms := h.size(), h.mainStart()
		side := data[off+ms-h.sideInfoLen() : off+ms]
		begin := int(side[0]) // main_data_begin: 8 bits in MPEG-2
		// part2_3_length (12 bits) of each channel, after main_data_begin
		// and 1 (mono) or 2 private bits, 63 bits apart.
		bitsUsed := 0
		pos := 9
		if !h.mono {
			pos = 10
		}
		for ch := 0; ch < 2-btoi(h.mono); ch++ {
			bitsUsed += readBits(side, pos+63*ch, 12)
		}
		f := frame{h: h, off: off, start: len(orig) - begin}
		f.end = f.start + (bitsUsed+7)/8
		if f.start < 0 || f.end > len(orig)+n-ms {
			return nil, damaged
		}
		capOrig := n - ms
		f.newKbpsIndex = -1
		for bi := 1; bi < 15; bi++ {
			g := h
			g.brIndex, g.padding, g.crc = bi, false, false
			if c := g.size() - g.mainStart(); c >= capOrig {
				f.newKbpsIndex, f.newCap = bi, c
				break
			}
		}
		if f.newKbpsIndex < 0 {
			return nil, damaged
		}
		orig = append(orig, data[off+ms:off+n]...)
		frames[i] = f
	}
	// Place each frame's data as early as possible: after the previous
	// frame's, and at most 255 bytes before the frame's own main data;
	// then write the frames around it.
	newMain := make([]byte, 0, len(orig)+len(frames))
	q, prevEnd := 0, 0
	for i, f := range frames {
		ns := max(prevEnd, q-255)
		ne := ns + f.end - f.start
		if ne > q+f.newCap {
			return nil, invalid("the MP3 file's audio data cannot be read (its bit reservoir overflows); export it again at another bitrate, or as WAV")
		}
		newMain = append(newMain, make([]byte, f.newCap)...)
		copy(newMain[ns:ne], orig[f.start:f.end])
		frames[i].newBegin = q - ns
		prevEnd = ne
		q += f.newCap
	}
	out := make([]byte, 0, len(newMain)+len(frames)*21)
	q = 0
	for _, f := range frames {
		h := data[f.off : f.off+4]
		out = append(out, h[0], h[1]|1, byte(f.newKbpsIndex)<<4|h[2]&0x0d, h[3]) // no CRC, unpadded
		sideAt := f.off + f.h.mainStart() - f.h.sideInfoLen()
		out = append(out, byte(f.newBegin))
		out = append(out, data[sideAt+1:sideAt+f.h.sideInfoLen()]...)
		out = append(out, newMain[q:q+f.newCap]...)
		q += f.newCap
	}
	return out, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readBits reads n bits (big-endian bit order) at bit position pos.
func readBits(b []byte, pos, n int) int {
	v := 0
	for i := range n {
		p := pos + i
		v = v<<1 | int(b[p/8]>>(7-p%8)&1)
	}
	return v
}

// mp3Source decodes a checked stream. As a beep.Streamer it yields mono
// (the average of the channels) in [-1, 1), without the encoder's delay
// and padding.
type mp3Source struct {
	ctx     context.Context
	info    mp3Info
	dec     *mp3.Decoder
	buf     []byte
	pending []byte // decoded bytes not yet streamed (whole stereo frames)
	read    int64  // samples decoded
	out     int64  // samples streamed
	err     error
	done    bool
}

func newMP3Source(ctx context.Context, info mp3Info) (*mp3Source, error) {
	s := &mp3Source{ctx: ctx, info: info, buf: make([]byte, 4*chunkFrames)}
	// A plain io.Reader: given a Seeker, go-mp3 would walk the whole file
	// once more to measure it.
	err := catchPanic(func() error {
		var err error
		s.dec, err = mp3.NewDecoder(struct{ io.Reader }{bytes.NewReader(info.stream)})
		return err
	})
	if err != nil {
		return nil, invalid("the MP3 audio could not be decoded: %v", err)
	}
	return s, nil
}

// catchPanic runs f, turning a panic of the decoder on hostile input
// into an error, so that no upload can bring the controller down.
func catchPanic(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder failure: %v", r)
		}
	}()
	return f()
}

// fill decodes more samples into pending.
func (s *mp3Source) fill() {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return
	}
	var n int
	err := catchPanic(func() error {
		var err error
		n, err = io.ReadFull(s.dec, s.buf)
		return err
	})
	n -= n % 4
	s.pending = s.buf[:n]
	s.read += int64(n / 4)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		s.done = true
		if s.read != s.info.samples {
			s.err = invalid("the MP3 audio could not be decoded completely: %d of %d samples came out; the file is damaged", s.read, s.info.samples)
		}
	default:
		s.err = invalid("the MP3 audio could not be decoded: %v", err)
	}
}

// Stream implements beep.Streamer.
func (s *mp3Source) Stream(samples [][2]float64) (n int, ok bool) {
	for n < len(samples) && s.err == nil {
		if len(s.pending) == 0 {
			if s.done {
				break
			}
			s.fill()
			continue
		}
		l := int16(binary.LittleEndian.Uint16(s.pending))
		r := int16(binary.LittleEndian.Uint16(s.pending[2:]))
		s.pending = s.pending[4:]
		i := s.out
		s.out++
		if i < s.info.skip || i >= s.info.skip+s.info.keep {
			continue
		}
		x := (float64(l) + float64(r)) / 2 / 32768
		samples[n] = [2]float64{x, x}
		n++
	}
	return n, n > 0
}

// Err implements beep.Streamer.
func (s *mp3Source) Err() error { return s.err }
