// Package mediatest makes WAV files for tests: sine tones in any PCM
// layout, including the odd ones real uploads have.
package mediatest

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// Spec describes a test WAV.
type Spec struct {
	Rate, Channels, Bits int
	Seconds              float64
	Freq                 float64 // Hz; the same tone in every channel
	Amp                  float64 // 0..1, default 0.5
	// Extensible writes a WAVE_FORMAT_EXTENSIBLE fmt chunk.
	Extensible bool
	// Streamed writes the placeholder sizes of a program writing to a pipe.
	Streamed bool
	// ListChunk puts a LIST/INFO chunk between fmt and data.
	ListChunk bool
}

// Sine returns a WAV file holding a sine tone.
func Sine(s Spec) []byte {
	if s.Amp == 0 {
		s.Amp = 0.5
	}
	frames := int(math.Round(s.Seconds * float64(s.Rate)))
	bps := s.Bits / 8
	data := make([]byte, 0, frames*s.Channels*bps)
	for i := range frames {
		x := s.Amp * math.Sin(2*math.Pi*s.Freq*float64(i)/float64(s.Rate))
		for range s.Channels {
			switch s.Bits {
			case 8:
				data = append(data, byte(int(math.Round(x*127))+128))
			case 16:
				data = binary.LittleEndian.AppendUint16(data, uint16(int16(math.Round(x*32767))))
			case 24:
				v := uint32(int32(math.Round(x * 8388607)))
				data = append(data, byte(v), byte(v>>8), byte(v>>16))
			case 32:
				data = binary.LittleEndian.AppendUint32(data, uint32(int32(math.Round(x*2147483647))))
			}
		}
	}
	le := binary.LittleEndian
	fmtc := make([]byte, 16, 40)
	tag := uint16(1)
	if s.Extensible {
		tag = 0xfffe
	}
	le.PutUint16(fmtc[0:], tag)
	le.PutUint16(fmtc[2:], uint16(s.Channels))
	le.PutUint32(fmtc[4:], uint32(s.Rate))
	le.PutUint32(fmtc[8:], uint32(s.Rate*s.Channels*bps))
	le.PutUint16(fmtc[12:], uint16(s.Channels*bps))
	le.PutUint16(fmtc[14:], uint16(s.Bits))
	if s.Extensible {
		fmtc = le.AppendUint16(fmtc, 22)
		fmtc = le.AppendUint16(fmtc, uint16(s.Bits))
		fmtc = le.AppendUint32(fmtc, 3)
		fmtc = append(fmtc, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71)
	}
	var out []byte
	out = append(out, "RIFF\x00\x00\x00\x00WAVE"...)
	out = append(out, "fmt "...)
	out = le.AppendUint32(out, uint32(len(fmtc)))
	out = append(out, fmtc...)
	if s.ListChunk {
		info := []byte("INFOINAM\x05\x00\x00\x00test\x00\x00")
		out = append(out, "LIST"...)
		out = le.AppendUint32(out, uint32(len(info)))
		out = append(out, info...)
	}
	out = append(out, "data"...)
	if s.Streamed {
		out = le.AppendUint32(out, 0x7ffff000)
	} else {
		out = le.AppendUint32(out, uint32(len(data)))
	}
	out = append(out, data...)
	if len(data)%2 == 1 {
		out = append(out, 0)
	}
	if s.Streamed {
		le.PutUint32(out[4:], 0x7ffff024)
	} else {
		le.PutUint32(out[4:], uint32(len(out)-8))
	}
	return out
}

// MemFile is an in-memory io.WriteSeeker.
type MemFile struct {
	b   []byte
	pos int
}

// Write implements io.Writer.
func (m *MemFile) Write(p []byte) (int, error) {
	if need := m.pos + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	copy(m.b[m.pos:], p)
	m.pos += len(p)
	return len(p), nil
}

// Seek implements io.Seeker.
func (m *MemFile) Seek(off int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekCurrent:
		base = int64(m.pos)
	case io.SeekEnd:
		base = int64(len(m.b))
	}
	if base+off < 0 {
		return 0, errors.New("seek before start")
	}
	m.pos = int(base + off)
	return int64(m.pos), nil
}

// Bytes returns what was written.
func (m *MemFile) Bytes() []byte { return m.b }
