// Package dynsec gives every box its own account on an external Mosquitto
// broker, through Mosquitto's Dynamic Security plugin, with an access list
// as tight as the embedded broker's: a box reads only its own groups'
// commands and writes only its own reports and presence.
//
// The plugin is driven over MQTT itself: JSON commands published to
// $CONTROL/dynamic-security/v1, answers on .../response
// (mosquitto.org/documentation/dynamic-security). Mosquitto hashes the
// password (PBKDF2-SHA512), so the controller never has to know the
// broker's hash format; it sees a box's password only at enrollment.
package dynsec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
)

const (
	controlTopic  = "$CONTROL/dynamic-security/v1"
	responseTopic = controlTopic + "/response"
)

// Options configure a Client. Broker, Username and Password are those of
// a dynsec admin on the broker (the account `mosquitto_ctrl dynsec init`
// made, or one with the same rights).
type Options struct {
	Broker, Username, Password string
	ClientID                   string // default "cunxiang-dynsec"
	Topics                     api.Topics
	Timeout                    time.Duration // per request (default 10 s)
	Logger                     *slog.Logger
}

// Client sends Dynamic Security commands and waits for their answers.
type Client struct {
	o       Options
	log     *slog.Logger
	client  paho.Client
	next    atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan []response
}

type command map[string]any

type response struct {
	Command         string `json:"command"`
	Error           string `json:"error"`
	CorrelationData string `json:"correlationData"`
}

// New connects to the broker as the dynsec admin and listens for answers.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.Broker == "" || o.Username == "" {
		return nil, errors.New("dynsec: the broker and a dynsec admin username are required")
	}
	if o.ClientID == "" {
		o.ClientID = "cunxiang-dynsec"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{o: o, log: o.Logger.With("component", "dynsec"), waiting: map[string]chan []response{}}
	co := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).SetWriteTimeout(o.Timeout).
		SetOnConnectHandler(func(pc paho.Client) {
			// Clean session: subscribe again on every (re)connect.
			if tok := pc.Subscribe(responseTopic, 1, c.onResponse); !tok.WaitTimeout(o.Timeout) || tok.Error() != nil {
				c.log.Error("subscribe to dynsec responses", "err", tok.Error())
			}
		})
	c.client = paho.NewClient(co)
	tok := c.client.Connect()
	if !tok.WaitTimeout(o.Timeout) {
		c.client.Disconnect(0)
		return nil, fmt.Errorf("dynsec: connect to %s: timed out", o.Broker)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("dynsec: connect to %s as %q (a dynsec admin): %w", o.Broker, o.Username, err)
	}
	// The handler above runs in its own goroutine; the first request must
	// not go out before the answers have somewhere to land.
	if st := c.client.Subscribe(responseTopic, 1, c.onResponse); !st.WaitTimeout(o.Timeout) || st.Error() != nil {
		c.Close()
		return nil, fmt.Errorf("dynsec: subscribe to %s: %v", responseTopic, st.Error())
	}
	// Prove the account may administer dynsec before the first enrollment
	// depends on it.
	if _, err := c.do(ctx, true, command{"command": "getDefaultACLAccess"}); err != nil {
		c.Close()
		return nil, fmt.Errorf("dynsec: %q cannot administer the Dynamic Security plugin of %s: %w", o.Username, o.Broker, err)
	}
	return c, nil
}

// Close disconnects.
func (c *Client) Close() error {
	c.client.Disconnect(250)
	return nil
}

func (c *Client) onResponse(_ paho.Client, m paho.Message) {
	var body struct {
		Responses []response `json:"responses"`
	}
	if err := json.Unmarshal(m.Payload(), &body); err != nil || len(body.Responses) == 0 {
		return
	}
	// Every command of one request carries the request's correlation data.
	id := body.Responses[0].CorrelationData
	c.mu.Lock()
	ch := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- body.Responses
	}
}

