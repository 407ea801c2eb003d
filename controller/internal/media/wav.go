package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Format is what an upload holds.
type Format struct {
	SampleRate int `json:"sample_rate"`
	Channels   int `json:"channels"`
	// BitsPerSample is the WAV's sample size; an MP3 decodes to 16 bits.
	BitsPerSample int `json:"bits_per_sample"`
	// Codec is "wav" or "mp3".
	Codec string `json:"codec,omitempty"`
	// Kbps is an MP3's average bitrate.
	Kbps int `json:"kbps,omitempty"`
}

func (f Format) String() string {
	ch := fmt.Sprintf("%d channels", f.Channels)
	switch f.Channels {
	case 1:
		ch = "mono"
	case 2:
		ch = "stereo"
	}
	if f.Codec == codecMP3 {
		return fmt.Sprintf("%d Hz %s MP3, %d kbps", f.SampleRate, ch, f.Kbps)
	}
	return fmt.Sprintf("%d Hz %s %d-bit PCM", f.SampleRate, ch, f.BitsPerSample)
}

// Limits of what an upload may declare. They keep a hostile header from
// asking for absurd work: the lowest rate bounds how much upsampling can
// grow a file.
const (
	minSampleRate = 8000
	maxSampleRate = 192000
	maxChannels   = 8
)

// wavInfo is the checked structure of a WAV file.
type wavInfo struct {
	Format
	data    []byte // the PCM bytes, whole frames only
	dataOff int64  // where data starts in the file
	frames  int64
}

func (w wavInfo) duration() time.Duration {
	return time.Duration(w.frames) * time.Second / time.Duration(w.SampleRate)
}

// streamingSize is what programs writing a WAV to a pipe (espeak-ng
// --stdout, sox -) put in a size field they cannot know yet.
const streamingSize = 0x7ffff000

var (
	riffID = []byte("RIFF")
	waveID = []byte("WAVE")
)

// invalid is a refused recording; its reason says it is damaged unless
// the caller names a better one with With.
func invalid(format string, args ...any) *cx.Error {
	return cx.Errorf(cx.EINVALID, format, args...).With(api.ReasonAudioDamaged)
}

// probe checks the RIFF structure of data without trusting any size in it:
// every chunk must lie inside the file, there must be one fmt chunk
// describing integer PCM the controller can play and a data chunk with at
// least one whole frame. Only then is the file handed to the decoder.
func probe(data []byte) (wavInfo, error) {
	var w wavInfo
	if len(data) < 12 || !bytes.Equal(data[:4], riffID) || !bytes.Equal(data[8:12], waveID) {
		return w, notWAV(data)
	}
	var fmtSeen, dataSeen bool
	off := 12
	for off < len(data) {
		if len(data)-off < 8 {
			break // stray padding at the end; missing chunks are reported below
		}
		id := string(data[off : off+4])
		size := int64(binary.LittleEndian.Uint32(data[off+4 : off+8]))
		body := off + 8
		rest := int64(len(data) - body)
		if size > rest {
			if id == "data" && !dataSeen && size >= streamingSize {
				size = rest // written to a pipe: the data runs to the end
			} else {
				return w, invalid("the file is cut short: its %q chunk should hold %d bytes but only %d are there (was the upload or the recording interrupted?)", id, size, rest)
			}
		}
		chunk := data[body : body+int(size)]
		switch id {
		case "fmt ":
			if fmtSeen {
				return w, invalid("the file has two format (fmt) chunks; it is damaged")
			}
			fmtSeen = true
			f, err := parseFmt(chunk)
			if err != nil {
				return w, err
			}
			w.Format = f
		case "data":
			if !dataSeen {
				dataSeen = true
				w.data, w.dataOff = chunk, int64(body)
			}
		}
		next := int64(body) + size + size%2 // chunks are word-aligned
		if next > int64(len(data)) {
			next = int64(len(data))
		}
		off = int(next)
	}
	if !fmtSeen {
		return w, invalid("the file has no format (fmt) chunk, so its encoding is unknown; it is damaged or not really a WAV file")
	}
	if !dataSeen {
		return w, invalid("the file has no audio data (no data chunk)")
	}
	frame := w.Channels * w.BitsPerSample / 8
	w.frames = int64(len(w.data) / frame)
	w.data = w.data[:w.frames*int64(frame)] // drop a partial last frame
	if w.frames == 0 {
		return w, invalid("the recording is empty: it holds no audio samples").With(api.ReasonAudioEmpty)
	}
	return w, nil
}

// Audio format tags of the fmt chunk, for telling people what they sent.
var formatNames = map[uint16]string{
	0x0002: "Microsoft ADPCM (compressed)",
	0x0003: "32-bit floating point",
	0x0006: "A-law (compressed)",
	0x0007: "μ-law (compressed)",
	0x0011: "IMA ADPCM (compressed)",
	0x0031: "GSM 6.10 (compressed)",
	0x0055: "MP3 inside a WAV (compressed)",
}

