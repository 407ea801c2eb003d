package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/bench"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/store/storetest"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestTwoControllersOnePublisher runs two controller processes, A and B,
// on one PostgreSQL database (CUNXIANG_TEST_POSTGRES) and one Mosquitto
// (CUNXIANG_TEST_MOSQUITTO), sharing a data directory (the signing key
// and the audio library), with two boxes. A starts first and holds the
// publisher lease.
//   - A broadcast made through B reaches both boxes exactly once: A
//     publishes it, B answers once it is on the broker.
//   - A request with an Idempotency-Key, repeated on B while A still
//     carries it out (held in text-to-speech), is not carried out twice:
//     B answers "in progress", and later the first answer.
//   - A hangs (SIGSTOP, its pid still running, as if cut off from the
//     database): B takes the lease once it expires. A, woken (SIGCONT),
//     publishes nothing: a broadcast made through A is sent by B.
//   - B, the holder now, is killed (SIGKILL): A takes the lease over, and
//     a broadcast made next through A reaches both boxes exactly once.
//
// Before the lease, both controllers published; before claims named a
// live owner, B took over A's key and made a second broadcast. The
// controllers' MQTT client ids are new each run: Mosquitto keeps a
// persistent session, and one left by an earlier run stalled delivery
// of the boxes' reports (messages it redelivers before the controller
// subscribes find no handler in paho, which then never acknowledges
// them).
func TestTwoControllersOnePublisher(t *testing.T) {
	t.Parallel()
	mqtt := os.Getenv("CUNXIANG_TEST_MOSQUITTO")
	if mqtt == "" {
		t.Skip("CUNXIANG_TEST_MOSQUITTO not set (e.g. tcp://127.0.0.1:1883); .ci/run sets it")
	}
	dbURL := storetest.PostgresURL(t) // skips without CUNXIANG_TEST_POSTGRES
	ctx := t.Context()
	bin := built(t, "controller", "")
	// Mosquitto keeps retained messages across runs: a prefix of its own.
	var rnd [6]byte
	rand.Read(rnd[:])
	prefix := "cxtest/" + hex.EncodeToString(rnd[:])
	espeak, gate, calls := gatedSpeaker(t)

	pcA := newProcessController(t, bin)
	pcB := newProcessController(t, bin)
	pcB.data = pcA.data
	for name, pc := range map[string]*processController{"a": pcA, "b": pcB} {
		pc.args = []string{"--db", dbURL, "--broker", mqtt, "--topic-prefix", prefix,
			"--broker-client-id", "cx-" + hex.EncodeToString(rnd[:]) + "-" + name, "--espeak", espeak}
	}
	a := pcA.start(t)
	waitHolder(t, dbURL, a, "A, started first")
	b := pcB.start(t)
	hA, hB := pcA.harness(t), pcB.harness(t)
	for _, h := range []*controllerHarness{hA, hB} {
		h.BrokerURL, h.Prefix = mqtt, prefix
	}
	if pid := holderPID(t, dbURL); pid != a.cmd.Process.Pid {
		t.Fatalf("the lease holder is pid %d, want A (%d): B took it from a running A", pid, a.cmd.Process.Pid)
	}

	csv := "code,name,township,lat,lon,device\n" +
		crashVillages[0] + ",东村,东镇,39.9,116.4,agent\n" +
		crashVillages[1] + ",西村,东镇,39.91,116.41,agent\n"
	if _, err := hB.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	// Enrolled through B, the boxes fetch clips from B, which outlives A.
	fl := hB.boxes(t, mqtt, "null", crashVillages...)
	waitFor(t, 20*time.Second, "both boxes connected", func() bool {
		return fl.Connected(crashVillages[0]) && fl.Connected(crashVillages[1])
	})
	pl := hB.playlist(t, "双控测试", "双控")
	targets := playlists.Targets{Villages: crashVillages}

	// 1. Through B, published by A.
	b1, err := hB.Client.CreateBroadcast(ctx, routineBroadcast(pl, targets, 1))
	if err != nil {
		t.Fatal(err)
	}
	if b1.SendError != "" {
		t.Errorf("broadcast %d through B: send error %q", b1.ID, b1.SendError)
	}
	waitFor(t, 30*time.Second, "the broadcast made through B to finish on both boxes", func() bool {
		return boxStatus(t, fl, b1.ID) == api.EventFinished+","+api.EventFinished
	})
	// Who published it: each logs what it sends.
	sent := fmt.Sprintf("msg=sent component=delivery kind=broadcast ref=%d ", b1.ID)
	if !strings.Contains(readFile(t, pcA.logPath), sent) {
		t.Errorf("A, holding the lease, did not log %q", sent)
	}
	if log := readFile(t, pcB.logPath); strings.Contains(log, "msg=sent ") {
		t.Errorf("B published commands while A held the publisher lease:\n%s", log)
	}

	// 2. An idempotent request repeated on B while A carries it out.
	req := routineBroadcast(0, targets, 1)
	req.PlaylistID, req.Text = 0, "村民请注意，这是双控制器测试。"
	body, _ := json.Marshal(req)
	first := make(chan keyedAnswer, 1)
	go func() { first <- postKeyed(ctx, hA, "two-1", body) }()
	waitFor(t, 20*time.Second, "A to start text-to-speech", func() bool { return countLines(calls) >= 1 })
	second := make(chan keyedAnswer, 1)
	go func() { second <- postKeyed(ctx, hB, "two-1", body) }()
	var rep keyedAnswer
	waitFor(t, 40*time.Second, "B's answer to the repeat", func() bool {
		if n := countLines(calls); n > 1 {
			t.Fatalf("text-to-speech ran %d times for one Idempotency-Key: B carried out the request A is carrying out", n)
		}
		select {
		case rep = <-second:
			return true
		default:
			return false
		}
	})
	if rep.err != nil || rep.status != http.StatusConflict || !strings.Contains(string(rep.body), api.ReasonIdempotencyInProgress) {
		t.Fatalf("repeat on B while A carries the request out: %d %s (%v), want 409 %s", rep.status, rep.body, rep.err, api.ReasonIdempotencyInProgress)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := <-first
	var made api.Broadcast
	if got.err != nil || got.status != http.StatusAccepted || json.Unmarshal(got.body, &made) != nil || made.ID == 0 {
		t.Fatalf("the request on A: %d %s (%v)", got.status, got.body, got.err)
	}
	again := postKeyed(ctx, hB, "two-1", body)
	var replayed api.Broadcast
	if again.err != nil || again.status != http.StatusAccepted || json.Unmarshal(again.body, &replayed) != nil || replayed.ID != made.ID {
		t.Fatalf("repeat on B after A answered: %d %s (%v), want broadcast %d", again.status, again.body, again.err, made.ID)
	}
	if bs, err := hB.Client.Broadcasts(ctx); err != nil || len(bs) != 2 {
		t.Fatalf("broadcasts: %d (%v), want 2: one per request and key", len(bs), err)
	}
	if n := countLines(calls); n != 1 {
		t.Errorf("text-to-speech ran %d times, want once", n)
	}
	waitFor(t, 30*time.Second, "the keyed broadcast to finish on both boxes", func() bool {
		return boxStatus(t, fl, made.ID) == api.EventFinished+","+api.EventFinished
	})

	// 3. The holder hangs (SIGSTOP: as cut off from the database, its pid
	// still running): B takes the lease once it expires. A, woken, must
	// not publish: a broadcast made through A is sent by B.
	finished := func(id int64, what string) {
		t.Helper()
		waitFor(t, 30*time.Second, what+" to finish on both boxes", func() bool {
			return boxStatus(t, fl, id) == api.EventFinished+","+api.EventFinished
		})
	}
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitHolder(t, dbURL, b, "B, while A hangs")
	t.Logf("B holds the lease %.1f s after A hung", time.Since(stopped).Seconds())
	woke := len(readFile(t, pcA.logPath))
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "A to see that B holds the lease", func() bool {
		return strings.Contains(readFile(t, pcA.logPath)[woke:], "another controller holds the publisher lease")
	})
	b3, err := hA.Client.CreateBroadcast(ctx, routineBroadcast(pl, targets, 1))
	if err != nil {
		t.Fatal(err)
	}
	finished(b3.ID, "the broadcast made through A after it woke")
	if log := readFile(t, pcA.logPath)[woke:]; strings.Contains(log, "msg=sent ") {
		t.Errorf("A published commands after it lost the lease:\n%s", log)
	}
	if !strings.Contains(readFile(t, pcB.logPath), fmt.Sprintf("msg=sent component=delivery kind=broadcast ref=%d ", b3.ID)) {
		t.Errorf("B, holding the lease, did not log broadcast %d sent", b3.ID)
	}

	// 4. The holder (now B) dies: A takes over; the next change, made
	// through A, reaches the boxes.
	b.kill()
	died := time.Now()
	waitHolder(t, dbURL, a, "A, after B was killed")
	t.Logf("A holds the lease %.1f s after B was killed", time.Since(died).Seconds())
	b4, err := hA.Client.CreateBroadcast(ctx, routineBroadcast(pl, targets, 1))
	if err != nil {
		t.Fatal(err)
	}
	finished(b4.ID, "the broadcast made after B died")

	waitReportsAcked(t, fl, 40*time.Second)
	ids := []int64{b1.ID, made.ID, b3.ID, b4.ID}
	for _, v := range crashVillages {
		bs, err := fl.Broadcasts(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			i := slices.IndexFunc(bs, func(b fleet.Broadcast) bool { return b.ID == id })
			if i < 0 || bs[i].Plays != 1 {
				t.Errorf("box %s: broadcast %d %+v, want it begun to sound once", v, id, bs)
			}
		}
	}
	checkReceivedOnce(t, dbURL, ids)
	if err := fl.Close(); err != nil {
		t.Errorf("stop boxes: %v", err)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("controller A exited with %v after SIGTERM, want status 0", err)
	}
}

