package message

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func valid() *Message {
	return &Message{
		V: Version, ID: NewID(), Channel: App, ChannelMessageID: "wallet/1",
		ReceivedAt: time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC),
		From:       Party{Address: "u-1", Name: "Ann"}, Text: "hello",
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	m := valid()
	m.Attachments = []Attachment{{Name: "a.png", ContentType: "image/png", Size: 10, URL: "https://x/a.png"}}
	m.Thread = Thread{MessageID: "<a@b>", References: []string{"<r@b>"}}
	m.Extra = map[string]string{"call_status": "completed"}
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", got, m)
	}
	// Empty optional parts stay out of the wire form.
	plain, _ := Encode(valid())
	for _, key := range []string{`"to"`, `"thread"`, `"html"`, `"extra"`, `"attachments"`} {
		if strings.Contains(string(plain), key) {
			t.Errorf("empty %s is encoded: %s", key, plain)
		}
	}
}

// Every payload inroute ever wrote must stay readable: the files under
// testdata/ are frozen examples of each version; never edit them, add new ones.
func TestOldPayloadsStillDecode(t *testing.T) {
	files, err := filepath.Glob("testdata/v*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden payloads: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if m.V != 1 || m.ID == "" || !m.Channel.Valid() || m.From.Address == "" {
				t.Fatalf("decoded wrongly: %+v", m)
			}
		})
	}
	data, _ := os.ReadFile("testdata/v1-email.json")
	m, _ := Decode(data)
	if m.Thread.InReplyTo != "<x1@wallet.example>" || len(m.Thread.References) != 2 || m.Subject != "Refund for order 1234" {
		t.Fatalf("email fields lost: %+v", m)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Message)
		want   string
	}{
		{"ok", func(*Message) {}, ""},
		{"version", func(m *Message) { m.V = 2 }, "v is 2"},
		{"id", func(m *Message) { m.ID = "nope" }, "not a ULID"},
		{"channel", func(m *Message) { m.Channel = "fax" }, `unknown channel "fax"`},
		{"channel id", func(m *Message) { m.ChannelMessageID = " " }, "channel_message_id is empty"},
		{"channel id long", func(m *Message) { m.ChannelMessageID = strings.Repeat("x", MaxChannelIDBytes+1) }, "channel_message_id is longer"},
		{"received", func(m *Message) { m.ReceivedAt = time.Time{} }, "received_at is missing"},
		{"from", func(m *Message) { m.From.Address = "" }, "from.address is empty"},
		{"empty", func(m *Message) { m.Text = "" }, "no text"},
		{"only extra", func(m *Message) { m.Text = ""; m.Extra = map[string]string{"call_status": "no-answer"} }, ""},
		{"text long", func(m *Message) { m.Text = strings.Repeat("x", MaxTextBytes+1) }, "text is longer"},
		{"utf8", func(m *Message) { m.Text = "\xff\xfe" }, "not valid UTF-8"},
		{"nul", func(m *Message) { m.Text = "he\x00llo" }, "contains a NUL"},
		{"long thread id", func(m *Message) { m.Thread.References = []string{strings.Repeat("r", 2000)} }, "thread ids"},
		{"negative size", func(m *Message) { m.Attachments = []Attachment{{Size: -1}} }, "size is negative"},
		{"subject long", func(m *Message) { m.Subject = strings.Repeat("s", 2000) }, "subject is longer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.mutate(m)
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, in string
		want     error
	}{
		{"not json", `hello`, ErrInvalid},
		{"array", `[1]`, ErrInvalid},
		{"no version", `{"id":"x"}`, ErrUnsupportedVersion},
		{"future version", `{"v":9}`, ErrUnsupportedVersion},
		{"wrong type", `{"v":1,"text":5}`, ErrInvalid},
		{"invalid v1", `{"v":1}`, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUrgency(t *testing.T) {
	if Low.Raise(1) != Normal || High.Raise(5) != Urgent || Urgent.Raise(1) != Urgent || Normal.Raise(-9) != Low {
		t.Fatal("Raise")
	}
	if Low.Max(High) != High || Urgent.Max(Low) != Urgent {
		t.Fatal("Max")
	}
	if _, err := ParseUrgency("critical"); err == nil {
		t.Fatal("ParseUrgency accepted an unknown level")
	}
	if u, err := ParseUrgency("urgent"); err != nil || u != Urgent {
		t.Fatal("ParseUrgency")
	}
}

func TestIDsSortByTime(t *testing.T) {
	a := NewID()
	time.Sleep(2 * time.Millisecond)
	b := NewID()
	if !(a < b) {
		t.Fatalf("ids do not sort by creation: %s !< %s", a, b)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"v1-app.json", "v1-email.json", "v1-voice.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must validate and survive a round trip.
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		var again Message
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatal(err)
		}
	})
}
