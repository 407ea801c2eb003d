package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
)

// env is one controller with the embedded broker, on a fresh data
// directory. The bench runs the broker itself (the same package the
// controller embeds) so that the storm phase can stop and restart it.
type env struct {
	b          *bench
	name, dir  string
	brokerAddr string
	brokerURL  string
	user, pass string
	auth       *lazyAuth
	topics     api.Topics
	log        *slog.Logger

	mu           sync.Mutex
	broker       *broker.Server
	brokerCancel context.CancelFunc
	brokerDone   chan struct{}

	ctl       *Controller
	ctlCancel context.CancelFunc
	client    *client.Client
	ro        *sql.DB // the controller's database, read-only, for cheap polling
}

// startEnv starts a broker and a controller in this process.
func (b *bench) startEnv(ctx context.Context, name string) (*env, error) {
	e := &env{
		b: b, name: name, dir: filepath.Join(b.tmp, name),
		user: "cunxiang-bench-controller", pass: randomHex(16), auth: &lazyAuth{},
		topics: api.Topics{Prefix: api.DefaultPrefix},
	}
	if err := os.MkdirAll(e.dir, 0o750); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(e.dir, "controller.log"))
	if err != nil {
		return nil, err
	}
	e.log = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: b.o.LogLevel}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.brokerAddr = ln.Addr().String()
	e.brokerURL = "tcp://" + e.brokerAddr
	if err := e.startBroker(ln); err != nil {
		return nil, err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.stopBroker()
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	ctl, err := b.o.Start(cctx, ControllerConfig{
		DataDir: filepath.Join(e.dir, "data"), HTTPListener: httpLn,
		Broker: e.brokerURL, BrokerUser: e.user, BrokerPassword: e.pass,
		PreApproved: benchEventType, Logger: e.log, Inbound: e,
	})
	if err != nil {
		cancel()
		e.stopBroker()
		return nil, fmt.Errorf("start controller: %w", err)
	}
	e.ctl, e.ctlCancel = ctl, cancel
	e.auth.set(ctl.Store)
	if e.ro, err = readOnly(filepath.Join(e.dir, "data", "cunxiang.db")); err != nil {
		e.close()
		return nil, err
	}
	e.client = &client.Client{URL: ctl.HTTPURL, Token: ctl.AdminToken, HTTP: &http.Client{Timeout: 2 * time.Minute}}
	return e, nil
}

// benchEventType is the event type of the bench's emergency broadcasts,
// pre-approved so the two-person rule does not hold them.
const benchEventType = "drill"

func (e *env) startBroker(ln net.Listener) error {
	s, err := broker.New(broker.Options{
		Listener: ln, Auth: e.auth, Topics: e.topics,
		ServiceUser: e.user, ServicePassword: e.pass, Logger: e.log, WritesPending: e.b.o.WritesPending,
		// Every simulated box connects from 127.0.0.1: the broker's
		// per-address cap (made for NAT addresses) would refuse the
		// fleet, so the bench lifts both caps; the open-file limit is
		// the real one here.
		MaxConns: -1, MaxConnsPerAddr: -1,
	})
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Set before it serves: the controller subscribes (Subscribe below)
	// as soon as it has connected.
	e.mu.Lock()
	e.broker, e.brokerCancel, e.brokerDone = s, cancel, done
	e.mu.Unlock()
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			e.log.Error("broker", "err", err)
		}
	}()
	return nil
}

// Subscribe subscribes in the broker of the moment: it is the
// controller's Inbound, which the controller calls again each time it
// connects, so after a restart it subscribes in the new broker.
func (e *env) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	e.mu.Lock()
	s := e.broker
	e.mu.Unlock()
	if s == nil {
		return errors.New("the broker is stopped")
	}
	return s.Subscribe(filter, fn)
}

func (e *env) stopBroker() {
	e.mu.Lock()
	s, cancel, done := e.broker, e.brokerCancel, e.brokerDone
	e.broker = nil
	e.mu.Unlock()
	if s == nil {
		return
	}
	cancel()
	_ = s.Close()
	<-done
}

