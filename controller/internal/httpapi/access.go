package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// rule says who may call a route.
type rule struct {
	// public routes need no credentials at all.
	public bool
	// box routes also take a box's MQTT username and password (HTTP Basic).
	box bool
	// roles may call the route with a token. A village account acts only
	// for its own village: on a route with a :code, the code must be its.
	roles []string
}

// Role sets of the access table.
var (
	everyone   = []string{api.RoleAdmin, api.RoleOperator, api.RoleApprover, api.RoleViewer, api.RoleVillage}
	readers    = []string{api.RoleAdmin, api.RoleOperator, api.RoleApprover, api.RoleViewer}
	mediaUsers = []string{api.RoleAdmin, api.RoleOperator, api.RoleApprover}
	operators  = []string{api.RoleAdmin, api.RoleOperator}
	approvers  = []string{api.RoleAdmin, api.RoleApprover}
	admins     = []string{api.RoleAdmin}
	confirmers = []string{api.RoleAdmin, api.RoleVillage}
)

// access is the role matrix: every route, by method and gin path, and who
// may call it. A route missing here answers 403 to everyone, and the tests
// fail until it is added.
var access = map[string]rule{
	"GET /api/v1/clock":   {public: true},
	"POST /api/v1/enroll": {public: true},
	"POST /api/v1/ebd":    {public: true}, // the SM2 signature is the credential
	// The 上级平台 page: read by all who see the map; codes set by admins.
	"GET /api/v1/ebd/status":          {roles: readers},
	"GET /api/v1/ebd/certificate":     {roles: readers},
	"GET /api/v1/ebd/inbound":         {roles: readers},
	"GET /api/v1/ebd/outbound":        {roles: readers},
	"GET /api/v1/ebd/terminals":       {roles: readers},
	"PUT /api/v1/ebd/terminals/:code": {roles: admins},
	"POST /api/v1/login":              {public: true},
	"POST /api/v1/logout":             {roles: everyone},
	"GET /api/v1/me":                  {roles: everyone},
	"POST /api/v1/me/password":        {roles: everyone},
	"GET /api/v1/stream":              {roles: readers},
	// The console's cookie session checks its own credentials.
	"POST /console/login":  {public: true},
	"POST /console/logout": {public: true},

	"GET /api/v1/villages":                      {roles: readers},
	"POST /api/v1/villages/import":              {roles: admins},
	"GET /api/v1/villages/:code":                {roles: everyone},
	"POST /api/v1/villages/:code/enroll":        {roles: admins},
	"POST /api/v1/villages/:code/revoke":        {roles: admins},
	"PATCH /api/v1/villages/:code":              {roles: admins},
	"POST /api/v1/villages/:code/replace":       {roles: admins},
	"GET /api/v1/villages/:code/schedules":      {roles: everyone},
	"GET /api/v1/villages/:code/broadcasts":     {roles: everyone},
	"GET /api/v1/villages/:code/events":         {roles: everyone},
	"POST /api/v1/villages/:code/confirmations": {roles: confirmers},
	"GET /api/v1/villages/:code/config":         {roles: everyone},
	"PUT /api/v1/villages/:code/config":         {roles: admins},
	"GET /api/v1/townships/:name/config":        {roles: readers},
	"PUT /api/v1/townships/:name/config":        {roles: admins},

	"GET /api/v1/audio":             {roles: mediaUsers},
	"POST /api/v1/audio":            {roles: operators},
	"POST /api/v1/audio/tts":        {roles: operators},
	"GET /api/v1/audio/:id":         {roles: mediaUsers},
	"GET /api/v1/audio/:id/content": {box: true, roles: everyone}, // a village without a box plays it by hand
	"GET /api/v1/playlists":         {roles: mediaUsers},
	"POST /api/v1/playlists":        {roles: operators},
	"GET /api/v1/playlists/:id":     {roles: mediaUsers},
	"PATCH /api/v1/audio/:id":       {roles: operators},
	"DELETE /api/v1/audio/:id":      {roles: operators},
	"PATCH /api/v1/playlists/:id":   {roles: operators},
	"DELETE /api/v1/playlists/:id":  {roles: operators},

	// A box asks about a broadcast it received late before it sounds it.
	"GET /api/v1/box/broadcasts/:id": {box: true},

	"GET /api/v1/schedules":              {roles: readers},
	"POST /api/v1/schedules":             {roles: operators},
	"GET /api/v1/schedules/:id":          {roles: readers},
	"DELETE /api/v1/schedules/:id":       {roles: operators},
	"GET /api/v1/schedules/:id/coverage": {roles: readers},
	"GET /api/v1/calendar":               {roles: readers},

	"GET /api/v1/broadcasts":              {roles: readers},
	"POST /api/v1/broadcasts":             {roles: operators},
	"GET /api/v1/broadcasts/:id":          {roles: readers},
	"DELETE /api/v1/broadcasts/:id":       {roles: operators},
	"POST /api/v1/broadcasts/:id/approve": {roles: approvers},
	"POST /api/v1/broadcasts/:id/reject":  {roles: approvers},
	"POST /api/v1/broadcasts/:id/resend":  {roles: operators},
	"GET /api/v1/broadcasts/:id/coverage": {roles: readers},
	"POST /api/v1/alerts/cap":             {roles: operators},
	"GET /api/v1/reports/coverage":        {roles: readers},
	"GET /api/v1/audit":                   {roles: admins},
	"GET /api/v1/tokens":                  {roles: admins},
	"POST /api/v1/tokens":                 {roles: admins},
	"DELETE /api/v1/tokens/:id":           {roles: admins},
	"GET /api/v1/users":                   {roles: admins},
	"POST /api/v1/users":                  {roles: admins},
	"PATCH /api/v1/users/:id":             {roles: admins},
	"DELETE /api/v1/users/:id":            {roles: admins},
	"GET /api/v1/login-throttles":         {roles: admins},
	"DELETE /api/v1/login-throttles":      {roles: admins},
}

