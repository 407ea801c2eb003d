package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
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
		return cx.Invalid(field, hint).With(api.ReasonUploadNoFile)
	}
	return cx.Errorf(cx.EINVALID, "the multipart body cannot be read: %v", err).With(api.ReasonUploadUnreadable)
}

func audioOut(a store.Audio) api.Audio {
	return api.Audio{ID: a.ID, SHA256: a.SHA256, Title: a.Title, DurationMS: a.DurationMS, SampleRate: a.SampleRate,
		Channels: a.Channels, SizeBytes: a.SizeBytes, CreatedAt: a.CreatedAt.UTC(),
		LoudnessLUFS: a.LoudnessLUFS, PeakDBFS: a.PeakDBFS, GainDB: a.GainDB, CreatedBy: a.CreatedBy, DeletedAt: timePtr(a.DeletedAt)}
}

// maxTitle bounds a clip title, in characters.
const maxTitle = 200

// postAudio takes a multipart upload: the WAV in "file", optionally a
// "title". The file is decoded and converted completely before anything is
// stored.
func (s *Server) postAudio(c *gin.Context) {
	release, ok := s.uploadSlot(c)
	if !ok {
		return
	}
	defer release()
	// The body limit (limits) leaves room for the multipart framing and
	// the title; the file itself is held to MaxUploadBytes by media.
	cr := s.paced(c)
	c.Request.Body = struct {
		io.Reader
		io.Closer
	}{cr, c.Request.Body}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, cx.Invalid("file", "send the recording as multipart/form-data in the field \"file\"").With(api.ReasonUploadNotMultipart))
		return
	}
	fail := func(err error) {
		if aborted(c, cr) {
			s.log.Info("upload aborted by the client", "remote", c.ClientIP(), "actor", actor(c), "err", err)
			err = errAborted
		}
		s.fail(c, s.uploadError(err))
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
			fail(partError(err, "file", ""))
			return
		}
		switch p.FormName() {
		case "title":
			b, err := io.ReadAll(io.LimitReader(p, 4*maxTitle+1))
			if err != nil {
				fail(err)
				return
			}
			title = string(b)
		case "file":
			if pending != nil {
				s.fail(c, cx.Invalid("file", "send one file per upload").With(api.ReasonUploadOneFile))
				return
			}
			filename = p.FileName()
			pending, err = s.lib.Prepare(c.Request.Context(), p)
			if err != nil {
				fail(err)
				return
			}
		default:
			if _, err := io.Copy(io.Discard, p); err != nil {
				fail(err)
				return
			}
		}
	}
	if pending == nil {
		s.fail(c, cx.Invalid("file", "no file was uploaded; send the recording in the multipart field \"file\"").With(api.ReasonUploadNoFile))
		return
	}
	title = strings.TrimSpace(title)
	if title == "" {
		title = strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename))
	}
	if !utf8.ValidString(title) || utf8.RuneCountInString(title) > maxTitle {
		s.fail(c, cx.Invalid("title", fmt.Sprintf("must be UTF-8 text of at most %d characters", maxTitle)).With(api.ReasonTitleTooLong, "max", maxTitle))
		return
	}
	a, created, err := s.storeClipBy(c.Request.Context(), pending, title, token(c).Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	src := pending.Source
	s.answerClip(c, a, created, src, audit.AudioUpload, audit.AudioUploadDuplicate, audit.Params{"source": fmt.Sprint(src)})
}

// answerClip answers a new clip as an upload is answered: 201 with the
// clip and the source format, or 200 if the same recording was stored
// before; action (duplicate for the latter) goes to the audit log, with p
// and the clip's title, sha256 and duration.
func (s *Server) answerClip(c *gin.Context, a store.Audio, created bool, src media.Format, action, duplicate audit.Action, p audit.Params) {
	out := s.audioOut(a)
	out.Source = (*api.AudioFormat)(&src)
	status := http.StatusOK // the same recording was stored before
	if created {
		status = http.StatusCreated
		p["title"], p["sha256"], p["duration_ms"] = a.Title, a.SHA256, audit.Int(a.DurationMS)
		noteAudit(c, action, "audio/"+strconv.FormatInt(a.ID, 10), p)
	} else {
		noteAudit(c, duplicate, "audio/"+strconv.FormatInt(a.ID, 10), audit.Params{"sha256": a.SHA256})
	}
	c.JSON(status, out)
}

// storeClip records a converted clip, with its loudness, in the library,
// by no one in particular (a CAP alert's recording).
func (s *Server) storeClip(ctx context.Context, p *media.Pending, title string) (store.Audio, bool, error) {
	return s.storeClipBy(ctx, p, title, "")
}