// do sends the commands as one request, which the plugin runs in order,
// and returns each answer's error. With strict, any error fails the call.
func (c *Client) do(ctx context.Context, strict bool, cmds ...command) ([]string, error) {
	id := c.o.ClientID + "-" + strconv.FormatUint(c.next.Add(1), 10)
	for _, cmd := range cmds {
		cmd["correlationData"] = id
	}
	payload, err := json.Marshal(map[string]any{"commands": cmds})
	if err != nil {
		return nil, err
	}
	ch := make(chan []response, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	tok := c.client.Publish(controlTopic, 1, false, payload)
	if !tok.WaitTimeout(c.o.Timeout) {
		return nil, errors.New("publish to $CONTROL timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("publish to $CONTROL: %w", err)
	}
	timer := time.NewTimer(c.o.Timeout)
	defer timer.Stop()
	select {
	case rs := <-ch:
		errs := make([]string, len(rs))
		for i, r := range rs {
			errs[i] = r.Error
			if strict && r.Error != "" {
				return errs, fmt.Errorf("%s: %s", r.Command, r.Error)
			}
		}
		return errs, nil
	case <-timer.C:
		return nil, errors.New("no answer from the Dynamic Security plugin (is it loaded, and is this account its admin?)")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// acl is one Dynamic Security access-list entry.
func acl(kind, topic string) map[string]any {
	return map[string]any{"acltype": kind, "topic": topic, "allow": true}
}

// ControllerRole is the role Setup gives the controller's account.
func (c *Client) ControllerRole() string { return "cunxiang-controller-" + roleSafe(c.o.Topics.Prefix) }

// Setup (re)creates the account the controller's delivery connection logs
// in with, limited to what it needs under the topic prefix: publish
// commands and live frames, read every box's reports and presence. It is a separate account
// from the dynsec admin because Mosquitto disconnects a client whose roles
// change, and because the delivery connection needs no admin rights. The
// caller picks a fresh password on every start.
func (c *Client) Setup(ctx context.Context, user, password, clientID string) error {
	t := c.o.Topics
	root := strings.TrimSuffix(t.CommandFilter(api.GroupAll), "all/#")
	err := c.recreate(ctx, user, password, clientID, "Cunxiang controller", c.ControllerRole(), []any{
		acl("publishClientSend", root+"#"),
		acl("publishClientSend", strings.TrimSuffix(t.LiveFramesFilter(api.GroupAll), "all/#")+"#"),
		acl("subscribeLiteral", t.EventsFilter()),
		acl("subscribeLiteral", t.PresenceFilter()),
	})
	if err != nil {
		return fmt.Errorf("dynsec: set up the controller's account %s: %w", user, err)
	}
	return nil
}

// recreate replaces an account and its one role: the deletes may find
// nothing, the creates must succeed. The plugin runs the four commands in
// order, in one request.
func (c *Client) recreate(ctx context.Context, user, password, clientID, textName, role string, acls []any) error {
	errs, err := c.do(ctx, false,
		command{"command": "deleteClient", "username": user},
		command{"command": "deleteRole", "rolename": role},
		command{"command": "createRole", "rolename": role, "acls": acls},
		command{"command": "createClient", "username": user, "password": password, "clientid": clientID,
			"textname": textName, "roles": []any{map[string]any{"rolename": role}}},
	)
	if err != nil {
		return err
	}
	for _, e := range errs[min(2, len(errs)):] {
		if e != "" {
			return errors.New(e)
		}
	}
	return nil
}

// BoxRole is the role that holds a box's access list.
func (c *Client) BoxRole(village string) string {
	return "cunxiang-box-" + roleSafe(c.o.Topics.Prefix) + "-" + village
}

// PutBox creates (or re-creates, after a re-enrollment) the box's account:
// username as client id, the password the controller just issued, and a
// role allowing exactly what api.Topics.BoxMay allows.
func (c *Client) PutBox(ctx context.Context, village, username, password string) error {
	if !api.ValidVillageCode(village) {
		return fmt.Errorf("dynsec: %q is not a village code", village)
	}
	t := c.o.Topics
	acls := []any{
		acl("publishClientSend", t.Events(village)),
		acl("publishClientSend", t.Presence(village)),
	}
	for _, g := range api.GroupsOf(village) {
		acls = append(acls, acl("subscribeLiteral", t.CommandFilter(g)), acl("subscribeLiteral", t.LiveFramesFilter(g)))
	}
	if err := c.recreate(ctx, username, password, username, "Cunxiang box of village "+village, c.BoxRole(village), acls); err != nil {
		return fmt.Errorf("dynsec: create the broker account of %s: %w", village, err)
	}
	return nil
}

// roleSafe turns a topic prefix into a role-name part.
func roleSafe(prefix string) string {
	if prefix == "" {
		prefix = api.DefaultPrefix
	}
	return strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(prefix)
}

// DeleteBox deletes the box's account and role (a revoked box). Mosquitto
// disconnects the clients logged in with a deleted account, without their
// Will, so the box's open session ends at once. An account that is
// already gone is not an error.
func (c *Client) DeleteBox(ctx context.Context, village, username string) error {
	errs, err := c.do(ctx, false,
		command{"command": "deleteClient", "username": username},
		command{"command": "deleteRole", "rolename": c.BoxRole(village)},
	)
	if err != nil {
		return fmt.Errorf("dynsec: delete the broker account of %s: %w", village, err)
	}
	for _, e := range errs {
		if e != "" && !strings.Contains(strings.ToLower(e), "not found") {
			return fmt.Errorf("dynsec: delete the broker account of %s: %s", village, e)
		}
	}
	return nil
}
