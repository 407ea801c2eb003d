// Command controller is Cunxiang's central service: the HTTP API (and later
// the console) for county staff, the embedded MQTT broker or a link to an
// external one, delivery of signed schedules to the village boxes, and the
// store of what they report.
//
//	go run ./controller            # everything on one machine, data in ./data
//	go run ./controller --demo     # plus a demo county of 81 villages and 79 simulated boxes
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/buildinfo"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
	"github.com/cunxiang/cunxiang/controller/internal/delivery"
	"github.com/cunxiang/cunxiang/controller/internal/demo"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/httpapi"
	"github.com/cunxiang/cunxiang/controller/internal/outbound"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/tts"
	"github.com/cunxiang/cunxiang/controller/internal/upstream"
	"github.com/cunxiang/cunxiang/controller/internal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && (os.Args[1] == "bench" || os.Args[1] == "bench-subscribers") {
		os.Exit(runBench(ctx, os.Args[1], os.Args[2:]))
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(2)
	}
	if m.ShowVersion {
		fmt.Println(buildinfo.Line("cunxiang-controller"))
		return
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

// Main is the controller program, split into ParseFlags and Run so tests
// start the real thing in-process.
type Main struct {
	DataDir        string
	HTTPAddr       string
	MQTTListen     string
	Broker         string
	BrokerUser     string
	BrokerPassword string
	BrokerClientID string // each controller on one broker needs its own (default cunxiang-controller-<prefix>)
	BrokerDynsec   bool   // create box accounts through Mosquitto's Dynamic Security plugin
	DB             string // postgres:// URL; empty: SQLite in DataDir
	PublicURL      string
	PublicBroker   string
	TopicPrefix    string
	MaxUpload      int64
	// MaxConcurrentUploads bounds the uploads and text-to-speech requests
	// processed at once; more are answered 503 with Retry-After.
	MaxConcurrentUploads int
	// SlowClientGrace is how far behind 128 kbit/s an upload or a
	// download may fall before it is cut (a trickle must not hold an
	// upload slot).
	SlowClientGrace time.Duration
	Demo            bool
	// Two-person rule: urgent and emergency broadcasts reaching more than
	// ApprovalThreshold townships wait for a second person's approval,
	// except the event types listed in PreApproved (comma-separated).
	ApprovalThreshold int
	PreApproved       string
	Espeak            string // path of espeak-ng for text-to-speech
	CountyName        string // heads the console's pages and printed reports
	LogLevel          string
	ShowVersion       bool // --version: print the build and exit

	// CAPFetchAllow: hosts, IP addresses and CIDR ranges (comma-separated)
	// the CAP recording fetch may reach although they are not public.
	CAPFetchAllow string

	// The national emergency-broadcast chain (GY/T 384): this platform's
	// resource code, the upper platform's URL and the file of its
	// certificates to trust; EBDLocalApproval makes its emergency messages
	// wait for a second person here. Without EBRID and EBDTrust the door
	// (POST /api/v1/ebd) is closed.
	EBRID            string
	EBDUpstream      string
	EBDUpstreamEBRID string // the upper platform's resource code: DEST of every report
	EBDTrust         string
	EBDLocalApproval bool

	// Caps of the embedded broker (broker.Options; 0: its defaults).
	MQTTMaxConns, MQTTMaxConnsPerAddr int
	MQTTConnectTimeout                time.Duration
	MQTTWriteTimeout                  time.Duration

	// Caps of the HTTP listener's open connections (httpapi.ConnLimit).
	HTTPMaxConns, HTTPMaxConnsPerAddr int

	// BoxReportRate and BoxReportBurst bound the report events each box
	// may have stored (delivery.Options.ReportRate, ReportBurst).
	BoxReportRate  float64
	BoxReportBurst int

	// Set by tests: the reporter's heartbeat period and longest back-off
	// between attempts (0: upstream's defaults).
	EBDHeartbeatEvery, EBDRetryMax time.Duration

	// Set by tests: listeners to use instead of HTTPAddr / MQTTListen.
	HTTPListener net.Listener
	MQTTListener net.Listener
	Stdout       io.Writer
	Logger       *slog.Logger

	// Ready, if set, is called once everything is up.
	Ready func(*Running)
	// Inbound, with an external Broker that runs in this process (the
	// bench's), takes the boxes' reports in process; the embedded broker
	// always does (delivery.Options.Inbound).
	Inbound delivery.Inbound
}

// Running describes a started controller, for tests and the demo.
type Running struct {
	HTTPURL    string
	BrokerURL  string
	AdminToken string
	Store      *store.DB
	Delivery   *delivery.Service
}

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{
		DataDir:              "data",
		HTTPAddr:             ":8080",
		MQTTListen:           ":1883",
		TopicPrefix:          api.DefaultPrefix,
		MaxUpload:            50 << 20,
		MaxConcurrentUploads: httpapi.DefaultMaxConcurrentUploads,
		SlowClientGrace:      httpapi.DefaultSlowClientGrace,
		LogLevel:             "info",
		ApprovalThreshold:    1,
		Stdout:               os.Stdout,
	}
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.StringVar(&m.DataDir, "data", m.DataDir, "directory for the database, audio files and keys")
	fs.StringVar(&m.DB, "db", os.Getenv("CUNXIANG_DB"), "PostgreSQL database URL (postgres://user@host/db) instead of SQLite in --data (or $CUNXIANG_DB)")
	fs.StringVar(&m.HTTPAddr, "http", m.HTTPAddr, "HTTP listen address")
	fs.StringVar(&m.MQTTListen, "mqtt-listen", m.MQTTListen, "listen address of the embedded MQTT broker")
	fs.IntVar(&m.MQTTMaxConns, "mqtt-max-conns", broker.DefaultMaxConns, "embedded broker: most open connections, logged in or not (-1: no cap)")
	fs.IntVar(&m.MQTTMaxConnsPerAddr, "mqtt-max-conns-per-addr", broker.DefaultMaxConnsPerAddr, "embedded broker: most open connections from one IP address; raise it if more boxes share a NAT address (-1: no cap)")
	fs.DurationVar(&m.MQTTConnectTimeout, "mqtt-connect-timeout", broker.DefaultConnectTimeout, "embedded broker: time a new connection has to log in")
	fs.Float64Var(&m.BoxReportRate, "box-report-rate", delivery.DefaultReportRate, "report events per second each box may have stored, after its burst (-1: no bound)")
	fs.IntVar(&m.BoxReportBurst, "box-report-burst", delivery.DefaultReportBurst, "report events a box may have stored at once before --box-report-rate applies")
	fs.IntVar(&m.HTTPMaxConns, "http-max-conns", httpapi.DefaultMaxConns, "most open HTTP connections (-1: no cap)")
	fs.IntVar(&m.HTTPMaxConnsPerAddr, "http-max-conns-per-addr", httpapi.DefaultMaxConnsPerAddr, "most open HTTP connections from one IP address (an IPv6 /64) (-1: no cap)")
	fs.DurationVar(&m.MQTTWriteTimeout, "mqtt-write-timeout", broker.DefaultWriteTimeout, "embedded broker: a connection whose writes make no progress for this long is closed")
	fs.StringVar(&m.Broker, "broker", m.Broker, "use this external MQTT broker (tcp://host:port) instead of the embedded one")
	fs.StringVar(&m.BrokerUser, "broker-username", m.BrokerUser, "username on the external broker")
	fs.StringVar(&m.BrokerPassword, "broker-password", os.Getenv("CUNXIANG_BROKER_PASSWORD"), "password on the external broker (or $CUNXIANG_BROKER_PASSWORD)")
	fs.StringVar(&m.PublicURL, "public-url", m.PublicURL, "URL boxes use to reach this controller (default http://<hostname>:<http port>)")
	fs.StringVar(&m.BrokerClientID, "broker-client-id", m.BrokerClientID, "this controller's MQTT client id (default cunxiang-controller-<topic prefix>); give each controller sharing a broker its own")
	fs.BoolVar(&m.BrokerDynsec, "broker-dynsec", m.BrokerDynsec, "with --broker: the username/password are a Mosquitto Dynamic Security admin; give every box its own account and access list there, and the controller a limited account of its own")
	fs.StringVar(&m.PublicBroker, "public-broker", m.PublicBroker, "broker URL handed to boxes at enrollment (default: derived from --public-url or --broker)")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "root of every MQTT topic")
	fs.Int64Var(&m.MaxUpload, "max-upload", m.MaxUpload, "largest audio upload accepted, in bytes")
	fs.IntVar(&m.MaxConcurrentUploads, "max-concurrent-uploads", m.MaxConcurrentUploads, "audio uploads and text-to-speech requests processed at once; more are answered 503 with Retry-After")
	fs.DurationVar(&m.SlowClientGrace, "slow-client-grace", m.SlowClientGrace, "an upload or download that falls this far behind 128 kbit/s is cut, freeing its slot")
	fs.IntVar(&m.ApprovalThreshold, "approval-townships", m.ApprovalThreshold, "urgent/emergency broadcasts reaching more townships than this need a second person's approval")
	fs.StringVar(&m.PreApproved, "preapproved-event-types", m.PreApproved, "comma-separated event types that never wait for approval (e.g. drill)")
	fs.StringVar(&m.Espeak, "espeak", m.Espeak, "path of espeak-ng for text-to-speech (default: found on PATH)")
	fs.StringVar(&m.CountyName, "county-name", m.CountyName, "the county's name, shown in the console's title and on printed reports (with --demo: 示例县)")
	fs.BoolVar(&m.Demo, "demo", m.Demo, "import a demo county of 81 villages, run 79 simulated boxes and schedule a sample announcement")
	fs.StringVar(&m.CAPFetchAllow, "cap-fetch-allow", m.CAPFetchAllow, "comma-separated hosts, IP addresses and CIDR ranges that CAP alerts may link recordings on although they are not public (e.g. 10.1.2.0/24,warn.example.gov.cn); every other loopback, private, link-local or own address is refused")
	fs.StringVar(&m.EBRID, "ebr-id", m.EBRID, "this platform's resource code in the national emergency-broadcast chain (GY/T 384; 18 or 23 digits), as the province assigned it")
	fs.StringVar(&m.EBDUpstream, "ebd-upstream", m.EBDUpstream, "URL of the upper platform that reports go to (heartbeats, terminals, broadcast logs)")
	fs.StringVar(&m.EBDUpstreamEBRID, "ebd-upstream-ebrid", m.EBDUpstreamEBRID, "the upper platform's resource code (18 or 23 digits): DEST/EBRID of every report sent to --ebd-upstream (default: no DEST)")
	fs.StringVar(&m.EBDTrust, "ebd-trust", m.EBDTrust, "PEM file of the upper platforms' certificates (SM2) whose signed packets POST /api/v1/ebd accepts")
	fs.BoolVar(&m.EBDLocalApproval, "ebd-local-approval", m.EBDLocalApproval, "make the upper platform's emergency messages wait for a second person here, as the two-person rule says for local ones (default: approved upstream)")
	fs.StringVar(&m.LogLevel, "log-level", m.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&m.ShowVersion, "version", false, "print the version and commit, and exit")
	return parseWithEnv(fs, args)
}

