package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

func playlistOut(p store.Playlist) api.Playlist {
	if p.Items == nil {
		p.Items = []playlists.Item{}
	}
	return api.Playlist{Playlist: p.Playlist, TotalMS: p.Duration().Milliseconds(), CreatedAt: p.CreatedAt.UTC(), DeletedAt: timePtr(p.DeletedAt)}
}

// postPlaylist takes a playlists.Playlist; the id and each item's sha256
// and duration, if sent, are ignored and filled from the library.
func (s *Server) postPlaylist(c *gin.Context) {
	var p playlists.Playlist
	if err := decodeJSON(c, &p); err != nil {
		s.fail(c, err)
		return
	}
	p.ID = 0
	p.Name = strings.TrimSpace(p.Name)
	if utf8.RuneCountInString(p.Name) > maxTitle {
		s.fail(c, cx.Invalid("name", fmt.Sprintf("is longer than %d characters", maxTitle)).With(api.ReasonNameTooLong, "max", maxTitle))
		return
	}
	for i := range p.Items {
		p.Items[i].SHA256, p.Items[i].DurationMS = "", 0
	}
	pl, err := s.store.CreatePlaylist(c.Request.Context(), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.PlaylistCreate, "playlist/"+strconv.FormatInt(pl.ID, 10), audit.Params{"name": pl.Name, "items": audit.Int(len(pl.Items))})
	c.JSON(http.StatusCreated, playlistOut(pl))
}

func (s *Server) getPlaylists(c *gin.Context) (any, error) {
	return list(c, func(ps []api.Playlist) api.PlaylistList { return api.PlaylistList{Playlists: ps} }, s.store.Playlists, playlistOut)
}

func (s *Server) getPlaylist(c *gin.Context) (any, error) {
	return byID(c, s.store.GetPlaylist, playlistOut)
}
