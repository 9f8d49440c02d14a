package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var purgeTests = []contractTest{
	{"RemovesOldResolvedAndUnusedBlobs", testPurge},
	{"WithoutBlobDeleter", testPurgeWithoutBlobs},
}

// blobRef is a well-formed blob reference for the named content.
func blobRef(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobAtt(name, ref string) store.Attachment {
	return store.Attachment{Name: name, ContentType: "image/png", Size: 10, Ref: ref}
}

// Timeline (days from the start):
//
//	0      old: two SMS (5 attachments), resolved 2h later
//	3      open: one SMS using the blob shared with old
//	6      late: one SMS with its own blob, resolved 1h later
//
// Purge(cutoff day 5) removes old only. Of old's blobs, "only" and "dup"
// (used twice within old) are no longer used and are deleted; "shared" is
// still used by open and must stay; the URL attachment is not a blob.
func testPurge(t *testing.T, b Backend) {
	e := newEnv(t, b)
	day := 24 * time.Hour
	only, dup, shared, kept := blobRef("only-old"), blobRef("dup-old"), blobRef("shared"), blobRef("kept-late")
	const url = "https://cdn.example.com/photo.jpg"

	oldPhone := newPhone()
	rOld := e.record(store.Inbound{Msg: e.msg(message.SMS, oldPhone), Decision: topic("fee"),
		Attachments: []store.Attachment{blobAtt("a.png", only), blobAtt("b.png", dup), blobAtt("c.png", shared)}})[0]
	old := rOld.Conversation.ID
	e.clock.Advance(time.Hour)
	r2 := e.record(store.Inbound{Msg: e.msg(message.SMS, oldPhone), Decision: topic("fee"),
		Attachments: []store.Attachment{blobAtt("b-again.png", dup), {Name: "photo.jpg", ContentType: "image/jpeg", Size: 7, Ref: url}}})[0]
	if r2.Conversation.ID != old {
		t.Fatalf("second SMS an hour later went to conversation %d; want %d (chat window)", r2.Conversation.ID, old)
	}
	e.clock.Advance(time.Hour)
	e.resolve(old)
	oldResolvedAt := e.clock.Now()

	e.clock.Advance(3 * day)
	open := e.record(store.Inbound{Msg: e.msg(message.SMS, newPhone()), Decision: topic("fee"),
		Attachments: []store.Attachment{blobAtt("c.png", shared)}})[0].Conversation.ID

	e.clock.Advance(3 * day)
	late := e.record(store.Inbound{Msg: e.msg(message.SMS, newPhone()), Decision: topic("fee"),
		Attachments: []store.Attachment{blobAtt("d.png", kept)}})[0].Conversation.ID
	e.clock.Advance(time.Hour)
	e.resolve(late)
	cutoff := epoch.Add(5 * day)

	// A cutoff before old's resolution removes nothing.
	st, err := e.s.Purge(e.ctx, oldResolvedAt.Add(-time.Minute))
	if err != nil {
		t.Fatalf("Purge(before any resolution): %v", err)
	}
	if st != (store.PurgeStats{}) {
		t.Errorf("Purge(before any resolution) = %+v; want nothing removed", st)
	}
	if got := e.blobs.refs(); len(got) != 0 {
		t.Errorf("Purge(before any resolution) deleted blobs %v", got)
	}

	oldEvents := len(e.events(old))
	st, err = e.s.Purge(e.ctx, cutoff)
	if err != nil {
		t.Fatalf("Purge(cutoff): %v", err)
	}
	want := store.PurgeStats{Conversations: 1, Messages: 2, Attachments: 5, Events: int64(oldEvents), Blobs: 2}
	if st != want {
		t.Errorf("Purge(cutoff) = %+v; want %+v", st, want)
	}

	deleted := e.blobs.refs()
	distinct := slices.Compact(slices.Clone(deleted))
	if wantRefs := sortedStrings(only, dup); !slices.Equal(distinct, wantRefs) {
		t.Errorf("Blobs.Delete called for %v; want exactly %v (not %s, still used by an open conversation; not %s, kept; not the URL)",
			deleted, wantRefs, shared, kept)
	}
	if len(deleted) != len(distinct) {
		t.Errorf("Blobs.Delete called %d times for %d refs (%v); want once per ref", len(deleted), len(distinct), deleted)
	}

	if _, err := e.s.Conversation(e.ctx, old); !isNotFound(err) {
		t.Errorf("Conversation(purged): err = %v; want store.ErrNotFound", err)
	}
	if ms, err := e.s.Messages(e.ctx, old); err == nil && len(ms) != 0 {
		t.Errorf("Messages(purged) = %d messages; want none", len(ms))
	} else if err != nil && !isNotFound(err) {
		t.Errorf("Messages(purged): %v; want no messages or store.ErrNotFound", err)
	}
	if evs, err := e.s.Events(e.ctx, old); err == nil && len(evs) != 0 {
		t.Errorf("Events(purged) = %v; want none", kinds(evs))
	} else if err != nil && !isNotFound(err) {
		t.Errorf("Events(purged): %v; want no events or store.ErrNotFound", err)
	}
	if got := e.contactConvs(rOld.Conversation.ContactID); slices.Contains(got, old) {
		t.Errorf("ContactConversations still lists purged conversation %d", old)
	}

	for _, k := range []struct {
		name string
		id   int64
		ref  string
	}{{"open", open, shared}, {"resolved after cutoff", late, kept}} {
		e.conv(k.id)
		ms := e.messages(k.id)
		if len(ms) != 1 || len(ms[0].Attachments) != 1 || ms[0].Attachments[0].Ref != k.ref {
			t.Errorf("%s conversation %d after Purge: messages %+v; want its one message with attachment %s", k.name, k.id, ms, k.ref)
		}
	}

	// Nothing left to purge at that cutoff.
	st, err = e.s.Purge(e.ctx, cutoff)
	if err != nil {
		t.Fatalf("second Purge(cutoff): %v", err)
	}
	if st != (store.PurgeStats{}) {
		t.Errorf("second Purge(cutoff) = %+v; want nothing removed", st)
	}
}

// Options.Blobs is optional: without it Purge still removes the rows.
func testPurgeWithoutBlobs(t *testing.T, b Backend) {
	e := newEnv(t, b, func(o *store.Options) { o.Blobs = nil })
	r := e.record(store.Inbound{Msg: e.msg(message.SMS, newPhone()), Decision: topic("fee"),
		Attachments: []store.Attachment{blobAtt("a.png", blobRef("no-deleter"))}})[0]
	e.clock.Advance(time.Hour)
	e.resolve(r.Conversation.ID)
	st, err := e.s.Purge(e.ctx, e.clock.Advance(time.Hour))
	if err != nil {
		t.Fatalf("Purge without Options.Blobs: %v", err)
	}
	if st.Conversations != 1 || st.Messages != 1 {
		t.Errorf("Purge = %+v; want 1 conversation and 1 message removed", st)
	}
	if _, err := e.s.Conversation(e.ctx, r.Conversation.ID); !isNotFound(err) {
		t.Errorf("Conversation(purged): err = %v; want store.ErrNotFound", err)
	}
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}
