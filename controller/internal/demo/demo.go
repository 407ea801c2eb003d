// Package demo brings up a demo county on a running controller: 81
// villages in 9 townships (79 with boxes, 2 manual), 79 simulated boxes in
// this process on null output, and a sample announcement scheduled a minute
// ahead for everyone. It drives the controller only through its HTTP API,
// as staff would.
package demo

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// Announcement is a short Mandarin prevention notice (espeak-ng, 22,050 Hz
// mono 16-bit), the demo's sample clip.
//
//go:embed announcement.wav
var Announcement []byte

// County is the demo county's name.
const County = "示例县"

// CountyName is the county name a controller shows: set, unless it is
// empty and the demo runs (County).
func CountyName(set string, demo bool) string {
	if set == "" && demo {
		return County
	}
	return set
}

// Options configure the demo.
type Options struct {
	ControllerURL string
	BrokerURL     string
	AdminToken    string
	TokenPath     string
	Dir           string // where the simulated boxes keep their data
	TopicPrefix   string
	BoxLogger     *slog.Logger // the simulated boxes' log (default: warnings to stderr)
	Out           io.Writer
	LogPath       string // the controller's log file, named in the banner
	// Lead is how far ahead the announcement is scheduled (default 1 min).
	Lead time.Duration
}

// Run sets the demo up, then prints coverage until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Lead == 0 {
		o.Lead = time.Minute
	}
	if o.AdminToken == "" {
		return fmt.Errorf("demo: no admin token (is %s still there?)", o.TokenPath)
	}
	c := &client.Client{URL: o.ControllerURL, Token: o.AdminToken}
	if _, err := c.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		return fmt.Errorf("demo: import villages: %w", err)
	}
	vs, err := c.Villages(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var boxes []fleet.Box
	manual := 0
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent {
			manual++
			continue
		}
		tok, err := c.Enroll(ctx, v.Code)
		if err != nil {
			return fmt.Errorf("demo: enroll %s: %w", v.Code, err)
		}
		boxes = append(boxes, fleet.Box{Village: v.Code, EnrollToken: tok.Token})
	}
	// 79 boxes logging every report would bury the controller's log and
	// the coverage lines; show only their warnings.
	boxLog := o.BoxLogger
	if boxLog == nil {
		boxLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	fl, err := fleet.Start(ctx, fleet.Options{
		Controller: o.ControllerURL, Broker: o.BrokerURL, Dir: o.Dir, TopicPrefix: o.TopicPrefix,
		Output: "null", Boxes: boxes, Logger: boxLog,
	})
	if err != nil {
		return fmt.Errorf("demo: start boxes: %w", err)
	}
	defer fl.Close()

	// A console login for whoever runs the demo: a random password, never
	// a default one, printed once.
	login := "log in as demo with the password printed when ./data was first used (or start with an empty --data)"
	pass := randomPassword()
	if _, err := c.CreateUser(ctx, api.UserRequest{Username: "demo", DisplayName: "demo", Role: "admin", Village: "", Password: pass}); err == nil {
		login = "user demo, password " + pass
	}
	clip, err := c.UploadAudio(ctx, "announcement.wav", "防疫广播（示范）", Announcement)
	if err != nil {
		return fmt.Errorf("demo: upload: %w", err)
	}
	pl, err := c.CreatePlaylist(ctx, playlists.Playlist{Name: "防疫广播（示范）", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		return fmt.Errorf("demo: playlist: %w", err)
	}
	at := time.Now().Add(o.Lead).Truncate(time.Second)
	sched, err := c.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, Timezone: playlists.DefaultTimezone, OnceAt: &at})
	if err != nil {
		return fmt.Errorf("demo: schedule: %w", err)
	}
	sid := sched.ID
	tokPath, _ := filepath.Abs(o.TokenPath)
	fmt.Fprintf(o.Out, `
村响 Cunxiang demo is running.
  villages:      %d (%d with boxes running in this process, %d manual)
  announcement:  schedule %d plays at %s to the whole county
  console:       %s/   (%s)
  API:           %s/api/v1   (token: %s)
  try:           curl -H "Authorization: Bearer $(cat %s)" %s/api/v1/schedules/%d/coverage
%sCoverage is printed below as the boxes report. Ctrl-C stops everything.

`, len(vs), len(boxes), manual, sid, at.In(mustShanghai()).Format("15:04:05 MST"), o.ControllerURL, login, o.ControllerURL, tokPath, tokPath, o.ControllerURL, sid, logLine(o.LogPath))

	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cov, err := c.Coverage(ctx, sid, at)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintln(o.Out, "coverage:", err)
			continue
		}
		line := fmt.Sprintf("coverage of %s: %d of %d villages played; %d pending, %d awaiting hand confirmation, %d partial, %d failed, %d missed",
			at.In(mustShanghai()).Format("15:04:05"), cov.Played, cov.Targeted, cov.Pending, cov.AwaitingConfirmation, cov.Partial, cov.Failed, cov.Missed)
		if line != last {
			fmt.Fprintln(o.Out, line)
			last = line
		}
	}
}

// logLine is the banner's line naming the log file, if there is one.
func logLine(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return "  log:           " + path + "   (requests and details; warnings also appear here)\n"
}

func randomPassword() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func mustShanghai() *time.Location {
	loc, err := time.LoadLocation(playlists.DefaultTimezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