const (
	tagPCM        = 0x0001
	tagExtensible = 0xfffe
)

// guidTail is what follows the format tag in the subformat GUID of a
// WAVE_FORMAT_EXTENSIBLE fmt chunk (xxxxxxxx-0000-0010-8000-00aa00389b71).
var guidTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71}

const exportHint = "export it as WAV with 16-bit PCM (in Audacity: File → Export → WAV, \"Signed 16-bit PCM\")"

func parseFmt(c []byte) (Format, error) {
	if len(c) < 16 {
		return Format{}, invalid("the format (fmt) chunk is %d bytes, too short to describe the audio; the file is damaged", len(c))
	}
	tag := binary.LittleEndian.Uint16(c[0:2])
	f := Format{
		Codec:         codecWAV,
		Channels:      int(binary.LittleEndian.Uint16(c[2:4])),
		SampleRate:    int(binary.LittleEndian.Uint32(c[4:8])),
		BitsPerSample: int(binary.LittleEndian.Uint16(c[14:16])),
	}
	blockAlign := int(binary.LittleEndian.Uint16(c[12:14]))
	if tag == tagExtensible {
		// cbSize(2) validBits(2) channelMask(4), then the subformat GUID
		// whose first two bytes are the real format tag.
		if len(c) < 40 || !bytes.Equal(c[26:40], guidTail) {
			return f, invalid("the audio is in an extensible WAV format of an unknown kind; %s", exportHint)
		}
		tag = binary.LittleEndian.Uint16(c[24:26])
	}
	if tag != tagPCM {
		name := formatNames[tag]
		if name == "" {
			name = fmt.Sprintf("format code 0x%04x", tag)
		}
		return f, invalid("the audio is encoded as %s, which is not supported; %s", name, exportHint).With(api.ReasonAudioUnsupported, "kind", name)
	}
	switch f.BitsPerSample {
	case 8, 16, 24, 32:
	default:
		return f, invalid("the audio has %d bits per sample; only 8, 16, 24 or 32-bit PCM is supported; %s", f.BitsPerSample, exportHint)
	}
	if f.Channels < 1 || f.Channels > maxChannels {
		return f, invalid("the file says it has %d channels; only 1 to %d are supported", f.Channels, maxChannels)
	}
	if f.SampleRate < minSampleRate || f.SampleRate > maxSampleRate {
		return f, invalid("the sample rate is %d Hz; only %d to %d Hz is supported", f.SampleRate, minSampleRate, maxSampleRate)
	}
	if blockAlign != f.Channels*f.BitsPerSample/8 {
		return f, invalid("the file's block size (%d bytes) does not match %d channels of %d bits; the file is damaged", blockAlign, f.Channels, f.BitsPerSample)
	}
	return f, nil
}

// notWAV says what the file seems to be instead.
func notWAV(data []byte) error {
	kind := ""
	switch {
	case len(data) == 0:
		return invalid("the file is empty").With(api.ReasonAudioEmpty)
	case len(data) > 1 && data[0] == 0xff && data[1]&0xf6 == 0xf0:
		kind = "an AAC file (ADTS)"
	case len(data) > 1 && data[0] == 0xff && data[1]&0xe0 == 0xe0:
		return invalid("the file starts like an MP3 frame, but its header is not valid; it is damaged; export it again as MP3 or WAV")
	case bytes.HasPrefix(data, []byte("OggS")):
		kind = "an Ogg file"
	case bytes.HasPrefix(data, []byte("fLaC")):
		kind = "a FLAC file"
	case len(data) >= 8 && bytes.Equal(data[4:8], []byte("ftyp")):
		kind = "an M4A/MP4 file (as phones record)"
	case bytes.HasPrefix(data, []byte("#!AMR")):
		kind = "an AMR voice recording"
	case bytes.HasPrefix(data, []byte("RIFF")) && len(data) >= 12:
		kind = fmt.Sprintf("a RIFF file of type %q", data[8:12])
	case bytes.HasPrefix(data, []byte("RIFX")), bytes.HasPrefix(data, []byte("RF64")):
		kind = "a big-endian or 64-bit WAV variant"
	}
	if kind != "" {
		return invalid("this is %s, which is not supported; convert it to WAV (16-bit PCM) or MP3 first", kind).With(api.ReasonAudioUnsupported, "kind", kind)
	}
	if len(data) < 12 {
		return invalid("the file is only %d bytes long; it is not a WAV or MP3 recording", len(data)).With(api.ReasonNotAudio)
	}
	return invalid("this is not a WAV or MP3 file (it does not start with RIFF…WAVE, an ID3 tag or an MP3 frame); convert the recording to WAV (16-bit PCM) or MP3 first").With(api.ReasonNotAudio)
}
