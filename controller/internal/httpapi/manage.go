package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/villagecsv"
	"github.com/cunxiang/cunxiang/playlists"
)

// Administration from the console: editing and deleting clips and
// playlists (guarded: what is in use stays), editing a village, and
// replacing a village's box.

// patchAudio renames a clip: {"title": "..."}.
func (s *Server) patchAudio(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.AudioChange
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Title == nil {
		s.fail(c, cx.Invalid("title", "give the new title").With(api.ReasonTitleEmpty))
		return
	}
	before, err := s.store.Audio(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.store.RenameAudio(c.Request.Context(), id, *req.Title)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.AudioRename, "audio/"+strconv.FormatInt(id, 10), audit.Params{"title_from": before.Title, "title_to": a.Title})
	c.JSON(http.StatusOK, s.audioOut(a))
}

// deleteAudio deletes a clip no playlist and no active broadcast uses;
// otherwise 409, whose details name each use.
func (s *Server) deleteAudio(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.store.DeleteAudio(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.AudioDelete, "audio/"+strconv.FormatInt(id, 10), audit.Params{"title": a.Title})
	c.Status(http.StatusNoContent)
}

// patchPlaylist changes a playlist's name, and its items and gap while
// no live schedule or active broadcast uses it.
func (s *Server) patchPlaylist(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.PlaylistChange
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Name == nil && req.GapMS == nil && req.Items == nil {
		s.fail(c, cx.Invalid("name", "give name, gap_ms or items to change").With(api.ReasonNothingToChange))
		return
	}
	if req.Items != nil {
		for i := range *req.Items {
			(*req.Items)[i].SHA256, (*req.Items)[i].DurationMS = "", 0
		}
	}
	p, err := s.store.UpdatePlaylist(c.Request.Context(), id, store.PlaylistChange{Name: req.Name, GapMS: req.GapMS, Items: req.Items})
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.PlaylistUpdate, "playlist/"+strconv.FormatInt(id, 10), audit.Params{"name": p.Name, "items": audit.Int(len(p.Items)), "gap_ms": audit.Int(p.GapMS)})
	c.JSON(http.StatusOK, playlistOut(p))
}

// deletePlaylist deletes a playlist no live schedule and no active
// broadcast uses; otherwise 409, whose details name each use.
func (s *Server) deletePlaylist(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.store.DeletePlaylist(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.PlaylistDelete, "playlist/"+strconv.FormatInt(id, 10), audit.Params{"name": p.Name})
	c.Status(http.StatusNoContent)
}

// patchVillage edits a village: name, township, lat, lon, device, each
// optional, checked by the rules of the CSV import. The code is the key
// and does not change.
func (s *Server) patchVillage(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.VillageChange
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	cur, err := s.store.VillageState(ctx, code)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := map[string]string{"code": code, "name": cur.Name, "township": cur.Township,
		"lat": strconv.FormatFloat(cur.Lat, 'f', -1, 64), "lon": strconv.FormatFloat(cur.Lon, 'f', -1, 64), "device": cur.Device}
	for k, v := range map[string]*string{"name": req.Name, "township": req.Township, "device": req.Device} {
		if v != nil {
			f[k] = *v
		}
	}
	for k, v := range map[string]*float64{"lat": req.Lat, "lon": req.Lon} {
		if v != nil {
			f[k] = strconv.FormatFloat(*v, 'f', -1, 64)
		}
	}
	row, problems := villagecsv.CheckFields(f)
	if len(problems) > 0 {
		s.fail(c, &cx.Error{Code: cx.EINVALID, Field: problems[0].Field, Message: problems[0].Reason, Details: problems,
			Reason: api.ReasonVillageInvalid, Params: cx.Params("n", len(problems))})
		return
	}
	before, after, err := s.store.UpdateVillage(ctx, store.Village{Code: code, Name: row.Name, Township: row.Township, Lat: row.Lat, Lon: row.Lon, Device: row.Device})
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.VillageUpdate, "village/"+code, villageChange(before, after))
	v, err := s.store.VillageState(ctx, code)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, villageOut(v))
}

// villageChange says what an edit changed, field by field: <field>_from
// and <field>_to of each field changed.
func villageChange(a, b store.Village) audit.Params {
	p := audit.Params{}
	add := func(field string, x, y any) {
		if fx, fy := fmt.Sprint(x), fmt.Sprint(y); fx != fy {
			p[field+"_from"], p[field+"_to"] = fx, fy
		}
	}
	add("name", a.Name, b.Name)
	add("township", a.Township, b.Township)
	add("lat", a.Lat, b.Lat)
	add("lon", a.Lon, b.Lon)
	add("device", a.Device, b.Device)
	p["unchanged"] = audit.Flag(len(p) == 0)
	return p
}

// postReplaceBox replaces a village's box in one step: the old box's
// credentials are revoked (if it has any) and a new enrollment token is
// issued for the box that takes its place.
func (s *Server) postReplaceBox(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	v, err := s.store.VillageState(ctx, code)
	if err != nil {
		s.fail(c, err)
		return
	}
	if v.Device != playlists.DeviceAgent {
		s.fail(c, cx.Errorf(cx.ECONFLICT, "village %s has no box (device %s); set its device to agent first", code, v.Device).With(api.ReasonVillageNoBox, "code", code))
		return
	}
	if v.Agent != nil && !v.Agent.Revoked {
		if !s.revokeBox(c, code) {
			return
		}
	}
	et, err := s.store.CreateEnrollToken(ctx, code, s.o.EnrollTTL, actor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.VillageEnrollToken, "village/"+code, audit.Params{"replacement": audit.Flag(true), "expires_at": audit.Time(et.ExpiresAt)})
	c.JSON(http.StatusCreated, api.EnrollToken{Token: et.Token, Village: et.Village, ExpiresAt: et.ExpiresAt.UTC()})
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