// guard authenticates a request as its route's rule asks and refuses
// (403, and an audit entry) a role the rule does not admit.
func (s *Server) guard(c *gin.Context) {
	route := c.Request.Method + " " + c.FullPath()
	r, ok := access[route]
	switch {
	case !ok:
		s.deny(c, api.ReasonForbidden, fmt.Sprintf("%s has no access rule, so no one may call it", route))
		return
	case r.public:
		c.Next()
		return
	}
	if _, _, basic := c.Request.BasicAuth(); basic && r.box {
		if s.authenticateBox(c) {
			c.Next()
		}
		return
	}
	if _, ok := bearer(c.Request); !ok && r.box && !hasSession(c.Request) {
		s.fail(c, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonCredentials, Message: "send a token (Authorization: Bearer) or the box's MQTT username and password (HTTP Basic)"})
		return
	}
	t, ok := s.authenticate(c)
	if !ok {
		return
	}
	if !slices.Contains(r.roles, t.Role) {
		s.deny(c, api.ReasonForbidden, fmt.Sprintf("the role %s may not do this; %s needs %s", t.Role, route, strings.Join(r.roles, " or ")))
		return
	}
	if code := c.Param("code"); t.Role == api.RoleVillage && code != "" && code != t.Village {
		s.deny(c, api.ReasonOtherVillage, fmt.Sprintf("a village account acts only for its own village (%s), not %s", t.Village, code))
		return
	}
	c.Next()
}

// deny answers 403; audit records the attempt.
func (s *Server) deny(c *gin.Context, reason, msg string) {
	s.fail(c, &cx.Error{Code: cx.EFORBIDDEN, Reason: reason, Message: msg})
}

func hasSession(r *http.Request) bool {
	ck, err := r.Cookie(sessionCookie)
	return err == nil && ck.Value != ""
}
