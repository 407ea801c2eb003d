// Package httpapi is the controller's HTTP API (Gin): what county staff use
// to import villages, upload audio, build playlists, schedule and withdraw
// broadcasts and see who heard them; and the few calls boxes make (enroll,
// clock, audio download). It is described in api/openapi.yaml.
//
// Every error is an api.ErrorBody; this is the only place where the
// controller's domain error codes become HTTP statuses.
package httpapi

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Publisher delivers schedules to the boxes: it keeps each group's desired
// state retained on the broker.
type Publisher interface {
	PublishSchedule(ctx context.Context, s playlists.Schedule, p playlists.Playlist, groups []api.Group) error
	WithdrawSchedule(ctx context.Context, scheduleID int64, groups []api.Group) error
}

// Store is what the HTTP API needs of the database.
type Store interface {
	// Credentials and the audit log.
	Authenticate(ctx context.Context, token string) (store.Token, error)
	CheckAgentPassword(ctx context.Context, username, password string) (village string, err error)
	CreateToken(ctx context.Context, name, role string) (store.Token, string, error)
	Tokens(ctx context.Context) ([]store.Token, error)
	RevokeToken(ctx context.Context, id int64) error
	Audit(ctx context.Context, e store.AuditEntry) error
	AuditLog(ctx context.Context, before int64, limit int) ([]store.AuditEntry, error)

	// Villages and their boxes.
	ImportVillages(ctx context.Context, vs []store.Village) (store.ImportCounts, error)
	VillageStates(ctx context.Context) ([]store.VillageState, error)
	CreateEnrollToken(ctx context.Context, village string, ttl time.Duration, createdBy string) (store.EnrollToken, error)
	Enroll(ctx context.Context, req api.EnrollRequest) (store.AgentCredentials, error)

	// The audio library and playlists.
	CreateAudio(ctx context.Context, a store.Audio, commit func() error) (store.Audio, bool, error)
	Audio(ctx context.Context, id int64) (store.Audio, error)
	AudioList(ctx context.Context) ([]store.Audio, error)
	CreatePlaylist(ctx context.Context, p playlists.Playlist) (store.Playlist, error)
	GetPlaylist(ctx context.Context, id int64) (store.Playlist, error)
	Playlists(ctx context.Context) ([]store.Playlist, error)

	// Schedules and what boxes reported about them.
	CreateSchedule(ctx context.Context, s playlists.Schedule, createdBy string) (store.Schedule, error)
	GetSchedule(ctx context.Context, id int64) (store.Schedule, error)
	Schedules(ctx context.Context, withdrawn bool) ([]store.Schedule, error)
	WithdrawSchedule(ctx context.Context, id int64) (store.Schedule, error)
	ScheduleEvents(ctx context.Context, scheduleID int64, occurrence string) ([]store.Event, error)
}

// DefaultMaxUploadBytes bounds an audio upload when Options leave it 0.
const DefaultMaxUploadBytes = 50 << 20

