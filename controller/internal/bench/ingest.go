package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// eventsPerMessage is how many reports each synthetic message carries.
const eventsPerMessage = api.MaxEventsPerBatch

// ingest publishes report messages from many enrolled boxes (their own
// credentials, their own topics, QoS 1) as fast as the broker takes them
// and times until the store holds every event, exactly once. The
// baseline stores the same rows with the store's own batch insert
// (IngestEvents, 1,000 events per transaction) into a fresh database.
func (b *bench) ingest(ctx context.Context) error {
	boxes, msgs := b.o.IngestBoxes, b.o.IngestMessages
	total := boxes * msgs * eventsPerMessage
	villages := ingestVillages(boxes)
	payloads, batches, err := ingestMessages(villages, msgs)
	if err != nil {
		return err
	}

	e, err := b.startEnv(ctx, "ingest")
	if err != nil {
		return err
	}
	defer e.close()
	db := e.ctl.Store
	if _, err := db.ImportVillages(ctx, villages); err != nil {
		return fmt.Errorf("import villages: %w", err)
	}
	clients := make([]paho.Client, boxes)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Disconnect(0)
			}
		}
	}()
	for i, v := range villages {
		tok, err := db.CreateEnrollToken(ctx, v.Code, time.Hour, "bench")
		if err != nil {
			return fmt.Errorf("enroll %s: %w", v.Code, err)
		}
		cr, err := db.Enroll(ctx, api.EnrollRequest{Village: v.Code, Token: tok.Token})
		if err != nil {
			return fmt.Errorf("enroll %s: %w", v.Code, err)
		}
		c := paho.NewClient(paho.NewClientOptions().AddBroker(e.brokerURL).SetClientID(cr.Username).
			SetUsername(cr.Username).SetPassword(cr.Password).SetCleanSession(true).SetAutoReconnect(false).
			SetConnectTimeout(10 * time.Second).SetWriteTimeout(30 * time.Second))
		if err := wait(c.Connect(), 15*time.Second, "box "+v.Code+" connect"); err != nil {
			return err
		}
		clients[i] = c
	}
	b.progress("ingest: %d boxes publish %d messages of %d events", boxes, msgs, eventsPerMessage)
	start := time.Now()
	errs := make(chan error, boxes)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := e.topics.Events(villages[i].Code)
			var window []paho.Token
			for _, p := range payloads[i] {
				window = append(window, c.Publish(topic, 1, false, p))
				if len(window) == 20 {
					for _, t := range window {
						if err := wait(t, 60*time.Second, "publish"); err != nil {
							errs <- err
							return
						}
					}
					window = window[:0]
				}
			}
			for _, t := range window {
				if err := wait(t, 60*time.Second, "publish"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	published := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	// Wait until every event is stored, or nothing more arrives for 15 s
	// (the synthetic boxes do not resend what the broker dropped).
	var stored, last int
	lastChange := time.Now()
	for {
		if stored, err = e.count(ctx, `SELECT COUNT(*) FROM events`); err != nil {
			return err
		}
		if stored >= total {
			break
		}
		if stored != last {
			last, lastChange = stored, time.Now()
		}
		if time.Since(lastChange) > 15*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	if stored < total {
		elapsed = lastChange.Sub(start)
	}
	dropped := e.dropped()
	// Every event once: the row count is exact, and every box's reports
	// 1..N are all stored (the acked seq is the contiguous prefix).
	states, err := db.VillageStates(ctx)
	if err != nil {
		return err
	}
	var acked int64
	for _, s := range states {
		if s.Agent != nil {
			acked += s.Agent.AckedSeq
		}
	}
	rate := float64(total) / elapsed.Seconds()

	base, err := b.ingestBaseline(ctx, villages, batches)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	ok := stored == total && acked == int64(total)
	b.report.Add(Row{
		Phase: "ingest", Case: fmt.Sprintf("%d boxes × %d msgs × %d events", boxes, msgs, eventsPerMessage),
		Metric:   "events/s, first publish → all committed (MQTT QoS1 → store)",
		Value:    fmt.Sprintf("%.0f/s (%d in %s; publishing took %s)", rate, total, elapsed.Round(time.Millisecond), published.Round(time.Millisecond)),
		Baseline: fmt.Sprintf("%.0f/s (store.IngestEvents, 1000 events/tx)", base),
		Ratio:    ratio(rate, base),
		Target:   "≥ 50,000/s, ratio ≥ 0.5",
		Met:      yesNo(rate >= 50000 && rate >= 0.5*base),
	})
	b.report.Add(Row{
		Phase: "ingest", Metric: "events stored / acked of sent (none lost, none twice)",
		Value:  fmt.Sprintf("%d / %d of %d; broker dropped %s messages", stored, acked, total, dropped),
		Target: "all, exactly", Met: yesNo(ok),
	})
	return nil
}

// ingestBaseline stores the same rows in a fresh database through the
// store's batch insert, 1,000 events per transaction, and returns events/s.
func (b *bench) ingestBaseline(ctx context.Context, villages []store.Village, batches [][]store.IngestBatch) (float64, error) {
	db, err := store.Open(ctx, filepath.Join(b.tmp, "ingest-baseline.db"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ImportVillages(ctx, villages); err != nil {
		return 0, err
	}
	// Message j of every box, in the order the boxes would interleave.
	var all []store.IngestBatch
	for j := range batches[0] {
		for i := range batches {
			all = append(all, batches[i][j])
		}
	}
	per := 1000 / eventsPerMessage
	start := time.Now()
	n := 0
	for i := 0; i < len(all); i += per {
		chunk := all[i:min(i+per, len(all))]
		if _, err := db.IngestEvents(ctx, chunk); err != nil {
			return 0, err
		}
		for _, c := range chunk {
			n += len(c.Events)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func ingestVillages(n int) []store.Village {
	vs := make([]store.Village, n)
	for i := range vs {
		t := i / 10
		vs[i] = store.Village{
			Code: fmt.Sprintf("990400%03d%03d", t%999+1, i%10+1+10*(t/999)), Name: fmt.Sprintf("Ingest village %d", i+1),
			Township: fmt.Sprintf("Ingest township %d", t+1), Lat: 31, Lon: 111, Device: "agent",
		}
	}
	return vs
}

// ingestMessages makes, for each village, msgs report messages of 100
// events with seqs 1, 2, … as a box numbers them: the wire payloads and
// the same as store batches.
func ingestMessages(villages []store.Village, msgs int) ([][][]byte, [][]store.IngestBatch, error) {
	at := time.Now().UTC().Truncate(time.Millisecond)
	payloads := make([][][]byte, len(villages))
	batches := make([][]store.IngestBatch, len(villages))
	for i, v := range villages {
		seq := int64(0)
		for range msgs {
			evs := make([]api.Event, eventsPerMessage)
			for k := range evs {
				seq++
				evs[k] = api.Event{Seq: seq, Type: api.EventDownloaded, At: at.Add(time.Duration(seq) * time.Millisecond)}
			}
			raw, err := json.Marshal(api.EventBatch{V: api.Version, Village: v.Code, Version: "bench", Events: evs})
			if err != nil {
				return nil, nil, err
			}
			payloads[i] = append(payloads[i], raw)
			batches[i] = append(batches[i], store.IngestBatch{Village: v.Code, Version: "bench", Events: evs})
		}
	}
	return payloads, batches, nil
}

// readOnly opens the controller's database read-only, to count rows.
func readOnly(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}
