package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

func itoa(n int) string { return strconv.Itoa(n) }

// partError explains a failure to find a multipart field.
func partError(err error, field, hint string) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return cx.Invalid(field, hint)
	}
	return cx.Errorf(cx.EINVALID, "the multipart body cannot be read: %v", err)
}

type audioJSON struct {
	ID         int64         `json:"id"`
	SHA256     string        `json:"sha256"`
	Title      string        `json:"title"`
	DurationMS int64         `json:"duration_ms"`
	SampleRate int           `json:"sample_rate"`
	Channels   int           `json:"channels"`
	SizeBytes  int64         `json:"size_bytes"`
	CreatedAt  time.Time     `json:"created_at"`
	Source     *media.Format `json:"source,omitempty"` // the upload's format, in the answer to an upload
}

func audioOut(a store.Audio) audioJSON {
	return audioJSON{ID: a.ID, SHA256: a.SHA256, Title: a.Title, DurationMS: a.DurationMS, SampleRate: a.SampleRate,
		Channels: a.Channels, SizeBytes: a.SizeBytes, CreatedAt: a.CreatedAt.UTC()}
}

// maxTitle bounds a clip title, in characters.
const maxTitle = 200

// postAudio takes a multipart upload: the WAV in "file", optionally a
// "title". The file is decoded and converted completely before anything is
// stored.
func (s *Server) postAudio(c *gin.Context) {
	// The limit on the whole body leaves room for the multipart framing
	// and the title; the file itself is held to MaxUploadBytes by media.
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.lib.MaxBytes()+64<<10)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, cx.Invalid("file", "send the recording as multipart/form-data in the field \"file\""))
		return
	}
	var (
		pending  *media.Pending
		title    string
		filename string
	)
	defer func() {
		if pending != nil {
			pending.Discard()
		}
	}()
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fail(c, s.uploadError(partError(err, "file", "")))
			return
		}
		switch p.FormName() {
		case "title":
			b, err := io.ReadAll(io.LimitReader(p, 4*maxTitle+1))
			if err != nil {
				s.fail(c, s.uploadError(err))
				return
			}
			title = string(b)
		case "file":
			if pending != nil {
				s.fail(c, cx.Invalid("file", "send one file per upload"))
				return
			}
			filename = p.FileName()
			pending, err = s.lib.Prepare(c.Request.Context(), p)
			if err != nil {
				s.fail(c, s.uploadError(err))
				return
			}
		default:
			io.Copy(io.Discard, p)
		}
	}
	if pending == nil {
		s.fail(c, cx.Invalid("file", "no file was uploaded; send the recording in the multipart field \"file\""))
		return
	}
	title = strings.TrimSpace(title)
	if title == "" {
		title = strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename))
	}
	if !utf8.ValidString(title) || utf8.RuneCountInString(title) > maxTitle {
		s.fail(c, cx.Invalid("title", fmt.Sprintf("must be UTF-8 text of at most %d characters", maxTitle)))
		return
	}
	a, created, err := s.storeClip(c.Request.Context(), pending, title)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := audioOut(a)
	src := pending.Source
	out.Source = &src
	status := http.StatusOK // the same recording was uploaded before
	if created {
		status = http.StatusCreated
		noteAudit(c, "audio.upload", "audio/"+strconv.FormatInt(a.ID, 10), fmt.Sprintf("%q %s, %d ms, from %s", a.Title, a.SHA256, a.DurationMS, src))
	} else {
		noteAudit(c, "audio.upload_duplicate", "audio/"+strconv.FormatInt(a.ID, 10), a.SHA256)
	}
	c.JSON(status, out)
}

// storeClip records a converted clip in the library. A clip with the same
// sha256 already stored is returned instead, with created false.
func (s *Server) storeClip(ctx context.Context, p *media.Pending, title string) (store.Audio, bool, error) {
	return s.store.CreateAudio(ctx, store.Audio{
		SHA256: p.SHA256, Title: title, DurationMS: p.DurationMS,
		SampleRate: p.SampleRate, Channels: p.Channels, SizeBytes: p.SizeBytes,
	}, p.Commit)
}

// uploadError turns the body limit into the same message media gives.
func (s *Server) uploadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return cx.Errorf(cx.ETOOLARGE, "the file is larger than the %s limit; upload a shorter recording, or export it as mono 22050 Hz 16-bit WAV, which is smaller", sizeText(s.lib.MaxBytes()))
	}
	return err
}

func (s *Server) getAudioList(c *gin.Context) { list(s, c, "audio", s.store.AudioList, audioOut) }

func (s *Server) getAudio(c *gin.Context) { byID(s, c, s.store.Audio, audioOut) }

// getAudioContent serves a clip's WAV with Range and conditional requests;
// its ETag is its sha256, which never changes for an id.
func (s *Server) getAudioContent(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.store.Audio(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := s.lib.Open(a.SHA256)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer f.Close()
	h := c.Writer.Header()
	h.Set("ETag", `"`+a.SHA256+`"`)
	h.Set("Content-Type", "audio/wav")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(c.Writer, c.Request, a.SHA256+".wav", a.CreatedAt, f)
}
