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
	"maps"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/alerts"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/boxconfig"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/chain"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/outbound"
	"github.com/cunxiang/cunxiang/controller/internal/reports"
	"github.com/cunxiang/cunxiang/controller/internal/schedules"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/users"
	"github.com/cunxiang/cunxiang/controller/internal/villages"
	"github.com/cunxiang/cunxiang/playlists"
)

// BrokerAccounts creates and deletes boxes' accounts on an external MQTT
// broker (villages.BrokerAccounts).
type BrokerAccounts = villages.BrokerAccounts

// BoxSessions cuts a box's open MQTT sessions once its old credentials no
// longer work (the embedded broker: broker.Server.Revoke).
type BoxSessions = villages.Sessions

// Publisher delivers to the boxes what the store's changes put in its
// outbox (delivery.Service): Deliver waits until the entries of kind for
// ref are on the broker, or ctx ends; then it returns an error and goes on
// trying by itself.
type Publisher interface {
	Deliver(ctx context.Context, kind, ref string) error
}

// Speaker turns text into speech: a WAV in any format the audio upload
// accepts. voice "" lets the speaker choose.
type Speaker interface {
	Speak(ctx context.Context, text, voice string) (wav []byte, err error)
}

// Store is what the HTTP API needs of the database.
type Store interface {
	// Credentials, users and the audit log.
	Authenticate(ctx context.Context, token string) (store.Token, error)
	CheckAgentPassword(ctx context.Context, username, password string) (village string, err error)
	Users(ctx context.Context, deleted bool) ([]store.User, error)
	RenameAudio(ctx context.Context, id int64, title string) (store.Audio, error)
	DeleteAudio(ctx context.Context, id int64) (store.Audio, error)
	UpdatePlaylist(ctx context.Context, id int64, ch store.PlaylistChange) (store.Playlist, error)
	DeletePlaylist(ctx context.Context, id int64) (store.Playlist, error)
	Audit(ctx context.Context, e store.AuditEntry) error
	AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)

	// Villages, their boxes and their settings.
	Villages(ctx context.Context) ([]playlists.Village, error)
	VillageStates(ctx context.Context) ([]store.VillageState, error)
	VillageState(ctx context.Context, code string) (store.VillageState, error)
	GetBoxConfig(ctx context.Context, scope, name string) (store.BoxConfig, error)

	// The audio library and playlists.
	CreateAudio(ctx context.Context, a store.Audio, commit func() error) (store.Audio, bool, error)
	Audio(ctx context.Context, id int64) (store.Audio, error)
	AudioList(ctx context.Context) ([]store.Audio, error)
	CreatePlaylist(ctx context.Context, p playlists.Playlist) (store.Playlist, error)
	GetPlaylist(ctx context.Context, id int64) (store.Playlist, error)
	Playlists(ctx context.Context) ([]store.Playlist, error)

	// Schedules and what boxes reported about them (the schedules
	// service makes and withdraws them).
	GetSchedule(ctx context.Context, id int64) (store.Schedule, error)
	Schedules(ctx context.Context, withdrawn bool) ([]store.Schedule, error)

	// Idempotency-Key: the first answer of a creating POST (idempotency.go).
	ClaimIdempotencyKey(ctx context.Context, person, key, requestHash string) (store.IdempotentAnswer, bool, error)
	IdempotentAnswer(ctx context.Context, person, key string) (store.IdempotentAnswer, error)
	FinishIdempotencyKey(ctx context.Context, person, key string, status int, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, person, key string) (bool, error)
	TakeOverIdempotencyKey(ctx context.Context, person, key string) (bool, error)
	// A village's recent reports and confirmations.
	VillageEvents(ctx context.Context, village string, limit int) ([]store.Event, error)
	VillageConfirmations(ctx context.Context, village string, since time.Time) ([]store.Confirmation, error)

	// Broadcasts and what boxes (and people) reported about them (the
	// broadcasts service makes and changes them).
	Broadcasts(ctx context.Context, limit int) ([]store.Broadcast, error)
	BroadcastProgresses(ctx context.Context, lo, hi int64) (map[int64]store.BroadcastProgress, error)

	// What the services behind the API need (they declare it).
	broadcasts.Store
	alerts.Store
	schedules.Store
	boxconfig.Store
	chain.Store
	ebdStore // the 上级平台 page (ebdstatus.go)
	reports.Store
	villages.Store
	users.Store

	// Version changes whenever the data changes (cached reports, heavy.go).
	Version() uint64
}