// storeClipBy records a converted clip, with its loudness, in the library,
// as put there by the user or token named by. A clip with the same sha256
// already stored is returned instead, with created false (and its own
// uploader).
func (s *Server) storeClipBy(ctx context.Context, p *media.Pending, title, by string) (store.Audio, bool, error) {
	lufs, peak, gain := p.LoudnessLUFS, p.PeakDBFS, p.GainDB
	return s.store.CreateAudio(ctx, store.Audio{
		SHA256: p.SHA256, Title: title, DurationMS: p.DurationMS,
		SampleRate: p.SampleRate, Channels: p.Channels, SizeBytes: p.SizeBytes,
		LoudnessLUFS: &lufs, PeakDBFS: &peak, GainDB: &gain, CreatedBy: by,
	}, p.Commit)
}

var errNoSpeech = &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonTTSUnavailable, Message: "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)"}

// speak turns text into a clip of the library by the path of an upload:
// the speaker's WAV is checked, converted, measured for loudness and
// stored under its sha256 exactly as an uploaded file is. It returns the
// clip, the format the speaker wrote and whether the clip is new; by names
// who asked for it.
func (s *Server) speak(ctx context.Context, text, voice, title, by string) (store.Audio, media.Format, bool, error) {
	if s.o.Speaker == nil {
		return store.Audio{}, media.Format{}, false, errNoSpeech
	}
	if voice == "" {
		voice = s.o.Voice
	}
	wav, err := s.o.Speaker.Speak(ctx, text, voice)
	if err != nil {
		return store.Audio{}, media.Format{}, false, fmt.Errorf("text-to-speech: %w", err)
	}
	p, err := s.lib.Prepare(ctx, bytes.NewReader(wav))
	if err != nil {
		return store.Audio{}, media.Format{}, false, fmt.Errorf("text-to-speech output: %w", err)
	}
	defer p.Discard()
	a, created, err := s.storeClipBy(ctx, p, title, by)
	return a, p.Source, created, err
}

// checkSpeechText checks the text of a text-to-speech request and returns
// it trimmed.
func checkSpeechText(text string) (string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return "", cx.Invalid("text", "is empty; write what the loudspeakers should say").With(api.ReasonTextEmpty)
	case !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxText:
		return "", cx.Invalid("text", fmt.Sprintf("must be UTF-8 text of at most %d characters", maxText)).With(api.ReasonTextTooLong, "max", maxText)
	}
	return text, nil
}

// postAudioTTS speaks a text into a clip of the library: {text, voice,
// title}, answered as an upload is.
func (s *Server) postAudioTTS(c *gin.Context) {
	var req api.TTSRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	text, err := checkSpeechText(req.Text)
	if err != nil {
		s.fail(c, err)
		return
	}
	title := strings.TrimSpace(req.Title)
	if title == "" {
		title = broadcasts.SpeechTitle(text)
	}
	if !utf8.ValidString(title) || utf8.RuneCountInString(title) > maxTitle {
		s.fail(c, cx.Invalid("title", fmt.Sprintf("must be UTF-8 text of at most %d characters", maxTitle)).With(api.ReasonTitleTooLong, "max", maxTitle))
		return
	}
	voice := strings.TrimSpace(req.Voice)
	release, ok := s.uploadSlot(c)
	if !ok {
		return
	}
	defer release()
	a, src, created, err := s.speak(c.Request.Context(), text, voice, title, token(c).Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	if voice == "" {
		voice = s.o.Voice
	}
	if voice == "" {
		voice = "the speaker's default"
	}
	s.answerClip(c, a, created, src, audit.AudioTTS, audit.AudioTTSDuplicate, audit.Params{"voice": voice})
}

// uploadError turns the body limit into the same message media gives.
func (s *Server) uploadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return cx.Errorf(cx.ETOOLARGE, "the file is larger than the %s limit; upload a shorter recording, or export it as mono 22050 Hz 16-bit WAV, which is smaller", sizeText(s.lib.MaxBytes())).With(api.ReasonFileTooLarge, "limit", sizeText(s.lib.MaxBytes()))
	}
	return err
}

func (s *Server) getAudioList(c *gin.Context) (any, error) {
	return list(c, func(as []api.Audio) api.AudioList { return api.AudioList{Audio: as} }, s.store.AudioList, s.audioOut)
}

func (s *Server) getAudio(c *gin.Context) (any, error) { return byID(c, s.store.Audio, s.audioOut) }

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
	s.extendWrite(c, a.SizeBytes)
	http.ServeContent(c.Writer, c.Request, a.SHA256+".wav", a.CreatedAt, f)
}

// speech speaks broadcasts' text into clips for the broadcasts service,
// as POST /api/v1/audio/tts does.
type speech struct{ s *Server }

func (sp speech) Speak(ctx context.Context, text, voice, title, by string) (store.Audio, error) {
	a, _, _, err := sp.s.speak(ctx, text, voice, title, by)
	return a, err
}