// Run starts every part and blocks until ctx is done or one part fails.
func (m *Main) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.DataDir, 0o750); err != nil {
		return fmt.Errorf("--data %s: %w", m.DataDir, err)
	}
	log, logPath := m.Logger, ""
	if log == nil {
		var closeLog func()
		var err error
		if log, logPath, closeLog, err = m.newLogger(os.Stderr); err != nil {
			return err
		}
		defer closeLog()
	}
	dsn := m.DB
	if dsn == "" {
		dsn = filepath.Join(m.DataDir, "cunxiang.db")
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	// This process is running (the delivery service keeps it so): what it
	// claims is not taken over by another controller on the database.
	if err := db.Heartbeat(ctx); err != nil {
		return err
	}

	key, err := loadOrCreateKey(filepath.Join(m.DataDir, "signing.key"))
	if err != nil {
		return err
	}
	token, err := m.adminToken(ctx, db, log)
	if err != nil {
		return err
	}

	// Listen on everything first so a busy port is reported before
	// anything starts.
	httpLn := m.HTTPListener
	if httpLn == nil {
		if httpLn, err = net.Listen("tcp", m.HTTPAddr); err != nil {
			return listenError("HTTP", m.HTTPAddr, "--http", err)
		}
	}
	defer httpLn.Close()

	g, ctx := errgroup.WithContext(ctx)
	brokerURL, user, pass := m.Broker, m.BrokerUser, m.BrokerPassword
	inbound := m.Inbound
	var sessions httpapi.BoxSessions
	if m.Broker == "" {
		user, pass = "cunxiang-controller", randomSecret()
		b, err := broker.New(broker.Options{
			Listen: m.MQTTListen, Listener: m.MQTTListener, Auth: db,
			Topics: api.Topics{Prefix: m.TopicPrefix}, ServiceUser: user, ServicePassword: pass, Logger: log,
			MaxConns: m.MQTTMaxConns, MaxConnsPerAddr: m.MQTTMaxConnsPerAddr, ConnectTimeout: m.MQTTConnectTimeout,
			WriteTimeout: m.MQTTWriteTimeout,
		})
		if err != nil {
			if m.MQTTListener == nil {
				return listenError("MQTT", m.MQTTListen, "--mqtt-listen (or use an external broker with --broker)", err)
			}
			return err
		}
		brokerURL, inbound, sessions = b.URL(), b, b
		// The broker stops last, once every other part (the demo's boxes,
		// the delivery service's client) has said goodbye over it: stopped
		// together, each connection cut mid-packet was a warning with a
		// raw packet dump.
		bctx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
		brokerDone := make(chan error, 1)
		go func() { brokerDone <- b.Run(bctx) }()
		defer func() { stopBroker(); <-brokerDone }()
		g.Go(func() error {
			select {
			case err := <-brokerDone:
				brokerDone <- err // for the deferred wait
				if err == nil {
					err = errors.New("broker stopped")
				}
				return err
			case <-ctx.Done():
				return nil
			}
		})
	}

	clientID := m.BrokerClientID
	if clientID == "" {
		clientID = "cunxiang-controller-" + strings.ReplaceAll(m.TopicPrefix, "/", "-")
	}
	var accounts httpapi.BrokerAccounts
	if m.BrokerDynsec {
		if m.Broker == "" {
			return errors.New("--broker-dynsec needs --broker (the embedded broker checks box accounts itself)")
		}
		ds, err := dynsec.New(ctx, dynsec.Options{
			Broker: m.Broker, Username: user, Password: pass, ClientID: clientID + "-dynsec",
			Topics: api.Topics{Prefix: m.TopicPrefix}, Logger: log,
		})
		if err != nil {
			return err
		}
		defer ds.Close()
		user, pass = clientID, randomSecret()
		if err := ds.Setup(ctx, user, pass, clientID); err != nil {
			return err
		}
		accounts = ds
	}

	notifier := httpapi.NewNotifier()
	svc, err := delivery.New(delivery.Options{
		Store: db, Broker: brokerURL, Username: user, Password: pass, OnCommit: notifier.Notify,
		ClientID: clientID, Inbound: inbound, ReportRate: m.BoxReportRate, ReportBurst: m.BoxReportBurst,
		Topics: api.Topics{Prefix: m.TopicPrefix}, SigningKey: key, Logger: log, Step: crashStep(),
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return svc.Run(ctx) })

	httpURL := "http://" + hostPort(httpLn.Addr(), "localhost")
	publicURL := m.PublicURL
	if publicURL == "" {
		publicURL = httpURL
	}
	publicBroker := m.PublicBroker
	if publicBroker == "" {
		publicBroker = derivePublicBroker(publicURL, brokerURL, m.Broker == "")
	}
	capAllow, err := outbound.ParseAllow(m.CAPFetchAllow)
	if err != nil {
		return fmt.Errorf("--cap-fetch-allow: %w", err)
	}
	own := []string{httpLn.Addr().String()}
	if _, port, err := net.SplitHostPort(strings.TrimPrefix(brokerURL, "tcp://")); err == nil && m.Broker == "" {
		own = append(own, ":"+port) // the embedded broker, on every address it listens on
	}
	ebdOpts, err := m.ebdOptions(log)
	if err != nil {
		return err
	}
	if ebdOpts != nil && m.EBDUpstream != "" {
		// Reports to the upper platform: heartbeats, the boxes as
		// terminals and their states, broadcast logs, and what it asks
		// for through the door.
		rep, err := upstream.New(upstream.Options{Store: db, Identity: ebdOpts.Identity, EBRID: m.EBRID, Dest: m.EBDUpstreamEBRID,
			Upstream: m.EBDUpstream, Trust: ebdOpts.Trust, Logger: log, HeartbeatEvery: m.EBDHeartbeatEvery, RetryMax: m.EBDRetryMax,
			Name: platformName(demo.CountyName(m.CountyName, m.Demo)), URL: strings.TrimSuffix(publicURL, "/") + "/api/v1/ebd"})
		if err != nil {
			return fmt.Errorf("--ebd-upstream: %w", err)
		}
		ebdOpts.Requests = rep
		ebdOpts.Upstream, ebdOpts.UpstreamEBRID = m.EBDUpstream, m.EBDUpstreamEBRID
		ebdOpts.Link = func() httpapi.EBDLink {
			s := rep.Status()
			return httpapi.EBDLink{HeartbeatSent: s.HeartbeatSent, LastHeartbeat: s.LastHeartbeat, LastHeartbeatOK: s.LastHeartbeatOK,
				LastError: s.LastError, LastErrorAt: s.LastErrorAt, LastSent: s.LastSent}
		}
		g.Go(func() error { return rep.Run(ctx) })
		log.Info("reporting to the upper platform", "url", m.EBDUpstream)
	}
	h, err := httpapi.New(httpapi.Options{
		Store: db, Publisher: svc, DataDir: m.DataDir, MaxUploadBytes: m.MaxUpload, MaxConcurrentUploads: m.MaxConcurrentUploads,
		SlowClientGrace: m.SlowClientGrace, PublicURL: publicURL, BrokerURL: publicBroker, TopicPrefix: m.TopicPrefix, BrokerAccounts: accounts, BoxSessions: sessions,
		SigningPublicKey: key.Public().(ed25519.PublicKey), Logger: log,
		Speaker: &tts.Espeak{Path: m.Espeak}, ApprovalThreshold: m.ApprovalThreshold,
		PreApprovedEventTypes: splitList(m.PreApproved),
		Notifier:              notifier, Console: web.Handler(), CountyName: demo.CountyName(m.CountyName, m.Demo),
		CAPFetchAllow: capAllow, OwnAddrs: own, EBD: ebdOpts,
	})
	if err != nil {
		return err
	}
	// Broadcasts held until their start (an EBM's StartTime) are
	// released when it comes.
	g.Go(func() error { return h.Broadcasts().Run(ctx) })
	// ReadTimeout and WriteTimeout bound an ordinary request; the routes
	// that move a lot (uploads, clip downloads, the live stream) extend
	// their own deadlines (httpapi's limits), so a slow 50 MB upload on a
	// weak link still gets through.
	srv := &http.Server{
		Handler:           h.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       httpapi.ReadTimeout,
		WriteTimeout:      httpapi.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         (&httpapi.ConnLimit{MaxConns: m.HTTPMaxConns, MaxPerAddr: m.HTTPMaxConnsPerAddr, Logger: log}).ConnState,
	}
	srv.RegisterOnShutdown(notifier.Close) // live streams end, or Shutdown would wait for them
	g.Go(func() error {
		if err := srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// A request still waiting (for the broker to take a change,
			// up to 15 s) is cut: its change is stored and the outbox
			// sends it after the restart.
			log.Warn("http requests still running at shutdown; closing them", "err", err)
			return srv.Close()
		}
		return nil
	})
	log.Info("controller ready", "http", httpURL, "broker", brokerURL, "public_url", publicURL, "data", m.DataDir)

	run := &Running{HTTPURL: httpURL, BrokerURL: brokerURL, AdminToken: token, Store: db, Delivery: svc}
	if m.Demo {
		g.Go(func() error {
			return demo.Run(ctx, demo.Options{
				ControllerURL: httpURL, BrokerURL: publicBroker, AdminToken: token,
				Dir: filepath.Join(m.DataDir, "demo-boxes"), TopicPrefix: m.TopicPrefix,
				Out: m.Stdout, TokenPath: filepath.Join(m.DataDir, "admin.token"), LogPath: logPath,
			})
		})
	}
	if m.Ready != nil {
		m.Ready(run)
	}
	return g.Wait()
}

