package httpapi

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/outbound"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// capFetchTimeout bounds fetching the recording a CAP alert links: an
// alert must not wait long on a slow server, since its text can be spoken
// instead.
const capFetchTimeout = 20 * time.Second

// fetchCAPAudio fetches the recording an alert links, checks it against
// the alert's SHA-1 digest if it gives one, and puts it in the audio
// library like an upload (decoded and converted completely, loudness
// measured). The fetch is fenced (Options.CAPFetchAllow): an address that
// is not public is refused before anything is sent to it. The error says,
// for the alert's note, why it was not used.
func (s *Server) fetchCAPAudio(ctx context.Context, uri, digest, title string) (store.Audio, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return store.Audio{}, fmt.Errorf("%q is not an http or https address", uri)
	}
	ctx, cancel := context.WithTimeout(ctx, capFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return store.Audio{}, err
	}
	req.Header.Set("Accept", "audio/*")
	resp, err := s.capHTTP.Do(req)
	if errors.Is(err, outbound.ErrRefused) {
		// The same words whatever the refused host would have done, so
		// that alerts cannot probe the controller's network.
		return store.Audio{}, outbound.ErrRefused
	}
	if err != nil {
		return store.Audio{}, fmt.Errorf("fetching it failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return store.Audio{}, fmt.Errorf("its server answered %s", resp.Status)
	}
	h := sha1.New()
	p, err := s.lib.Prepare(ctx, io.TeeReader(resp.Body, h))
	if err != nil {
		return store.Audio{}, fmt.Errorf("it is not a usable recording: %s", cx.Message(err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); digest != "" && got != digest {
		p.Discard()
		return store.Audio{}, fmt.Errorf("its SHA-1 is %s, not the alert's digest %s", got, digest)
	}
	a, _, err := s.storeClip(ctx, p, title)
	if err != nil {
		p.Discard()
		return store.Audio{}, fmt.Errorf("storing it failed: %s", cx.Message(err))
	}
	return a, nil
}