// Options configure a Server. Store and Publisher are required.
type Options struct {
	Store     Store
	Publisher Publisher
	// DataDir holds the audio library in DataDir/audio.
	DataDir string
	// MaxUploadBytes is the largest audio upload (DefaultMaxUploadBytes if 0).
	MaxUploadBytes int64
	// PublicURL is how boxes reach this API.
	PublicURL string
	// BrokerURL is the MQTT URL handed to a box at enrollment.
	BrokerURL string
	// TopicPrefix is handed to a box at enrollment (api.DefaultPrefix if "").
	TopicPrefix string
	// SigningPublicKey is the key boxes verify commands with.
	SigningPublicKey ed25519.PublicKey
	// EnrollTTL is how long an enrollment token lives (24 h if 0).
	EnrollTTL time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Server serves the API.
type Server struct {
	o      Options
	store  Store
	pub    Publisher
	lib    *media.Library
	log    *slog.Logger
	now    func() time.Time
	engine *gin.Engine
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Publisher == nil {
		return nil, errors.New("httpapi: Store and Publisher are required")
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = api.DefaultPrefix
	}
	if o.EnrollTTL <= 0 {
		o.EnrollTTL = store.DefaultEnrollTTL
	}
	if o.DataDir == "" {
		o.DataDir = "."
	}
	s := &Server{o: o, store: o.Store, pub: o.Publisher, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "httpapi")
	if s.now == nil {
		s.now = time.Now
	}
	lib, err := media.New(media.Options{Dir: filepath.Join(o.DataDir, "audio"), MaxBytes: o.MaxUploadBytes, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s.lib = lib
	s.engine = s.routes()
	return s, nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done/Err follow the request's context
	_ = e.SetTrustedProxies(nil) // the client address is the peer's, never a header's
	e.Use(s.recovery, s.logRequests)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, cx.Errorf(cx.ENOTFOUND, "no such API endpoint: %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)})
	})

	v1 := e.Group("/api/v1")
	// Boxes and anyone: no staff token.
	v1.GET("/clock", s.getClock)
	v1.POST("/enroll", s.postEnroll)
	v1.GET("/audio/:id/content", s.staffOrAgent, s.getAudioContent)

	staff := v1.Group("", s.staffOnly, s.audit)
	staff.GET("/villages", s.getVillages)
	staff.POST("/villages/import", s.postVillagesImport)
	staff.POST("/villages/:code/enroll", s.postEnrollToken)
	staff.GET("/audio", s.getAudioList)
	staff.POST("/audio", s.postAudio)
	staff.GET("/audio/:id", s.getAudio)
	staff.GET("/playlists", s.getPlaylists)
	staff.POST("/playlists", s.postPlaylist)
	staff.GET("/playlists/:id", s.getPlaylist)
	staff.GET("/schedules", s.getSchedules)
	staff.POST("/schedules", s.postSchedule)
	staff.GET("/schedules/:id", s.getSchedule)
	staff.DELETE("/schedules/:id", s.deleteSchedule)
	staff.GET("/schedules/:id/coverage", s.getCoverage)

	admin := staff.Group("", s.adminOnly)
	admin.GET("/audit", s.getAudit)
	admin.GET("/tokens", s.getTokens)
	admin.POST("/tokens", s.postToken)
	admin.DELETE("/tokens/:id", s.deleteToken)
	return e
}

// httpError is an error with a status of its own, for the few answers that
// are about HTTP itself rather than the domain.
type httpError struct {
	status    int
	code, msg string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps a domain error code to an HTTP status.
var statusOf = map[string]int{
	cx.EINVALID:      http.StatusBadRequest,
	cx.ENOTFOUND:     http.StatusNotFound,
	cx.ECONFLICT:     http.StatusConflict,
	cx.EUNAUTHORIZED: http.StatusUnauthorized,
	cx.EFORBIDDEN:    http.StatusForbidden,
	cx.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	cx.EINTERNAL:     http.StatusInternalServerError,
}

// fail answers with the error body for err and stops the handler chain.
func (s *Server) fail(c *gin.Context, err error) {
	s.failStatus(c, 0, err)
}

// failStatus is fail with the status of an EINVALID error overridden
// (the CSV import answers 422).
func (s *Server) failStatus(c *gin.Context, invalidStatus int, err error) {
	body := api.ErrorBody{}
	status := http.StatusInternalServerError
	var (
		he  *httpError
		fe  *playlists.FieldError
		ce  *cx.Error
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &he):
		status, body.Error.Code, body.Error.Message = he.status, he.code, he.msg
	case errors.As(err, &mbe):
		status, body.Error.Code = http.StatusRequestEntityTooLarge, cx.ETOOLARGE
		body.Error.Message = fmt.Sprintf("the request is larger than the %s limit", sizeText(mbe.Limit))
	case errors.As(err, &fe):
		status, body.Error.Code, body.Error.Message = http.StatusBadRequest, cx.EINVALID, fe.Error()
	case errors.As(err, &ce):
		status, body.Error.Code, body.Error.Message, body.Error.Details = statusOf[ce.Code], ce.Code, cx.Message(ce), ce.Details
		if status == 0 {
			status = http.StatusInternalServerError
		}
	default:
		body.Error.Code, body.Error.Message = cx.EINTERNAL, cx.Message(err)
	}
	if body.Error.Code == cx.EINVALID && invalidStatus != 0 {
		status = invalidStatus
	}
	if status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", `Bearer realm="cunxiang"`)
	}
	c.Error(err) //nolint:errcheck // logged with the request by logRequests
	c.AbortWithStatusJSON(status, body)
}

func sizeText(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// recovery turns a panic into a logged 500 answer.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", r, "stack", string(debug.Stack()))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			c.AbortWithStatusJSON(http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{Code: cx.EINTERNAL, Message: cx.Message(errors.New("panic"))}})
		}
	}()
	c.Next()
}

