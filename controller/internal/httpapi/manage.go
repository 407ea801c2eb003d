package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Administration from the console: editing and deleting clips and
// playlists (guarded: what is in use stays). Editing a village and
// replacing its box are the villages service's (villages.go).

// patchAudio renames a clip: {"title": "..."}.
func (s *Server) patchAudio(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	var req api.AudioChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	if req.Title == nil {
		return nil, cx.Invalid("title", "give the new title").With(api.ReasonTitleEmpty)
	}
	before, err := s.store.Audio(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	a, err := s.store.RenameAudio(c.Request.Context(), id, *req.Title)
	if err != nil {
		return nil, err
	}
	noteAudit(c, audit.AudioRename, "audio/"+strconv.FormatInt(id, 10), audit.Params{"title_from": before.Title, "title_to": a.Title})
	return s.audioOut(a), nil
}

// deleteAudio deletes a clip no playlist and no active broadcast uses;
// otherwise 409, whose details name each use.
func (s *Server) deleteAudio(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	a, err := s.store.DeleteAudio(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	noteAudit(c, audit.AudioDelete, "audio/"+strconv.FormatInt(id, 10), audit.Params{"title": a.Title})
	return reply{http.StatusNoContent, nil}, nil
}

// patchPlaylist changes a playlist's name, and its items and gap while
// no live schedule or active broadcast uses it.
func (s *Server) patchPlaylist(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	var req api.PlaylistChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	if req.Name == nil && req.GapMS == nil && req.Items == nil {
		return nil, cx.Invalid("name", "give name, gap_ms or items to change").With(api.ReasonNothingToChange)
	}
	if req.Items != nil {
		for i := range *req.Items {
			(*req.Items)[i].SHA256, (*req.Items)[i].DurationMS = "", 0
		}
	}
	p, err := s.store.UpdatePlaylist(c.Request.Context(), id, store.PlaylistChange{Name: req.Name, GapMS: req.GapMS, Items: req.Items})
	if err != nil {
		return nil, err
	}
	noteAudit(c, audit.PlaylistUpdate, "playlist/"+strconv.FormatInt(id, 10), audit.Params{"name": p.Name, "items": audit.Int(len(p.Items)), "gap_ms": audit.Int(p.GapMS)})
	return playlistOut(p), nil
}

// deletePlaylist deletes a playlist no live schedule and no active
// broadcast uses; otherwise 409, whose details name each use.
func (s *Server) deletePlaylist(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	p, err := s.store.DeletePlaylist(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	noteAudit(c, audit.PlaylistDelete, "playlist/"+strconv.FormatInt(id, 10), audit.Params{"name": p.Name})
	return reply{http.StatusNoContent, nil}, nil
}

// audioOut is audioOut with the uploader's display name.
func (s *Server) audioOut(a store.Audio) api.Audio {
	out := audioOut(a)
	out.CreatedByName = s.nameOf(out.CreatedBy)
	return out
}

// nameCache maps usernames to display names, reloaded when the store's
// data changes.
type nameCache struct {
	mu      sync.Mutex
	version uint64
	loaded  bool
	names   map[string]string
}

// nameOf is the display name of the user called who, or who itself (an
// API token's name, a user without a display name, "").
func (s *Server) nameOf(who string) string {
	if who == "" {
		return ""
	}
	n := &s.names
	n.mu.Lock()
	defer n.mu.Unlock()
	if v := s.store.Version(); !n.loaded || v != n.version {
		us, err := s.store.Users(context.Background(), true)
		if err != nil {
			s.log.Error("load display names", "err", err)
			return who
		}
		n.names = make(map[string]string, len(us))
		for _, u := range us {
			if u.DisplayName != "" {
				n.names[u.Username] = u.DisplayName
			}
		}
		n.version, n.loaded = v, true
	}
	if d, ok := n.names[who]; ok {
		return d
	}
	return who
}