// maxHeaderBytes bounds a request's header: a session cookie, a CSRF
// token and a bearer token fit in a few hundred bytes.
const maxHeaderBytes = 32 << 10

// adminToken creates the first admin token on an empty database and writes
// it to <data>/admin.token; later starts read that file if it is still there.
func (m *Main) adminToken(ctx context.Context, db *store.DB, log *slog.Logger) (string, error) {
	path := filepath.Join(m.DataDir, "admin.token")
	token, created, err := db.EnsureAdminToken(ctx)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if created {
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		log.Info("created the first admin API token; keep it secret", "path", path)
		return token, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil // the operator removed it, as they should once users exist
	}
	return strings.TrimSpace(string(b)), nil
}

func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key %s is damaged (want %d hex-encoded bytes)", path, ed25519.SeedSize)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func randomSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// listenError turns "address already in use" into one line naming the flag.
func listenError(what, addr, flagName string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s address %s is already in use: choose another with %s", what, addr, flagName)
	}
	return fmt.Errorf("%s address %s: %w (set it with %s)", what, addr, err, flagName)
}

func hostPort(a net.Addr, host string) string {
	_, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort(host, port)
}

// derivePublicBroker guesses the broker URL boxes should use: the host of
// the public URL and the embedded broker's port, or the external broker.
func derivePublicBroker(publicURL, brokerURL string, embedded bool) string {
	if !embedded {
		return brokerURL
	}
	pu, err1 := url.Parse(publicURL)
	bu, err2 := url.Parse(brokerURL)
	if err1 != nil || err2 != nil {
		return brokerURL
	}
	return "tcp://" + net.JoinHostPort(pu.Hostname(), bu.Port())
}