// holderPID is the pid of the controller holding the publisher lease, by
// the database (0 if none holds an unexpired lease).
func holderPID(tb testing.TB, dbURL string) int {
	tb.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var pid int
	var expires string
	err = db.QueryRowContext(tb.Context(), `SELECT i.pid, l.expires_at FROM leases l JOIN instances i ON i.id = l.holder WHERE l.name = $1`,
		store.LeasePublisher).Scan(&pid, &expires)
	if err == sql.ErrNoRows {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	if t, err := time.Parse(time.RFC3339Nano, expires); err != nil || !time.Now().Before(t) {
		return 0
	}
	return pid
}

// waitHolder waits until p holds the publisher lease.
func waitHolder(tb testing.TB, dbURL string, p *proc, who string) {
	tb.Helper()
	waitFor(tb, store.LeaseTTL+10*time.Second, who+" to hold the publisher lease", func() bool {
		return holderPID(tb, dbURL) == p.cmd.Process.Pid
	})
}

// checkReceivedOnce reads the database: each box reported receiving each
// broadcast once and started it once.
func checkReceivedOnce(tb testing.TB, dbURL string, ids []int64) {
	tb.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, id := range ids {
		for _, v := range crashVillages {
			for _, typ := range []string{api.EventReceived, api.EventStarted} {
				var n int
				if err := db.QueryRowContext(tb.Context(), `SELECT COUNT(*) FROM events WHERE broadcast_id = $1 AND village = $2 AND type = $3`, id, v, typ).Scan(&n); err != nil {
					tb.Fatal(err)
				}
				if n != 1 {
					tb.Errorf("box %s reported %s %d times for broadcast %d, want once", v, typ, n, id)
				}
			}
		}
	}
}

// gatedSpeaker writes a stand-in for espeak-ng that notes each call (a
// line in calls) and writes its speech only once the file gate exists,
// so a test holds a request inside text-to-speech for as long as it
// needs.
func gatedSpeaker(tb testing.TB) (path, gate, calls string) {
	tb.Helper()
	dir := tb.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if err := os.WriteFile(wav, bench.WAV(testTone(tb, time.Second, -23)), 0o644); err != nil {
		tb.Fatal(err)
	}
	gate, calls, path = filepath.Join(dir, "gate"), filepath.Join(dir, "calls"), filepath.Join(dir, "espeak-ng")
	script := fmt.Sprintf(`#!/bin/sh
echo call >> %[1]q
out=
while [ $# -gt 0 ]; do
	if [ "$1" = "-w" ]; then out="$2"; fi
	shift
done
cat >/dev/null
while [ ! -e %[2]q ]; do sleep 0.05; done
cp %[3]q "$out"
`, calls, gate, wav)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path, gate, calls
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

type keyedAnswer struct {
	status int
	body   []byte
	err    error
}

// postKeyed creates a broadcast with an Idempotency-Key on h.
func postKeyed(ctx context.Context, h *controllerHarness, key string, body []byte) keyedAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.HTTPURL+"/api/v1/broadcasts", bytes.NewReader(body))
	if err != nil {
		return keyedAnswer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return keyedAnswer{err: err}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return keyedAnswer{status: resp.StatusCode, body: buf.Bytes(), err: err}
}