// DefaultMaxUploadBytes bounds an audio upload when Options leave it 0.
const DefaultMaxUploadBytes = 50 << 20

// DefaultMaxBroadcastTTL bounds a broadcast's expiry when Options leave it 0.
const DefaultMaxBroadcastTTL = 7 * 24 * time.Hour

// Options configure a Server. Store and Publisher are required; every
// other field has a working zero value.
type Options struct {
	Store     Store
	Publisher Publisher
	// Speaker speaks the text of text broadcasts; nil refuses them (503).
	Speaker Speaker
	// Voice is passed to Speaker when a request names none.
	Voice string
	// CountyName is the county's name, which GET /api/v1/me tells a
	// console to head its pages with ("" if unset).
	CountyName string
	// DataDir holds the audio library in DataDir/audio.
	DataDir string
	// MaxUploadBytes is the largest audio upload (DefaultMaxUploadBytes if 0).
	MaxUploadBytes int64
	// MaxConcurrentUploads is how many uploads and text-to-speech requests
	// are processed at once (DefaultMaxConcurrentUploads if 0); more are
	// answered 503 with Retry-After.
	MaxConcurrentUploads int
	// SlowClientGrace is how far behind the slowest supported link
	// (128 kbit/s) an upload or a download may fall before it is cut
	// (DefaultSlowClientGrace if 0).
	SlowClientGrace time.Duration
	// PublicURL is how boxes reach this API.
	PublicURL string
	// BrokerURL is the MQTT URL handed to a box at enrollment.
	BrokerURL string
	// TopicPrefix is handed to a box at enrollment (api.DefaultPrefix if "").
	TopicPrefix string
	// BrokerAccounts, if set, creates each box's account on an external
	// broker at enrollment (the embedded broker checks the store itself).
	BrokerAccounts BrokerAccounts
	// BoxSessions, if set, disconnects a box's sessions as soon as it is
	// re-enrolled or revoked (the embedded broker).
	BoxSessions BoxSessions
	// SigningPublicKey is the key boxes verify commands with.
	SigningPublicKey ed25519.PublicKey
	// EnrollTTL is how long an enrollment token lives (24 h if 0).
	EnrollTTL time.Duration
	// SessionTTL is how long a login lasts (store.DefaultSessionTTL, 12 h, if 0).
	SessionTTL time.Duration

	// ApprovalThreshold is the two-person rule: an urgent or emergency
	// broadcast that reaches more than this many townships, or targets
	// all, waits until a different person with the approver (or admin)
	// role approves it. 0 means 1; a negative value makes every urgent and
	// emergency broadcast wait.
	ApprovalThreshold int
	// PreApprovedEventTypes never wait for approval (e.g. "drill").
	PreApprovedEventTypes []string
	// MaxBroadcastTTL is how far ahead expires_at may be (DefaultMaxBroadcastTTL if 0).
	MaxBroadcastTTL time.Duration

	// CAPFetchAllow lets the CAP recording fetch reach these hosts, IP
	// addresses or CIDR ranges although they are not public (the county's
	// warning-release server on the LAN); everything else private is
	// refused (outbound.ParseAllow).
	CAPFetchAllow []string
	// OwnAddrs are this controller's listening addresses (host:port),
	// which the CAP recording fetch never connects to.
	OwnAddrs []string

	// Notifier feeds the live stream (GET /api/v1/stream); nil answers 503.
	Notifier *Notifier
	// EBD, if set, makes this controller a platform of the national
	// emergency-broadcast chain: POST /api/v1/ebd takes the upper
	// platform's packets (nil answers 503).
	EBD *EBDOptions
	// Console, if set, serves the web console: every GET outside /api/.
	Console http.Handler

	// DeliverWait is how long a request that changes what boxes hold
	// waits for the broker to take it (handoff.DefaultWait if 0: the services default it) before it
	// answers that the controller goes on trying.
	DeliverWait time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the API.
type Server struct {
	o      Options
	store  Store
	lib    *media.Library
	log    *slog.Logger
	now    func() time.Time
	engine *gin.Engine

	throttle loginThrottle // failed logins, per source address and (address, username)

	uploads chan struct{} // a slot per upload being processed (limits.go)

	capHTTP *http.Client // fetches CAP recordings, fenced (capaudio.go)

	pool         heavyPool   // the heavy read routes' own pool (heavy.go)
	reportsCache reportCache // computed coverage reports (heavy.go)

	// The application services every door shares.
	broadcasts *broadcasts.Service
	alerts     *alerts.Service
	schedules  *schedules.Service
	boxconfig  *boxconfig.Service
	chain      *chain.Service // nil: not set up for the upper platform
	reports    *reports.Service
	villages   *villages.Service
	users      *users.Service

	names nameCache // display names of usernames (manage.go)
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
	if o.MaxConcurrentUploads <= 0 {
		o.MaxConcurrentUploads = DefaultMaxConcurrentUploads
	}
	if o.SlowClientGrace <= 0 {
		o.SlowClientGrace = DefaultSlowClientGrace
	}
	if o.EnrollTTL <= 0 {
		o.EnrollTTL = store.DefaultEnrollTTL
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = store.DefaultSessionTTL
	}
	if o.ApprovalThreshold == 0 {
		o.ApprovalThreshold = 1
	}
	if o.MaxBroadcastTTL <= 0 {
		o.MaxBroadcastTTL = DefaultMaxBroadcastTTL
	}
	if o.DataDir == "" {
		o.DataDir = "."
	}
	s := &Server{o: o, store: o.Store, log: o.Logger, now: o.Now, uploads: make(chan struct{}, o.MaxConcurrentUploads), pool: newHeavyPool()}
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
	if s.capHTTP, err = outbound.NewClient(outbound.Options{Allow: o.CAPFetchAllow, Own: o.OwnAddrs, Timeout: capFetchTimeout}); err != nil {
		return nil, fmt.Errorf("httpapi: CAP fetch: %w", err)
	}
	if s.broadcasts, err = broadcasts.New(broadcasts.Options{
		Store: o.Store, Delivery: o.Publisher, Speech: speech{s},
		ApprovalThreshold: o.ApprovalThreshold, PreApprovedEventTypes: o.PreApprovedEventTypes, MaxTTL: o.MaxBroadcastTTL,
		DeliverWait: o.DeliverWait, Logger: o.Logger, Now: s.now,
	}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.schedules, err = schedules.New(schedules.Options{Store: o.Store, Delivery: o.Publisher, DeliverWait: o.DeliverWait, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.boxconfig, err = boxconfig.New(boxconfig.Options{Store: o.Store, Delivery: o.Publisher, DeliverWait: o.DeliverWait, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.alerts, err = alerts.New(alerts.Options{Store: o.Store, Broadcasts: s.broadcasts, Recordings: capRecordings{s}, Logger: o.Logger, Now: s.now}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.users, err = users.New(users.Options{Store: o.Store, SessionTTL: o.SessionTTL, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.villages, err = villages.New(villages.Options{Store: o.Store, Accounts: o.BrokerAccounts, Sessions: o.BoxSessions, EnrollTTL: o.EnrollTTL, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if s.reports, err = reports.New(reports.Options{Store: o.Store, NameOf: s.nameOf, Logger: o.Logger, Now: s.now}); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if e := o.EBD; e != nil {
		if s.chain, err = chain.New(chain.Options{Store: o.Store, Broadcasts: s.broadcasts, Clips: clips{s}, Requests: e.Requests,
			Trust: e.Trust, Identity: e.Identity, EBRID: e.EBRID, LocalApproval: e.LocalApproval, Logger: o.Logger, Now: s.now}); err != nil {
			return nil, fmt.Errorf("httpapi: %w", err)
		}
	}
	s.engine = s.routes()
	return s, nil
}

// EBDOptions set up the door of the national emergency-broadcast chain
// (see chain.Options).
type EBDOptions struct {
	EBRID         string
	Trust         *ebd.TrustStore
	Identity      *ebd.Identity
	LocalApproval bool
	Requests      chain.Requests

	// Upstream and UpstreamEBRID are the upper platform's URL and resource
	// code ("" if not set); Link, if set, is the state of the reports to
	// it (GET /api/v1/ebd/status, ebdstatus.go).
	Upstream, UpstreamEBRID string
	Link                    func() EBDLink
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// Broadcasts is the broadcasts service the API's doors use, for other
// doors to share.
func (s *Server) Broadcasts() *broadcasts.Service { return s.broadcasts }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done/Err follow the request's context
	_ = e.SetTrustedProxies(nil) // the client address is the peer's, never a header's
	e.Use(s.recovery, s.logRequests, s.limits)
	e.NoRoute(func(c *gin.Context) {
		if s.o.Console != nil && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) && !strings.HasPrefix(c.Request.URL.Path, "/api/") {
			c.Status(http.StatusOK) // gin presets 404 for NoRoute
			s.o.Console.ServeHTTP(c.Writer, c.Request)
			return
		}
		s.fail(c, cx.Errorf(cx.ENOTFOUND, "no such API endpoint: %s %s", c.Request.Method, c.Request.URL.Path).With(api.ReasonNoEndpoint))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", reason: api.ReasonNoEndpoint, msg: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)})
	})

	// Who may call each route is in the access table (access.go); guard
	// enforces it, audit records every change and every refusal.
	// The console's cookie session (console.go).
	con := e.Group("/console", s.guard)
	con.POST("/login", s.postConsoleLogin)
	con.POST("/logout", s.postConsoleLogout)

	v1 := e.Group("/api/v1", s.audit, s.guard)
	v1.GET("/clock", s.getClock)
	v1.POST("/enroll", s.wrap(s.postEnroll))
	v1.POST("/login", s.wrap(s.postLogin))
	v1.POST("/logout", s.wrap(s.postLogout))
	v1.GET("/me", s.getMe)
	v1.POST("/me/password", s.wrap(s.postMyPassword))
	v1.GET("/stream", s.getStream)

	v1.GET("/villages", s.wrap(s.getVillages))
	v1.POST("/villages/import", s.wrap(s.postVillagesImport))
	v1.GET("/villages/:code", s.wrap(s.getVillage))
	v1.POST("/villages/:code/enroll", s.wrap(s.postEnrollToken))
	v1.POST("/villages/:code/revoke", s.wrap(s.postRevokeBox))
	v1.PATCH("/villages/:code", s.wrap(s.patchVillage))
	v1.POST("/villages/:code/replace", s.wrap(s.postReplaceBox))
	v1.GET("/villages/:code/schedules", s.wrap(s.getVillageSchedules))
	v1.GET("/villages/:code/broadcasts", s.wrap(s.getVillageBroadcasts))
	v1.GET("/villages/:code/events", s.wrap(s.getVillageEvents))
	v1.POST("/villages/:code/confirmations", s.wrap(s.postConfirmation))
	v1.GET("/villages/:code/config", s.getVillageConfig)
	v1.PUT("/villages/:code/config", s.wrap(s.putVillageConfig))
	v1.GET("/townships/:name/config", s.getTownshipConfig)
	v1.PUT("/townships/:name/config", s.wrap(s.putTownshipConfig))

	v1.GET("/audio", s.wrap(s.getAudioList))
	v1.POST("/audio", s.postAudio)
	v1.POST("/audio/tts", s.postAudioTTS)
	v1.GET("/audio/:id", s.wrap(s.getAudio))
	v1.GET("/audio/:id/content", s.getAudioContent)
	v1.PATCH("/audio/:id", s.wrap(s.patchAudio))
	v1.DELETE("/audio/:id", s.wrap(s.deleteAudio))
	v1.GET("/box/broadcasts/:id", s.getBoxBroadcast)
	v1.GET("/playlists", s.wrap(s.getPlaylists))
	v1.POST("/playlists", s.idempotent(s.postPlaylist))
	v1.GET("/playlists/:id", s.wrap(s.getPlaylist))
	v1.PATCH("/playlists/:id", s.wrap(s.patchPlaylist))
	v1.DELETE("/playlists/:id", s.wrap(s.deletePlaylist))

	v1.GET("/schedules", s.wrap(s.getSchedules))
	v1.POST("/schedules", s.idempotent(s.wrap(s.postSchedule)))
	v1.GET("/schedules/:id", s.wrap(s.getSchedule))
	v1.DELETE("/schedules/:id", s.wrap(s.deleteSchedule))
	v1.GET("/schedules/:id/coverage", s.heavy(s.wrap(s.getCoverage)))
	v1.GET("/calendar", s.getCalendar)

	v1.GET("/broadcasts", s.wrap(s.getBroadcasts))
	v1.POST("/broadcasts", s.notifyingBroadcasts(s.idempotent(s.wrap(s.postBroadcast))))
	v1.GET("/broadcasts/:id", s.wrap(s.getBroadcast))
	v1.DELETE("/broadcasts/:id", s.notifyingBroadcasts(s.wrap(s.deleteBroadcast)))
	v1.POST("/broadcasts/:id/approve", s.notifyingBroadcasts(s.wrap(s.postApprove)))
	v1.POST("/broadcasts/:id/reject", s.notifyingBroadcasts(s.wrap(s.postReject)))
	v1.POST("/broadcasts/:id/resend", s.notifyingBroadcasts(s.wrap(s.postResend)))
	v1.GET("/broadcasts/:id/coverage", s.heavy(s.wrap(s.getBroadcastCoverage)))
	v1.POST("/alerts/cap", s.notifyingBroadcasts(s.wrap(s.postCAPAlert)))
	v1.POST("/ebd", s.postEBD)
	v1.GET("/ebd/status", s.wrap(s.getEBDStatus))
	v1.GET("/ebd/certificate", s.getEBDCertificate)
	v1.GET("/ebd/inbound", s.wrap(s.getEBDInbound))
	v1.GET("/ebd/outbound", s.wrap(s.getEBDOutbound))
	v1.GET("/ebd/terminals", s.wrap(s.getEBDTerminals))
	v1.PUT("/ebd/terminals/:code", s.wrap(s.putEBDTerminal))

	v1.GET("/reports/coverage", s.wrap(s.getCoverageReport))
	v1.GET("/audit", s.wrap(s.getAudit))
	v1.GET("/tokens", s.wrap(s.getTokens))
	v1.POST("/tokens", s.wrap(s.postToken))
	v1.DELETE("/tokens/:id", s.wrap(s.deleteToken))
	v1.GET("/users", s.wrap(s.getUsers))
	v1.POST("/users", s.wrap(s.postUser))
	v1.PATCH("/users/:id", s.wrap(s.patchUser))
	v1.DELETE("/users/:id", s.wrap(s.deleteUser))
	v1.GET("/login-throttles", s.getLoginThrottles)
	v1.DELETE("/login-throttles", s.deleteLoginThrottles)
	return e
}

// httpError is an error with a status of its own, for the few answers that
// are about HTTP itself rather than the domain.
type httpError struct {
	status    int
	code, msg string
	reason    string // an api.Reason… key
	params    map[string]any
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
	cx.EUNAVAILABLE:  http.StatusServiceUnavailable,
	cx.EINTERNAL:     http.StatusInternalServerError,
}

// handlerFunc is how a route's handler is written: it decodes the
// request, calls a service and returns what to answer, or the error to
// answer with; wrap encodes either. A handler that answers by itself (a
// CSV file) returns nil, nil.
type handlerFunc func(c *gin.Context) (any, error)

// reply is an answer with a status of its own (200 otherwise); a nil
// body answers the status alone (204 No Content).
type reply struct {
	status int
	body   any
}

// wrap makes a gin handler of h: an error becomes the error body and
// status (fail), an answer is written as JSON.
func (s *Server) wrap(h handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		out, err := h(c)
		var st *invalidStatusError
		switch {
		case errors.As(err, &st):
			s.failStatus(c, st.status, st.err)
		case err != nil:
			s.fail(c, err)
		case out == nil:
			// answered by the handler
		default:
			status := http.StatusOK
			if r, ok := out.(reply); ok {
				status, out = r.status, r.body
			}
			if out == nil {
				c.Status(status)
				return
			}
			c.JSON(status, out)
		}
	}
}

// invalidStatusError answers an EINVALID error with a status other than
// 400 (a CAP message that is well-formed but cannot be acted on: 422).
type invalidStatusError struct {
	status int
	err    error
}

func (e *invalidStatusError) Error() string { return e.err.Error() }
func (e *invalidStatusError) Unwrap() error { return e.err }

func invalidAs(status int, err error) error { return &invalidStatusError{status, err} }

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
		body.Error.Reason, body.Error.Params = he.reason, he.params
	case errors.As(err, &mbe):
		status, body.Error.Code = http.StatusRequestEntityTooLarge, cx.ETOOLARGE
		body.Error.Message = fmt.Sprintf("the request is larger than the %s limit", sizeText(mbe.Limit))
		body.Error.Reason, body.Error.Params = api.ReasonTooLarge, cx.Params("limit", sizeText(mbe.Limit))
	case errors.As(err, &fe):
		status, body.Error.Code, body.Error.Message = http.StatusBadRequest, cx.EINVALID, fe.Error()
		body.Error.Field, body.Error.Reason, body.Error.Params = fe.Field, fe.Reason, fe.Params
	case errors.As(err, &ce):
		status, body.Error.Code, body.Error.Message, body.Error.Details = statusOf[ce.Code], ce.Code, cx.Message(ce), ce.Details
		body.Error.Field, body.Error.Reason, body.Error.Params = ce.Field, ce.Reason, ce.Params
		if status == 0 {
			status = http.StatusInternalServerError
		}
	default:
		body.Error.Code, body.Error.Message, body.Error.Reason = cx.EINTERNAL, cx.Message(err), api.ReasonInternal
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
			c.AbortWithStatusJSON(http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{Code: cx.EINTERNAL, Reason: api.ReasonInternal, Message: cx.Message(errors.New("panic"))}})
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
	keyAudit = "cx.audit" // []auditNote
)

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

var errNoToken = &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonCredentials, Message: "this API needs a token: log in (POST /api/v1/login) and send the header Authorization: Bearer <token>"}

// authenticate admits requests with a live token, from the Authorization
// header or else the console's session cookie (with its CSRF header when
// the request changes something), and leaves it on the context.
func (s *Server) authenticate(c *gin.Context) (store.Token, bool) {
	tok, ok := bearer(c.Request)
	if !ok {
		var err error
		if tok, err = sessionToken(c.Request); err != nil {
			s.fail(c, err)
			return store.Token{}, false
		}
		ok = tok != ""
	}
	if !ok || tok == "" {
		s.fail(c, errNoToken)
		return store.Token{}, false
	}
	t, err := s.store.Authenticate(c.Request.Context(), tok)
	if err != nil {
		if errors.Is(err, store.ErrUnauthorized) {
			err = &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonCredentials, Message: "the token is unknown or revoked"}
		}
		s.fail(c, err)
		return store.Token{}, false
	}
	c.Set(keyToken, t)
	return t, true
}

// authenticateBox admits a box's MQTT credentials given as HTTP Basic auth.
func (s *Server) authenticateBox(c *gin.Context) bool {
	user, pass, _ := c.Request.BasicAuth()
	village, err := s.store.CheckAgentPassword(c.Request.Context(), user, pass)
	if err != nil {
		if cx.Code(err) == cx.EUNAUTHORIZED {
			c.Header("WWW-Authenticate", `Basic realm="cunxiang"`)
		}
		s.fail(c, err)
		return false
	}
	c.Set(keyAgent, village)
	return true
}

// token is the token the request was authenticated with.
func token(c *gin.Context) store.Token {
	t, _ := c.Get(keyToken)
	tok, _ := t.(store.Token)
	return tok
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

// auditNote is what a handler says about the change it made: the action,
// its object, and the action's parameters (audit.Params).
type auditNote struct {
	action audit.Action
	object string
	params audit.Params
}

// noteAudit records a change a handler made. It is written to the audit
// log whatever the answer: a handler notes a change once it is made, so a
// change whose delivery then failed is still on record. A handler that
// makes several changes (a CAP update creates one broadcast and cancels
// others) notes each.
func noteAudit(c *gin.Context, a audit.Action, object string, p audit.Params) {
	v, _ := c.Get(keyAudit)
	notes, _ := v.([]auditNote)
	c.Set(keyAudit, append(notes, auditNote{a, object, p}))
}

// servicesAudit says that the services a handler calls write to the
// audit log what they change: the request then gets no entry of its own
// (but a refusal still does).
func servicesAudit(c *gin.Context) {
	if _, ok := c.Get(keyAudit); !ok {
		c.Set(keyAudit, []auditNote(nil))
	}
}

// audit appends to the audit log what a handler noted, every refusal
// (403: action "denied", object the method and path), and every other
// POST, PUT, PATCH or DELETE that succeeded (action the method and route,
// with neither detail nor parameters) unless a service audited it.
func (s *Server) audit(c *gin.Context) {
	c.Next()
	status := c.Writer.Status()
	n, noted := c.Get(keyAudit)
	notes, _ := n.([]auditNote)
	switch {
	case len(notes) > 0:
		for _, note := range notes {
			s.writeAudit(c, actor(c), note)
		}
	case status == http.StatusForbidden:
		p := audit.Params{"role": token(c).Role}
		if len(c.Errors) > 0 {
			p = audit.Refusal(p, c.Errors.Last().Err)
		}
		s.writeAudit(c, actor(c), auditNote{audit.Denied, c.Request.Method + " " + c.Request.URL.Path, p})
	case noted: // the services wrote what changed
	case c.Request.Method != http.MethodGet && status < 400:
		s.writeEntry(c, store.AuditEntry{Actor: actor(c), Action: c.Request.Method + " " + c.FullPath(), Object: c.Request.URL.Path})
	}
}

// writeAudit writes a note to the audit log, its detail worded from its
// parameters.
func (s *Server) writeAudit(c *gin.Context, who string, n auditNote) {
	p := maps.Clone(n.params)
	if p == nil {
		p = audit.Params{}
	}
	maps.DeleteFunc(p, func(_, v string) bool { return v == "" })
	s.writeEntry(c, store.AuditEntry{Actor: who, Action: n.action.String(), Object: n.object, Detail: n.action.Detail(p), Params: p})
}

func (s *Server) writeEntry(c *gin.Context, e store.AuditEntry) {
	// The change is made; a request cancelled now must still be audited.
	ctx := context.WithoutCancel(c.Request.Context())
	e.RemoteAddr = c.ClientIP()
	if err := s.store.Audit(ctx, e); err != nil {
		s.log.Error("audit entry lost", "actor", e.Actor, "action", e.Action, "object", e.Object, "err", err)
	}
}