// platformName is this platform's name in the chain: the county's
// platform, or Cunxiang's default when the county has no name here.
func platformName(county string) string {
	if county == "" {
		return upstream.DefaultName
	}
	return county + "应急广播平台"
}

// ebdOptions sets up the door of the national emergency-broadcast chain:
// nil without --ebr-id. This platform's SM2 key and certificate are made
// on first start in the data directory (ebd-key.pem, private;
// ebd-cert.pem, for the province to install), as the admin token is;
// there is no default key.
func (m *Main) ebdOptions(log *slog.Logger) (*httpapi.EBDOptions, error) {
	if m.EBRID == "" {
		if m.EBDTrust != "" || m.EBDUpstream != "" || m.EBDUpstreamEBRID != "" {
			return nil, errors.New("--ebd-trust, --ebd-upstream and --ebd-upstream-ebrid need --ebr-id, this platform's resource code")
		}
		return nil, nil
	}
	if !ebd.ValidEBRID(m.EBRID) {
		return nil, fmt.Errorf("--ebr-id %q is not a resource code of 18 or 23 digits", m.EBRID)
	}
	switch u := m.EBDUpstreamEBRID; {
	case u != "" && m.EBDUpstream == "":
		return nil, errors.New("--ebd-upstream-ebrid needs --ebd-upstream, the upper platform's URL")
	case u != "" && !ebd.ValidEBRID(u):
		return nil, fmt.Errorf("--ebd-upstream-ebrid %q is not a resource code of 18 or 23 digits (as the province assigned it, e.g. 010233000000000001)", u)
	case u != "" && u == m.EBRID:
		return nil, fmt.Errorf("--ebd-upstream-ebrid %s is this platform's own --ebr-id; give the upper platform's", u)
	}
	if m.EBDTrust == "" {
		return nil, errors.New("--ebr-id needs --ebd-trust, the PEM file of the upper platform's certificates")
	}
	pemData, err := os.ReadFile(m.EBDTrust)
	if err != nil {
		return nil, fmt.Errorf("--ebd-trust: %w", err)
	}
	trust, err := ebd.ParseTrust(pemData)
	if err != nil {
		return nil, fmt.Errorf("--ebd-trust %s: %w", m.EBDTrust, err)
	}
	keyPath, certPath := filepath.Join(m.DataDir, "ebd-key.pem"), filepath.Join(m.DataDir, "ebd-cert.pem")
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	if errors.Is(kerr, os.ErrNotExist) && errors.Is(cerr, os.ErrNotExist) {
		if keyPEM, certPEM, err = ebd.GenerateIdentity(rand.Reader, m.EBRID, time.Now()); err != nil {
			return nil, fmt.Errorf("make this platform's SM2 key: %w", err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", keyPath, err)
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", certPath, err)
		}
		log.Info("made this platform's SM2 key and certificate; give the certificate to the upper platform", "certificate", certPath)
	} else if kerr != nil || cerr != nil {
		return nil, fmt.Errorf("this platform's SM2 identity: %w", errors.Join(kerr, cerr))
	}
	id, err := ebd.LoadIdentity(keyPEM, certPEM)
	if err != nil {
		return nil, fmt.Errorf("this platform's SM2 identity (%s, %s): %w", keyPath, certPath, err)
	}
	log.Info("upper platform door open", "ebr_id", m.EBRID, "trusted_certificates", len(trust.Certificates()), "certificate_sn", id.CertSN())
	return &httpapi.EBDOptions{EBRID: m.EBRID, Trust: trust, Identity: id, LocalApproval: m.EBDLocalApproval}, nil
}
