package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// namedConfig fills in the display name of who last changed settings.
func (s *Server) namedConfig(c api.Settings) api.Settings {
	c.UpdatedByName = s.nameOf(c.UpdatedBy)
	return c
}

func configOut(bc store.BoxConfig) api.Settings {
	out := api.Settings{Scope: bc.Scope, Name: bc.Name, QuietHours: bc.Config.QuietHours, Volume: bc.Config.Volume,
		Timezone: bc.Config.Timezone, Groups: bc.Groups, UpdatedAt: timePtr(bc.UpdatedAt), UpdatedBy: bc.UpdatedBy}
	if out.QuietHours == nil {
		out.QuietHours = []playlists.QuietWindow{}
	}
	if out.Groups == nil {
		out.Groups = []api.Group{}
	}
	return out
}

// maxQuietWindows bounds the quiet hours of one township or village: a
// day has room for few, and the signed command must stay far below the
// broker's packet limit.
const maxQuietWindows = 24

// decodeConfig reads and checks box settings, naming the field at fault.
func decodeConfig(c *gin.Context) (api.BoxConfig, error) {
	var cfg api.BoxConfig
	if err := decodeJSON(c, &cfg); err != nil {
		return cfg, err
	}
	if len(cfg.QuietHours) > maxQuietWindows {
		return cfg, cx.Invalid("quiet_hours", fmt.Sprintf("has %d windows; at most %d", len(cfg.QuietHours), maxQuietWindows)).With(api.ReasonConfigQuietTooMany, "max", maxQuietWindows)
	}
	for i, w := range cfg.QuietHours {
		if err := w.Validate(); err != nil {
			var fe *playlists.FieldError
			if errors.As(err, &fe) {
				fe.Field = strings.Replace(fe.Field, "quiet_hours", fmt.Sprintf("quiet_hours[%d]", i), 1)
			}
			return cfg, err
		}
	}
	if cfg.Volume < 0 || cfg.Volume > 100 {
		return cfg, cx.Invalid("volume", "must be a percentage from 1 to 100 (0 leaves it unset here)").With(api.ReasonConfigVolume)
	}
	if cfg.Timezone != "" {
		if _, err := time.LoadLocation(cfg.Timezone); err != nil {
			return cfg, cx.Invalid("timezone", fmt.Sprintf("%q is not an IANA time zone such as Asia/Shanghai", cfg.Timezone)).With(api.ReasonTimezoneUnknown, "value", cfg.Timezone)
		}
	}
	return cfg, nil
}

func (s *Server) putTownshipConfig(c *gin.Context) {
	s.putConfig(c, store.ScopeTownship, c.Param("name"))
}

func (s *Server) getTownshipConfig(c *gin.Context) {
	s.getConfig(c, store.ScopeTownship, c.Param("name"))
}

func (s *Server) putVillageConfig(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.putConfig(c, store.ScopeVillage, code)
}

func (s *Server) getVillageConfig(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.getConfig(c, store.ScopeVillage, code)
}

// putConfig stores the settings, and through the outbox publishes them to
// each group.
func (s *Server) putConfig(c *gin.Context, scope, name string) {
	cfg, err := decodeConfig(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	bc, err := s.store.PutBoxConfig(ctx, scope, name, cfg, actor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := audit.Params{"timezone": cfg.Timezone, "groups": audit.List(bc.Groups)}
	if cfg.Volume != 0 {
		p["volume"] = audit.Int(cfg.Volume)
	}
	quiet := make([]string, len(cfg.QuietHours))
	for i, w := range cfg.QuietHours {
		quiet[i] = w.From + "-" + w.To
	}
	p["quiet_hours"] = audit.List(quiet)
	p["unset"] = audit.Flag(p["volume"] == "" && p["quiet_hours"] == "" && p["timezone"] == "")
	noteAudit(c, audit.ConfigPut, scope+"/"+name, p)
	c.JSON(deliveredStatus(c, s.deliver(ctx, store.OutboxConfig, store.ConfigRef(scope, name)) != nil, http.StatusOK), s.namedConfig(configOut(bc)))
}

func (s *Server) getConfig(c *gin.Context, scope, name string) {
	bc, err := s.store.GetBoxConfig(c.Request.Context(), scope, name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.namedConfig(configOut(bc)))
}
