package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// TestAudioLoudness: a clip's loudness is stored and read back; a clip
// stored before loudness was measured reads as unknown (nil, not 0) and
// takes the measurement when the same recording is stored again.
func TestAudioLoudness(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := store.OpenAtVersionForTest(ctx, path, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.ExecContext(ctx, `INSERT INTO audio (sha256, title, duration_ms, sample_rate, channels, size_bytes, created_at)
		VALUES ('old', '旧录音', 1000, 22050, 1, 44144, '2026-01-01T00:00:00.000000Z')`)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	list, err := db.AudioList(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %+v, %v", list, err)
	}
	if a := list[0]; a.LoudnessLUFS != nil || a.PeakDBFS != nil || a.GainDB != nil || a.CreatedBy != "" {
		t.Fatalf("a clip never measured has loudness %v %v %v", a.LoudnessLUFS, a.PeakDBFS, a.GainDB)
	}

	lufs, peak, gain := -23.5, -6.25, 5.25
	measured := store.Audio{SHA256: "new", Title: "新录音", DurationMS: 2000, SampleRate: 22050, Channels: 1, SizeBytes: 88244,
		LoudnessLUFS: &lufs, PeakDBFS: &peak, GainDB: &gain, CreatedBy: "zhang"}
	a, created, err := db.CreateAudio(ctx, measured, nil)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	got, err := db.Audio(ctx, a.ID)
	if err != nil || got.LoudnessLUFS == nil || *got.LoudnessLUFS != lufs || *got.PeakDBFS != peak || *got.GainDB != gain || got.CreatedBy != "zhang" {
		t.Fatalf("read back %+v, %v", got, err)
	}

	// Uploaded again, the old clip is measured; the title and id stay.
	again := measured
	again.SHA256, again.Title = "old", "another title"
	b, created, err := db.CreateAudio(ctx, again, nil)
	if err != nil || created || b.Title != "旧录音" || b.GainDB == nil || *b.GainDB != gain {
		t.Fatalf("again: %+v %v %v", b, created, err)
	}
	if got, _ := db.Audio(ctx, b.ID); got.LoudnessLUFS == nil || *got.LoudnessLUFS != lufs || *got.PeakDBFS != peak {
		t.Fatalf("old clip after measuring: %+v", got)
	}
	// A measurement already stored is kept.
	other := -1.0
	again.GainDB = &other
	if c, _, _ := db.CreateAudio(ctx, again, nil); *c.GainDB != gain {
		t.Fatalf("a stored measurement was replaced: %v", *c.GainDB)
	}
}