// restartBroker stops the broker, disconnecting every client, and starts a
// new one on the same address (the retained messages are gone, as after a
// real restart). It returns when the new broker accepts connections.
func (e *env) restartBroker(ctx context.Context) (time.Time, error) {
	e.stopBroker()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ln, err := net.Listen("tcp", e.brokerAddr)
		if err == nil {
			at := time.Now()
			return at, e.startBroker(ln)
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("broker port %s not free again after 30 s: %w", e.brokerAddr, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dropped is how many messages the current broker has dropped.
func (e *env) dropped() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.broker == nil {
		return "?"
	}
	q, i := e.broker.Dropped()
	if q+i == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (write queue full %d, in-flight quota %d)", q+i, q, i)
}

// count runs a COUNT query on the controller's database. The bench polls
// with these rather than the store's listing functions: on two cores,
// listing 30,000 reports ten times a second took a fifth of the CPU and
// competed with the writer it was measuring.
func (e *env) count(ctx context.Context, query string, args ...any) (int, error) {
	var n int
	if err := e.ro.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("poll the store: %w", err)
	}
	return n, nil
}

// close stops the controller, then the broker.
func (e *env) close() {
	if e.ro != nil {
		e.ro.Close()
	}
	if e.ctlCancel != nil {
		e.ctlCancel()
		select {
		case <-e.ctl.Done:
		case <-time.After(20 * time.Second):
			e.log.Error("controller did not stop within 20 s")
		}
	}
	e.stopBroker()
}

// writeToken writes the admin token to a file, for `agent sim --token-file`.
func (e *env) writeToken() (string, error) {
	p := filepath.Join(e.dir, "admin.token")
	return p, os.WriteFile(p, []byte(e.ctl.AdminToken+"\n"), 0o600)
}

// serviceClient connects an MQTT client with the controller's service
// credentials (the bench's publisher).
func (e *env) serviceClient(id string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(e.brokerURL).SetClientID(id).
		SetUsername(e.user).SetPassword(e.pass).SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second))
	t := c.Connect()
	if !t.WaitTimeout(15 * time.Second) {
		return nil, errors.New("connect to the broker: timed out")
	}
	if err := t.Error(); err != nil {
		return nil, fmt.Errorf("connect to the broker: %w", err)
	}
	return c, nil
}

// lazyAuth lets the broker start before the controller's store exists.
type lazyAuth struct {
	mu sync.Mutex
	a  broker.Authenticator
}

func (l *lazyAuth) set(a broker.Authenticator) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.a = a
}

func (l *lazyAuth) CheckAgentPassword(ctx context.Context, u, p string) (string, error) {
	l.mu.Lock()
	a := l.a
	l.mu.Unlock()
	if a == nil {
		return "", errors.New("controller not started yet")
	}
	return a.CheckAgentPassword(ctx, u, p)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// child is a child process whose output goes to a log file; lines of its
// stdout that start with an upper-case keyword (READY, RESULT) are also
// handed to the bench.
type child struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
	log   string
}

func (b *bench) startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s %s: %s %s\n", name, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{}), log: logPath}
	go func() {
		defer close(c.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if strings.HasPrefix(line, "READY ") || strings.HasPrefix(line, "RESULT ") {
				select {
				case c.lines <- line:
				default:
				}
			}
		}
		_, _ = io.Copy(logf, stdout)
		c.err = cmd.Wait()
	}()
	return c, nil
}

// wait returns the next keyword line starting with prefix.
func (c *child) wait(ctx context.Context, prefix string, within time.Duration) (string, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case line := <-c.lines:
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
		case <-c.done:
			return "", fmt.Errorf("%s exited (%v) before printing %q; see %s", c.name, c.err, prefix, c.log)
		case <-t.C:
			return "", fmt.Errorf("%s printed no %q within %s; see %s", c.name, prefix, within, c.log)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// stop sends SIGTERM and waits up to 20 s for the child to exit, then kills it.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// rss returns a process's resident set size in bytes (pid 0: this process).
func rss(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("%s: VmRSS %q: %w", path, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS", path)
}

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// after the last ')' start with the state (field 3).
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
