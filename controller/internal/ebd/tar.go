package ebd

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Limits bound what ReadTar accepts. A zero field takes its default.
type Limits struct {
	MaxFiles int   // entries in the archive (default 16)
	MaxFile  int64 // bytes of one audio file (default 64 MiB)
	MaxTotal int64 // bytes of all files together (default 128 MiB)
}

// WithDefaults fills the bounds left 0 with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = 16
	}
	if l.MaxFile <= 0 {
		l.MaxFile = 64 << 20
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = 128 << 20
	}
	return l
}

// File is a named file of an archive.
type File struct {
	Name string
	Data []byte
}

// Bundle is what a tar archive carries: one packet, its signature file
// and any other files (the audio a message names), in archive order.
type Bundle struct {
	EBDID     string // from the packet's file name
	Packet    []byte // EBDB_<EBDID>.xml, exactly as received
	Signature []byte // EBDS_EBDB_<EBDID>.xml; nil when there is none
	Files     []File
}

// File returns the attachment called name, or nil.
func (b *Bundle) File(name string) *File {
	for i := range b.Files {
		if b.Files[i].Name == name {
			return &b.Files[i]
		}
	}
	return nil
}

// PacketName and SignatureName are the file names of a packet and of its
// signature.
func PacketName(ebdid string) string    { return "EBDB_" + ebdid + ".xml" }
func SignatureName(ebdid string) string { return "EBDS_EBDB_" + ebdid + ".xml" }

// ReadTar reads a tar archive within lim: only plain files with plain
// names (no directories, links, devices or paths; a leading "./" is
// dropped), no name twice, exactly one EBDB_<EBDID>.xml with an EBDID of
// the standard shape. The signature file may be missing (Verify refuses
// that); an EBDS for another packet is refused. Sizes are checked from the
// headers before anything is read, and again while reading.
func ReadTar(r io.Reader, lim Limits) (*Bundle, error) {
	lim = lim.WithDefaults()
	tr := tar.NewReader(r)
	var (
		b     Bundle
		sigs  = map[string][]byte{}
		seen  = map[string]bool{}
		total int64
		n     int
	)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tarError(err)
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			continue // PAX global defaults, no file
		case tar.TypeReg, tar.TypeRegA:
		case tar.TypeDir:
			if strings.Trim(h.Name, "./") == "" {
				continue // the archive's "./" itself, as `tar -C dir .` writes
			}
			return nil, badEntry(h.Name, "is a directory")
		default:
			return nil, badEntry(h.Name, "is not a plain file")
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !safeName(name) {
			return nil, badEntry(h.Name, "is not a plain file name")
		}
		if seen[name] {
			return nil, cx.Errorf(cx.EINVALID, "the archive holds two files named %q", clip(name)).With(api.ReasonEBDTarDuplicate, "value", clip(name))
		}
		seen[name] = true
		n++
		if n > lim.MaxFiles {
			return nil, cx.Errorf(cx.ETOOLARGE, "the archive holds more than %d files", lim.MaxFiles).With(api.ReasonEBDTarTooMany, "max", lim.MaxFiles)
		}
		max := lim.MaxFile
		if strings.HasSuffix(strings.ToLower(name), ".xml") {
			max = MaxXMLBytes
		}
		if h.Size > max {
			return nil, tooLarge(name, max)
		}
		if total+h.Size > lim.MaxTotal {
			return nil, tooLarge("the archive", lim.MaxTotal)
		}
		data, err := io.ReadAll(io.LimitReader(tr, h.Size+1))
		if err != nil {
			return nil, tarError(err)
		}
		if int64(len(data)) != h.Size {
			return nil, tarError(io.ErrUnexpectedEOF)
		}
		total += h.Size
		switch {
		case strings.HasPrefix(name, "EBDS_EBDB_") && strings.HasSuffix(name, ".xml"):
			sigs[strings.TrimSuffix(strings.TrimPrefix(name, "EBDS_EBDB_"), ".xml")] = data
		case strings.HasPrefix(name, "EBDB_") && strings.HasSuffix(name, ".xml"):
			if b.Packet != nil {
				return nil, cx.Errorf(cx.EINVALID, "the archive holds more than one EBDB packet; send one per archive").With(api.ReasonEBDManyPackets)
			}
			id := strings.TrimSuffix(strings.TrimPrefix(name, "EBDB_"), ".xml")
			if !ValidEBDID(id) {
				return nil, invalid("tar/"+clip(name), api.ReasonEBDIDShape, clip(id), "%q is not a packet ID of %d or %d digits", clip(id), 2+EBRIDShort+16, 2+EBRIDLong+16)
			}
			b.EBDID, b.Packet = id, data
		default:
			b.Files = append(b.Files, File{Name: name, Data: data})
		}
	}
	if b.Packet == nil {
		return nil, cx.Errorf(cx.EINVALID, "the archive holds no EBDB_<EBDID>.xml packet").With(api.ReasonEBDNoPacket)
	}
	for id, data := range sigs {
		if id != b.EBDID {
			return nil, cx.Invalid("tar/"+clip(SignatureName(id)), fmt.Sprintf("signs packet %q, but the archive carries packet %s", clip(id), b.EBDID)).
				With(api.ReasonEBDIDMismatch, "field", "tar/"+clip(SignatureName(id)), "value", clip(id), "want", b.EBDID)
		}
		b.Signature = data
	}
	return &b, nil
}

func badEntry(name, why string) error {
	return cx.Errorf(cx.EINVALID, "the archive entry %q %s; only plain files without a path are accepted", clip(name), why).
		With(api.ReasonEBDTarEntry, "value", clip(name))
}

func tooLarge(what string, max int64) error {
	return cx.Errorf(cx.ETOOLARGE, "%s is larger than %d KiB", clip(what), max>>10).
		With(api.ReasonEBDTooLarge, "value", clip(what), "max", max>>10)
}

func tarError(err error) error {
	return cx.Errorf(cx.EINVALID, "the body is not a readable tar archive: %s", clip(err.Error())).With(api.ReasonEBDTarInvalid)
}

// WriteTar writes files as a tar archive, in order, each a plain file of
// mode 0644 modified at mtime.
func WriteTar(files []File, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if !safeName(f.Name) {
			return nil, fmt.Errorf("write tar: %q is not a plain file name", f.Name)
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)), ModTime: mtime.Truncate(time.Second)}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write tar header %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write tar %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}