// logRequests logs every request once it is answered, with the error it
// failed with: this is where an internal error's details are logged.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	attrs := []any{
		"method", c.Request.Method, "path", c.Request.URL.Path, "status", status,
		"duration", time.Since(start).Round(time.Microsecond), "bytes", c.Writer.Size(), "remote", c.ClientIP(),
	}
	if a := actor(c); a != "" {
		attrs = append(attrs, "actor", a)
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "err", c.Errors.Last().Err)
	}
	lvl := slog.LevelInfo
	switch {
	case status >= 500:
		lvl = slog.LevelError
	case c.FullPath() == "/api/v1/clock" || c.FullPath() == "/api/v1/audio/:id/content" && status < 400:
		lvl = slog.LevelDebug // boxes call these all the time
	}
	s.log.Log(c.Request.Context(), lvl, "http", attrs...)
}

// Keys of values handlers leave on the gin context.
const (
	keyToken = "cx.token" // store.Token of the staff member
	keyAgent = "cx.agent" // village of the authenticated box
	keyAudit = "cx.audit" // auditNote
)

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

var errNoToken = &cx.Error{Code: cx.EUNAUTHORIZED, Message: "this API needs a staff token: send the header Authorization: Bearer <token>"}

// staffOnly admits requests with a live staff token.
func (s *Server) staffOnly(c *gin.Context) {
	tok, ok := bearer(c.Request)
	if !ok || tok == "" {
		s.fail(c, errNoToken)
		return
	}
	t, err := s.store.Authenticate(c.Request.Context(), tok)
	if err != nil {
		if cx.Code(err) == cx.EUNAUTHORIZED {
			err = &cx.Error{Code: cx.EUNAUTHORIZED, Message: "the token is unknown or revoked"}
		}
		s.fail(c, err)
		return
	}
	c.Set(keyToken, t)
	c.Next()
}

// adminOnly admits admin tokens (after staffOnly).
func (s *Server) adminOnly(c *gin.Context) {
	if t, _ := c.Get(keyToken); t == nil || t.(store.Token).Role != store.RoleAdmin {
		s.fail(c, cx.Errorf(cx.EFORBIDDEN, "only an admin token may do this"))
		return
	}
	c.Next()
}

// staffOrAgent admits a staff token or a box's MQTT credentials given as
// HTTP Basic auth.
func (s *Server) staffOrAgent(c *gin.Context) {
	if user, pass, ok := c.Request.BasicAuth(); ok {
		village, err := s.store.CheckAgentPassword(c.Request.Context(), user, pass)
		if err != nil {
			if cx.Code(err) == cx.EUNAUTHORIZED {
				c.Header("WWW-Authenticate", `Basic realm="cunxiang"`)
			}
			s.fail(c, err)
			return
		}
		c.Set(keyAgent, village)
		c.Next()
		return
	}
	if _, ok := bearer(c.Request); !ok {
		s.fail(c, &cx.Error{Code: cx.EUNAUTHORIZED, Message: "send a staff token (Authorization: Bearer) or the box's MQTT username and password (HTTP Basic)"})
		return
	}
	s.staffOnly(c)
}

// actor names who is making the request, for logs and the audit.
func actor(c *gin.Context) string {
	if t, ok := c.Get(keyToken); ok {
		return t.(store.Token).Name
	}
	if v, ok := c.Get(keyAgent); ok {
		return store.AgentUsername(v.(string))
	}
	return ""
}

// auditNote is what a handler says about the change it made.
type auditNote struct {
	action, object, detail string
}

func noteAudit(c *gin.Context, action, object, detail string) {
	c.Set(keyAudit, auditNote{action, object, detail})
}

// audit appends to the audit log every staff POST or DELETE that
// succeeded.
func (s *Server) audit(c *gin.Context) {
	c.Next()
	m := c.Request.Method
	if (m != http.MethodPost && m != http.MethodDelete) || c.Writer.Status() >= 400 {
		return
	}
	n := auditNote{action: m + " " + c.FullPath(), object: c.Request.URL.Path}
	if v, ok := c.Get(keyAudit); ok {
		n = v.(auditNote)
	}
	s.writeAudit(c, actor(c), n)
}

func (s *Server) writeAudit(c *gin.Context, who string, n auditNote) {
	// The change is made; a request cancelled now must still be audited.
	ctx := context.WithoutCancel(c.Request.Context())
	err := s.store.Audit(ctx, store.AuditEntry{Actor: who, Action: n.action, Object: n.object, Detail: n.detail, RemoteAddr: c.ClientIP()})
	if err != nil {
		s.log.Error("audit entry lost", "actor", who, "action", n.action, "object", n.object, "err", err)
	}
}
