package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// revocations make a revoked (or re-enrolled) box's credentials stop
// working at once, not at its next login: the access list looks a client's
// village up on every packet, and Revoke removes it, so every later
// publish, subscribe or Will is denied, and disconnects the session.
//
// A login checks the password against the store, which takes time; one
// whose check began before a Revoke (and may have read the old password)
// must not register after it. Each login notes the revocation clock when
// it starts, and admit refuses it if its village was revoked since.
type revocations struct {
	mu       sync.Mutex
	clock    uint64                  // bumped by every Revoke
	revoked  map[string]uint64       // village → clock of its latest Revoke
	admitted map[string]*mqtt.Client // client id → the session admitted last
}

func newRevocations() *revocations {
	return &revocations{revoked: map[string]uint64{}, admitted: map[string]*mqtt.Client{}}
}

// start is called as a box's login begins, before its password is checked.
func (r *revocations) start() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

// admit registers the client as the village's box unless the village was
// revoked after the login started.
func (r *revocations) admit(cl *mqtt.Client, village string, started uint64, villages *sync.Map) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked[village] > started {
		return false
	}
	villages.Store(cl.ID, village)
	r.admitted[cl.ID] = cl
	return true
}

// Revoke cuts the village's box off the broker at once: every session
// logged in as it loses its rights and is disconnected, without its Will,
// and a login that was checking the old password when Revoke ran is
// refused. Call it once the store no longer accepts the old credentials
// (after a re-enrollment or a revocation has committed): a later login
// is then checked against the new ones.
func (s *Server) Revoke(village string) {
	r := s.rev
	r.mu.Lock()
	r.clock++
	r.revoked[village] = r.clock
	var ids []string
	s.auth.villages.Range(func(id, v any) bool {
		if v.(string) == village {
			ids = append(ids, id.(string))
		}
		return true
	})
	for _, id := range ids {
		s.auth.villages.Delete(id)
		delete(r.admitted, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		if cl, ok := s.mq.Clients.Get(id); ok {
			s.cut(cl, village)
		}
	}
}

// cut disconnects a client that lost its rights. Its Will is dropped
// first: mochi publishes the Will of a client whose connection ends with
// an error (as a disconnect by the server does) unless its flag is clear.
func (s *Server) cut(cl *mqtt.Client, village string) {
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	if cl.Closed() {
		return
	}
	s.log.Warn("disconnected a revoked box's session", "village", village, "client", cl.ID, "remote", cl.Net.Remote)
	_ = s.mq.DisconnectClient(cl, packets.ErrNotAuthorized)
}

// revokeHook catches the session whose login passed just before a Revoke
// but which mochi listed among its clients only after Revoke looked there:
// once established, a box's session that is no longer the one admitted
// for its client id is cut.
type revokeHook struct {
	mqtt.HookBase
	s *Server
}

func (h *revokeHook) ID() string { return "cunxiang-revoke" }

func (h *revokeHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

func (h *revokeHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if string(cl.Properties.Username) == h.s.auth.user {
		return // the controller's own client
	}
	r := h.s.rev
	r.mu.Lock()
	current := r.admitted[cl.ID] == cl
	r.mu.Unlock()
	if !current {
		h.s.cut(cl, "")
	}
}

// OnDisconnect forgets the session, so a box that comes and goes does not
// keep its old connections in memory.
func (h *revokeHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	r := h.s.rev
	r.mu.Lock()
	if r.admitted[cl.ID] == cl {
		delete(r.admitted, cl.ID)
	}
	r.mu.Unlock()
}
