package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
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

func (s *Server) putTownshipConfig(c *gin.Context) (any, error) {
	return s.putConfig(c, store.ScopeTownship, c.Param("name"))
}

func (s *Server) getTownshipConfig(c *gin.Context) {
	s.getConfig(c, store.ScopeTownship, c.Param("name"))
}

func (s *Server) putVillageConfig(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	return s.putConfig(c, store.ScopeVillage, code)
}

func (s *Server) getVillageConfig(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.getConfig(c, store.ScopeVillage, code)
}

// putConfig sets the settings of a township or village
// (boxconfig.Service.Put), which the outbox publishes to each group.
func (s *Server) putConfig(c *gin.Context, scope, name string) (any, error) {
	var cfg api.BoxConfig
	if err := decodeJSON(c, &cfg); err != nil {
		return nil, err
	}
	servicesAudit(c)
	bc, pending, err := s.boxconfig.Put(c.Request.Context(), s.person(c), scope, name, cfg)
	if err != nil {
		return nil, err
	}
	return reply{deliveredStatus(c, pending, http.StatusOK), s.namedConfig(configOut(bc))}, nil
}

func (s *Server) getConfig(c *gin.Context, scope, name string) {
	bc, err := s.store.GetBoxConfig(c.Request.Context(), scope, name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.namedConfig(configOut(bc)))
}
