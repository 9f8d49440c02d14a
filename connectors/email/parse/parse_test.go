package parse

import (
	"bytes"
	"errors"
	"fmt"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/inroute/inroute/message"
)

type wantAttachment struct {
	name, contentType string
	size              int64
	dropped, inline   bool
}

type fixture struct {
	file       string
	opt        Options
	subject    string
	from       Address
	to         []Address
	cc         []Address
	messageID  string
	inReplyTo  string
	references []string
	date       string // RFC 3339
	language   string
	text       string
	fullHas    []string // the quoted history FullText keeps
	htmlHas    string
	auto       message.Automatic
	reason     string
	bounce     *Bounce
	atts       []wantAttachment
	problems   []string // substrings, one problem each; nil means none
}

var fixtures = []fixture{
	{
		file:       "gmail_reply.eml",
		subject:    "Re: Refund for order #4821",
		from:       Address{"María López", "maria.lopez@gmail.example"},
		to:         []Address{{"Shop Support", "support@shop.example"}},
		messageID:  "<CAF=q7Xb2tQ+9mE3H0vR8uYwJc1nB-kzZ5gPpL4x@mail.gmail.example>",
		inReplyTo:  "<reply-4821-1@shop.example>",
		references: []string{"<order-4821-refund@shop.example>", "<reply-4821-1@shop.example>"},
		date:       "2024-06-04T18:12:31+02:00",
		text:       "Hi,\n\nI still haven't received the refund for order #4821. It has been 10 days\nnow. Can you check please?\n\nThanks,\nMaria",
		fullHas:    []string{"On Mon, 3 Jun 2024 at 10:00, Shop Support <support@shop.example>\nwrote:", "> We have issued the refund.", "-- \nMaría López"},
		htmlHas:    `<div class="gmail_quote">`,
	},
	{
		file:       "outlook_reply.eml",
		subject:    "RE: Invoice INV-2024-0612",
		from:       Address{"John Smith", "john.smith@contoso.example"},
		to:         []Address{{"Billing", "billing@shop.example"}},
		cc:         []Address{{"Accounts Payable", "ap@contoso.example"}},
		messageID:  "<AM0PR01MB12345F8C9D0E1F2A3B4C5D6E7F8A9B0C1D2E3@AM0PR01MB1234.eurprd01.prod.exchangelabs.example>",
		inReplyTo:  "<inv-2024-0612@shop.example>",
		references: []string{"<inv-2024-0612@shop.example>"},
		date:       "2024-06-04T07:45:09Z",
		language:   "en-GB",
		text:       "Hello,\n\nThe invoice lists 12 licences but we only ordered 10. Please send a corrected invoice.\n\nKind regards,\nJohn Smith\nContoso Ltd.",
		fullHas:    []string{"________________________________\nFrom: Billing <billing@shop.example>\nSent: Monday, June 3, 2024 10:00 AM", "please find your invoice attached."},
		htmlHas:    `<p class="MsoNormal">`,
	},
	{
		file:       "applemail_reply.eml",
		subject:    "Re: Your parcel is on its way",
		from:       Address{"Tom Baker", "tom.baker@icloud.example"},
		messageID:  "<5E2A1C3B-8D7F-4E6A-B9C0-1D2E3F4A5B6C@icloud.example>",
		inReplyTo:  "<ship-5531@shop.example>",
		references: []string{"<ship-5531@shop.example>"},
		date:       "2024-06-03T19:30:02+01:00",
		text:       "The parcel arrived damaged, the screen is cracked. I will send photos later.",
		fullHas:    []string{"Sent from my iPhone", "> On 3 Jun 2024, at 10:00, Shop Support <support@shop.example> wrote:"},
		htmlHas:    `<blockquote type="cite">`,
	},
	{
		file:      "thunderbird_flowed.eml",
		inReplyTo: "<order-6610@shop.example>",
		subject:   "Re: Order 6610 confirmed",
		from:      Address{"Anna Schmidt", "anna.schmidt@posteo.example"},
		language:  "de-DE",
		// format=flowed soft breaks joined: the sentence is one line again.
		text:    "Hello,\n\nI would like to change the delivery address for my order 6610 to the office address below, because nobody is at home during the day. Is that still possible?\n\nMusterstraße 5\n10115 Berlin\n\nBest,\nAnna",
		fullHas: []string{"On 03.06.24 10:00, Shop Support wrote:\n> Thank you for your order. It will ship within two days. We will send you the tracking number."},
	},
	{
		file:       "gbk_chinese.eml",
		subject:    "回复：我的充值没有到账",
		from:       Address{"张三", "zhangsan@qq.example"},
		to:         []Address{{"客服中心", "support@shop.example"}},
		inReplyTo:  "<topup-20240603001@shop.example>",
		references: []string{"<topup-20240603001@shop.example>"},
		date:       "2024-06-04T10:21:15+08:00",
		text:       "您好，\n\n我的充值没有到账，订单号 20240603001，金额 100 元。请尽快处理。\n\n谢谢！\n张三",
		fullHas:    []string{"------------------ 原始邮件 ------------------\n发件人: \"客服中心\"<support@shop.example>;", "您好，充值一般在10分钟内到账。"},
		htmlHas:    "我的充值没有到账",
	},
	{
		file:      "gb2312.eml",
		inReplyTo: "<ticket-3391@shop.example>",
		subject:   "Re:耳机退换",
		// 喆 is outside GB2312: the GBK superset must be used for the label.
		from:    Address{"王喆", "wangzhe@163.example"},
		date:    "2024-06-04T11:02:33+08:00",
		text:    "你好，\n\n我上周买的耳机坏了，左边没有声音，能换一个吗？\n\n王喆",
		fullHas: []string{"在 2024-06-03 10:00:00，\"客服\" <support@shop.example> 写道：\n>您好，请问有什么可以帮您？"},
	},
	{
		file:     "big5.eml",
		subject:  "RE: 訂單查詢",
		from:     Address{"陳小姐", "chen@hinet.example"},
		language: "zh-tw",
		text:     "您好，\n\n我的訂單還沒有收到，請幫我查詢一下。訂單編號：TW-88123。\n\n陳小姐",
		fullHas:  []string{"寄件者: 客服中心 <support@shop.example>\n寄件日期: 2024年6月3日 上午 10:00", "感謝您的訂購。"},
	},
	{
		file:    "iso2022jp.eml",
		subject: "注文のキャンセルについて",
		from:    Address{"山田太郎", "taro.yamada@example.jp"},
		text:    "お世話になっております。\n注文番号 JP-5512 をキャンセルしたいです。\nよろしくお願いいたします。\n\n山田太郎",
		fullHas: []string{"2024年6月3日(月) 10:00 Shop Support <support@shop.example>:\n> ご注文ありがとうございます。"},
	},
	{
		file:    "foxmail_reply.eml",
		subject: "回复：积分说明",
		from:    Address{"周七", "zhouqi@foxmail.example"},
		to:      []Address{{"support", "support@shop.example"}},
		text:    "客服你好，\n\n会员卡的积分没有更新，已经三天了。\n\n周七",
		fullHas: []string{"Original\u00a0------------------\n发件人：客服中心 <support@shop.example>\n发送时间：2024年6月3日 10:00"},
	},
	{
		file:    "html_only.eml",
		subject: "Login problem",
		from:    Address{"Lena Novak", "lena@novak.example"},
		text: "Hello,\n\nI cannot log in to my account since the update.\nI tried the following:\n\n" +
			"- resetting my password\n- clearing the browser cache\n\n" +
			"The error page is this one (https://app.shop.example/login?err=42), see also https://status.shop.example.\n\nRegards,\nLena",
		fullHas: []string{"On 3 Jun 2024 10:00, Shop Support wrote:\n\n> Please describe the problem."},
		htmlHas: "<title>Support request</title>",
	},
	{
		file:    "multipart_attachments.eml",
		opt:     Options{MaxAttachmentSize: 100},
		subject: "发票有问题",
		from:    Address{"Wei Liu", "liu.wei@example.cn"},
		text:    "发票金额不对，截图和发票见附件。",
		atts: []wantAttachment{
			{name: "2024年6月发票.pdf", contentType: "application/pdf", size: 218, dropped: true},
			{name: "截图.png", contentType: "image/png", size: 70},
			{name: "part-4.bin", contentType: "application/octet-stream", size: 10},
		},
	},
	{
		file:      "auto_reply.eml",
		inReplyTo: "<order-1203@shop.example>",
		subject:   "Out of office: Re: Your order 1203",
		from:      Address{"Karl Berg", "karl.berg@berg.example"},
		text:      "I am out of the office until 10 June. For urgent matters please contact\noffice@berg.example.\n\nKarl Berg",
		auto:      message.AutoReply,
		reason:    "Auto-Submitted: auto-replied (vacation)",
	},
	{
		file:      "exchange_ooo.eml",
		subject:   "Automatic reply: Your order 7781 has shipped",
		from:      Address{"Peter Müller", "peter.mueller@fabrikam.example"},
		inReplyTo: "<order-7781-shipped@shop.example>",
		text:      "Ich bin bis 14.06. nicht im Büro. In dringenden Fällen wenden Sie sich bitte an einkauf@fabrikam.example.\n\nI am out of the office until 14 June. For urgent matters please contact einkauf@fabrikam.example.",
		htmlHas:   "nicht im Büro",
		auto:      message.AutoReply,
		reason:    "Auto-Submitted: auto-generated",
	},
	{
		// Exchange on premises without Auto-Submitted: the inbox-rule loop
		// header together with the subject decides.
		file:      "exchange_ooo_rules_loop.eml",
		inReplyTo: "<order-7781-shipped@shop.example>",
		subject:   "Automatic reply: Your order 7781 has shipped",
		from:      Address{"Peter Müller", "peter.mueller@fabrikam.example"},
		text:      "Ich bin bis 14.06. nicht im Büro. In dringenden Fällen wenden Sie sich bitte an einkauf@fabrikam.example.\n\nI am out of the office until 14 June. For urgent matters please contact einkauf@fabrikam.example.",
		auto:      message.AutoReply,
		reason:    `Subject "Automatic reply: Your order 7781 has shipped" with X-MS-Exchange-Inbox-Rules-Loop`,
	},
	{
		file:      "bounce.eml",
		subject:   "Undelivered Mail Returned to Sender",
		from:      Address{"Mail Delivery System", "mailer-daemon@mx.shop.example"},
		messageID: "<20240603080002.8C1E2A0F1B@mx.shop.example>",
		date:      "2024-06-03T08:00:02Z",
		fullHas:   []string{"Recipient address rejected: User unknown"},
		auto:      message.Bounce,
		reason:    "Content-Type: multipart/report; report-type=delivery-status",
		bounce: &Bounce{
			OriginalMessageID: "<reply-991-abc123@shop.example>",
			Recipient:         "nobody@customer.example",
			Action:            "failed",
			Status:            "5.1.1",
			Diagnostic:        "smtp; 550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown in virtual mailbox table",
		},
	},
	{
		file:    "qmail_bounce.eml",
		subject: "failure notice",
		from:    Address{"", "mailer-daemon@mail.oldhost.example"},
		fullHas: []string{"Sorry, no mailbox here by that name."},
		auto:    message.Bounce,
		reason:  "From mailer-daemon@mail.oldhost.example with a delivery failure text",
		bounce: &Bounce{
			OriginalMessageID: "<ticket-5120-reply@shop.example>",
			Recipient:         "gone@oldhost.example",
			Action:            "failed",
			Status:            "5.1.1",
		},
	},
	{
		file:    "newsletter_bulk.eml",
		subject: "This week's deals",
		from:    Address{"Deals Weekly", "news@deals.example"},
		text:    "Big savings this week.",
		auto:    message.Bulk,
		reason:  "Precedence: bulk",
	},
	{
		// Unencoded GBK in Subject and From, as old Chinese clients send:
		// read in the charset the body declares.
		file:    "raw8bit_headers.eml",
		subject: "退款申请",
		from:    Address{"赵六", "zhaoliu@sina.example"},
		text:    "请给我退款，谢谢。",
	},
	{
		file:    "broken_multipart.eml",
		subject: "broken",
		from:    Address{"", "broken@example.org"},
		text:    "The printer is on fire.",
		atts:    []wantAttachment{{name: "report.pdf", contentType: "application/pdf", size: 27}},
		problems: []string{
			`unknown charset "x-klingon"`,
			`attachment "report.pdf": unexpected EOF`,
			"broken multipart/mixed",
		},
	},
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(strings.TrimSuffix(f.file, ".eml"), func(t *testing.T) {
			m, err := Parse(readFixture(t, f.file), f.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, m, f.opt)
			eq := func(field string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", field, got, want)
				}
			}
			eq("Subject", m.Subject, f.subject)
			eq("From", m.From, f.from)
			if f.to != nil {
				eq("To", m.To, f.to)
			}
			if f.cc != nil {
				eq("Cc", m.Cc, f.cc)
			}
			if f.messageID != "" {
				eq("MessageID", m.MessageID, f.messageID)
			}
			eq("InReplyTo", m.InReplyTo, f.inReplyTo)
			if f.references != nil {
				eq("References", m.References, f.references)
			}
			if f.date != "" {
				want, _ := time.Parse(time.RFC3339, f.date)
				if !m.Date.Equal(want) {
					t.Errorf("Date = %v, want %v", m.Date, want)
				}
			}
			eq("Language", m.Language, f.language)
			if f.text != "" || f.auto != message.Bounce {
				eq("Text", m.Text, f.text)
			}
			if m.FullText == "" && f.text != "" {
				t.Error("FullText is empty")
			}
			for _, s := range f.fullHas {
				if !strings.Contains(m.FullText, s) {
					t.Errorf("FullText lacks %q:\n%s", s, m.FullText)
				}
			}
			if f.htmlHas != "" && !strings.Contains(m.HTML, f.htmlHas) {
				t.Errorf("HTML lacks %q", f.htmlHas)
			}
			eq("Automatic", m.Automatic, f.auto)
			eq("AutoReason", m.AutoReason, f.reason)
			eq("Bounce", m.Bounce, f.bounce)

			var atts []wantAttachment
			for _, a := range m.Attachments {
				atts = append(atts, wantAttachment{a.Name, a.ContentType, a.Size, a.Dropped != "", a.Inline})
			}
			eq("Attachments", atts, f.atts)

			if len(m.Problems) != len(f.problems) {
				t.Errorf("Problems = %q, want %d matching %q", m.Problems, len(f.problems), f.problems)
			} else {
				for i, p := range f.problems {
					if !strings.Contains(m.Problems[i], p) {
						t.Errorf("Problems[%d] = %q, want it to contain %q", i, m.Problems[i], p)
					}
				}
			}
		})
	}
}

func TestParseAttachmentData(t *testing.T) {
	m, err := Parse(readFixture(t, "multipart_attachments.eml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attachments) != 3 {
		t.Fatalf("got %d attachments", len(m.Attachments))
	}
	pdf, png := m.Attachments[0], m.Attachments[1]
	if !strings.HasPrefix(string(pdf.Data), "%PDF-1.4") || int64(len(pdf.Data)) != pdf.Size || pdf.Dropped != "" {
		t.Errorf("pdf = %q (%d bytes, dropped %q)", pdf.Data[:min(len(pdf.Data), 10)], pdf.Size, pdf.Dropped)
	}
	if !strings.HasPrefix(string(png.Data), "\x89PNG\r\n\x1a\n") || png.Size != 70 {
		t.Errorf("png = %q (%d bytes)", png.Data[:min(len(png.Data), 8)], png.Size)
	}

	m, _ = Parse(readFixture(t, "multipart_attachments.eml"), Options{MaxAttachmentSize: 100})
	if a := m.Attachments[0]; a.Data != nil || a.Dropped != "larger than 100 bytes" || a.Size != 218 {
		t.Errorf("dropped pdf = %d bytes of data, Dropped %q, Size %d", len(a.Data), a.Dropped, a.Size)
	}

	m, _ = Parse(readFixture(t, "multipart_attachments.eml"), Options{MaxAttachments: 1})
	if len(m.Attachments) != 1 || len(m.Problems) != 1 || m.Problems[0] != "2 attachments left out: more than 1" {
		t.Errorf("MaxAttachments 1: %d attachments, problems %q", len(m.Attachments), m.Problems)
	}
}

func TestParseUnusable(t *testing.T) {
	for name, raw := range map[string][]byte{
		"malformed.eml":        readFixture(t, "malformed.eml"),
		"malformed_header.eml": readFixture(t, "malformed_header.eml"),
		"empty":                nil,
		"body only":            []byte("\r\nno header at all\r\n"),
		"null return path":     []byte("Return-Path: <>\r\nSubject: x\r\n\r\nbody\r\n"),
		"from not an address":  []byte("From: nobody\r\nSubject: x\r\n\r\nbody\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(raw, Options{})
			if !errors.Is(err, ErrUnusable) || m != nil {
				t.Fatalf("Parse = %v, %v; want ErrUnusable", m, err)
			}
			if _, err := ParseHeader(raw); !errors.Is(err, ErrUnusable) {
				t.Fatalf("ParseHeader error = %v; want ErrUnusable", err)
			}
		})
	}
}

func TestParseFromFallback(t *testing.T) {
	for _, tc := range []struct {
		header, want, problem string
	}{
		{"Sender: Desk <desk@x.example>\r\n", "desk@x.example", "no usable From address: used Sender"},
		{"From: garbage\r\nReply-To: r@x.example\r\n", "r@x.example", "no usable From address: used Reply-To"},
		{"Return-Path: <bounce@x.example>\r\n", "bounce@x.example", "no usable From address: used Return-Path"},
		{"From: Broken <a@b.example\r\n", "a@b.example", ""},
		{"From: =?x-unknown-cs?B?AAAA?= <a@b.example>\r\n", "a@b.example", ""},
		{"From: \"unterminated <a@b.example>\r\n", "a@b.example", ""},
		{"From: a@b.example, c@d.example\r\nSender: c@d.example\r\n", "a@b.example", ""},
	} {
		m, err := Parse([]byte(tc.header+"Subject: s\r\n\r\nhello\r\n"), Options{})
		if err != nil {
			t.Errorf("%q: %v", tc.header, err)
			continue
		}
		if m.From.Address != tc.want {
			t.Errorf("%q: From = %+v, want %s", tc.header, m.From, tc.want)
		}
		if tc.problem != "" && !containsString(m.Problems, tc.problem) {
			t.Errorf("%q: Problems = %q, want %q", tc.header, m.Problems, tc.problem)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

func TestParseHeader(t *testing.T) {
	raw := readFixture(t, "gmail_reply.eml")
	head := raw[:strings.Index(string(raw), "\r\n\r\n")+2]
	m, err := ParseHeader(head)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := Parse(raw, Options{})
	if m.Subject != full.Subject || m.From != full.From || m.MessageID != full.MessageID || m.InReplyTo != full.InReplyTo ||
		!reflect.DeepEqual(m.References, full.References) || !m.Date.Equal(full.Date) || !reflect.DeepEqual(m.To, full.To) {
		t.Errorf("ParseHeader = %+v\nParse = %+v", m, full)
	}
	if m.Text != "" || m.FullText != "" || m.HTML != "" || m.Attachments != nil {
		t.Errorf("ParseHeader filled the body: %+v", m)
	}

	// A whole mail is fine too: the body is ignored.
	if m2, err := ParseHeader(raw); err != nil || m2.FullText != "" || m2.Subject != full.Subject {
		t.Errorf("ParseHeader(whole mail) = %+v, %v", m2, err)
	}

	// A DSN is known from its Content-Type alone; the bounce fields that
	// live in headers are filled.
	b, err := ParseHeader([]byte("From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"In-Reply-To: <ours-1@shop.example>\r\nX-Failed-Recipients: gone@x.example\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Bounce{OriginalMessageID: "<ours-1@shop.example>", Recipient: "gone@x.example"}
	if b.Automatic != message.Bounce || !reflect.DeepEqual(b.Bounce, want) {
		t.Errorf("ParseHeader(DSN) = %q %+v, want bounce %+v", b.Automatic, b.Bounce, want)
	}
}

func TestAutomatic(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         message.Automatic
		reason       string
	}{
		{"person", "Subject: Question", "", ""},
		{"auto-submitted no", "Auto-Submitted: no\r\nSubject: Question", "", ""},
		{"auto-replied", "Auto-Submitted: auto-replied\r\nSubject: Re: x", message.AutoReply, "Auto-Submitted: auto-replied"},
		{"auto-generated", "Auto-Submitted: Auto-Generated; owner-email=\"x@y\"\r\nSubject: x", message.AutoReply, "Auto-Submitted: auto-generated"},
		{"auto-generated list", "Auto-Submitted: auto-generated\r\nList-Id: <news.example>\r\nSubject: x", message.Bulk, "Auto-Submitted: auto-generated with List-Id"},
		{"x-autoreply", "X-Autoreply: yes\r\nSubject: x", message.AutoReply, "X-Autoreply: yes"},
		{"x-autorespond", "X-Autorespond: Vacation\r\nSubject: x", message.AutoReply, "X-Autorespond: Vacation"},
		{"x-autoreply-from", "X-Autoreply-From: a@b.example\r\nSubject: x", message.AutoReply, "X-Autoreply-From: a@b.example"},
		{"x-autogenerated reply", "X-Autogenerated: Reply\r\nSubject: x", message.AutoReply, "X-Autogenerated: Reply"},
		{"x-autogenerated forward", "X-Autogenerated: Forward\r\nSubject: x", "", ""},
		{"precedence auto_reply", "Precedence: auto_reply\r\nSubject: x", message.AutoReply, "Precedence: auto_reply"},
		{"precedence list", "Precedence: list\r\nSubject: x", message.Bulk, "Precedence: list"},
		{"precedence junk", "Precedence: junk\r\nSubject: x", message.Bulk, "Precedence: junk"},
		{"suppress alone", "X-Auto-Response-Suppress: All\r\nSubject: Question about my order", "", ""},
		{"subject alone", "Subject: Automatic reply: Your order", "", ""},
		{"subject alone zh", "Subject: =?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDorqLljZU=?=", "", ""},
		{"subject and suppress", "X-Auto-Response-Suppress: All\r\nSubject: Automatic reply: Your order", message.AutoReply, `Subject "Automatic reply: Your order" with X-Auto-Response-Suppress`},
		{"subject zh and null sender", "Return-Path: <>\r\nSubject: =?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDorqLljZU=?=", message.AutoReply, `Subject "自动回复: 订单" with Return-Path: <>`},
		{"failed recipients", "X-Failed-Recipients: x@y.example\r\nSubject: Mail delivery failed", message.Bounce, "X-Failed-Recipients: x@y.example"},
		{"bounce subject auto", "Auto-Submitted: auto-replied\r\nSubject: Undeliverable: Your order", message.Bounce, `Subject "Undeliverable: Your order" with Auto-Submitted: auto-replied`},
		{"read receipt", "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\nSubject: Read: x", message.AutoReply, "read receipt (message/disposition-notification)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "From: A <a@customer.example>\r\n" + tc.header + "\r\n\r\nhello\r\n"
			for _, parse := range []func() (*Mail, error){
				func() (*Mail, error) { return Parse([]byte(raw), Options{}) },
				func() (*Mail, error) { return ParseHeader([]byte(raw)) },
			} {
				m, err := parse()
				if err != nil {
					t.Fatal(err)
				}
				if m.Automatic != tc.want || m.AutoReason != tc.reason {
					t.Errorf("got %q %q, want %q %q", m.Automatic, m.AutoReason, tc.want, tc.reason)
				}
			}
		})
	}
}

func TestDecodeHeaderText(t *testing.T) {
	for _, tc := range []struct{ in, fallback, want string }{
		{"plain", "", "plain"},
		{"=?UTF-8?Q?caf=C3=A9_au_lait?=", "", "café au lait"},
		{"=?utf-8?b?5L2g5aW9?= =?utf-8?b?5LiW55WM?=", "", "你好世界"},
		// One GBK character split over two words ("我" is CE D2).
		{"=?GBK?B?zg==?= =?GBK?B?0g==?=", "", "我"},
		{"=?gb2312?B?xOO6ww==?=", "", "你好"},
		{"=?big5?B?pECmuA==?=", "", "一次"},
		{"=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "", "日本語"},
		{"=?iso-8859-1?Q?Ren=E9?= Dupont", "", "René Dupont"},
		{"=?windows-1252?Q?=93quoted=94?=", "", "\u201cquoted\u201d"},
		{"Re: =?UTF-8?Q?na=C3=AFve?= text", "", "Re: naïve text"},
		{"=?utf-8?q?no_space?=after", "", "no spaceafter"},
		{"=?x-bogus?B?aGVsbG8=?=", "", "hello"},
		{"\xd5\xc5\xc8\xfd", "gbk", "张三"},
		{"\xd5\xc5\xc8\xfd", "", "\ufffd"},
		{"tab\there\x00", "", "tab here"},
		{"=?utf-8?B?broken?", "", "=?utf-8?B?broken?"},
	} {
		if got := decodeHeaderText(tc.in, tc.fallback); got != tc.want {
			t.Errorf("decodeHeaderText(%q, %q) = %q, want %q", tc.in, tc.fallback, got, tc.want)
		}
	}
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in, value string
		params    map[string]string
	}{
		{`text/plain; charset="utf-8"; format=flowed`, "text/plain", map[string]string{"charset": "utf-8", "format": "flowed"}},
		{`Text/HTML; Charset=GBK; charset=utf-8`, "text/html", map[string]string{"charset": "GBK"}},
		{`multipart/mixed; boundary="----=_Part_1;x"`, "multipart/mixed", map[string]string{"boundary": "----=_Part_1;x"}},
		{`multipart/alternative; boundary=----=_NextPart_000`, "multipart/alternative", map[string]string{"boundary": "----=_NextPart_000"}},
		{`attachment; filename*=UTF-8''%E5%8F%91%E7%A5%A8.pdf`, "attachment", map[string]string{"filename": "发票.pdf"}},
		// Go's mime package drops RFC 2231 values in charsets other than UTF-8.
		{`attachment; filename*=gbk''%B7%A2%C6%B1.pdf`, "attachment", map[string]string{"filename": "发票.pdf"}},
		{`attachment; filename*0*=utf-8'zh'%E5%8F; filename*1*=%91%E7%A5%A8; filename*2=".pdf"`, "attachment", map[string]string{"filename": "发票.pdf"}},
		{`attachment; filename="plain.pdf"; filename*=UTF-8''better.pdf`, "attachment", map[string]string{"filename": "better.pdf"}},
		{`attachment; filename="a \"quoted\" name.txt"`, "attachment", map[string]string{"filename": `a "quoted" name.txt`}},
		{`inline; filename=unquoted name.png`, "inline", map[string]string{"filename": "unquoted name.png"}},
		{``, "", map[string]string{}},
	} {
		v, p := parseParams(tc.in)
		if v != tc.value || !reflect.DeepEqual(p, tc.params) {
			t.Errorf("parseParams(%q) = %q %q, want %q %q", tc.in, v, p, tc.value, tc.params)
		}
	}
}

// TestCharsetLabels checks the labels Chinese, Taiwanese and Japanese mail
// uses, through go-message's table as other packages reach it too.
func TestCharsetLabels(t *testing.T) {
	for _, tc := range []struct {
		labels []string
		in     string
		want   string
	}{
		{[]string{"gb2312", "GB2312", "gbk", "GBK", "x-gbk", "cp936", "windows-936", "gb18030", "euc-cn"}, "\xce\xd2\xb5\xc4\xb3\xe4\xd6\xb5", "我的充值"},
		// 喆 (86 B4) is GBK, not GB2312; mail labelled gb2312 carries it.
		{[]string{"gb2312", "gbk", "gb18030"}, "\xcd\xf5\x86\xb4", "王喆"},
		// A GB18030 four-byte sequence (U+20000) under the GBK label.
		{[]string{"gbk", "gb18030"}, "\x95\x32\x82\x36", "\U00020000"},
		{[]string{"big5", "Big5", "big5-hkscs", "cp950"}, "\xad\x71\xb3\xe6", "訂單"},
		{[]string{"iso-2022-jp", "ISO-2022-JP"}, "\x1b$BCmJ8\x1b(B", "注文"},
		{[]string{"shift_jis", "sjis", "cp932"}, "\x92\x8d\x95\xb6", "注文"},
		{[]string{"iso-8859-1", "latin1"}, "caf\xe9 \x93ok\x94", "café \u201cok\u201d"},
		{[]string{"us-ascii", "utf-8", ""}, "na\xc3\xafve", "naïve"},
	} {
		for _, label := range tc.labels {
			got, problem := decodeCharset([]byte(tc.in), label)
			if got != tc.want || problem != "" {
				t.Errorf("decodeCharset(%q) = %q (%q), want %q", label, got, problem, tc.want)
			}
		}
	}
	if got, problem := decodeCharset([]byte("ok \xff"), "x-klingon"); got != "ok \ufffd" || !strings.Contains(problem, "unknown charset") {
		t.Errorf("unknown charset: %q %q", got, problem)
	}
	if got, problem := decodeCharset([]byte("bad \xff"), "utf-8"); got != "bad \ufffd" || problem == "" {
		t.Errorf("invalid UTF-8: %q %q", got, problem)
	}
}

func TestParseTextShape(t *testing.T) {
	t.Run("CRLF, NUL and BOM", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xef\xbb\xbfline one\x00\r\nline two\rline three\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "line one\nline two\nline three" || m.Text != m.FullText {
			t.Errorf("FullText = %q, Text = %q", m.FullText, m.Text)
		}
	})
	t.Run("truncation", func(t *testing.T) {
		body := strings.Repeat("数据", message.MaxTextBytes) // 3 bytes a character: the cut falls inside one
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+body), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Text) > message.MaxTextBytes || len(m.FullText) > message.MaxTextBytes || !utf8.ValidString(m.FullText) || len(m.FullText) < message.MaxTextBytes-3 {
			t.Errorf("Text %d bytes, FullText %d bytes", len(m.Text), len(m.FullText))
		}
		if !containsString(m.Problems, "text longer than 256 KiB: cut") || !containsString(m.Problems, "part longer than 1 MiB") {
			t.Errorf("Problems = %q", m.Problems)
		}
	})
	t.Run("html truncation", func(t *testing.T) {
		body := "<p>" + strings.Repeat("x", message.MaxHTMLBytes) + "</p>"
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: text/html\r\n\r\n"+body), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.HTML) != message.MaxHTMLBytes || !containsString(m.Problems, "html longer than 1 MiB: cut") {
			t.Errorf("HTML %d bytes, Problems %q", len(m.HTML), m.Problems)
		}
	})
	t.Run("references keep the last 100", func(t *testing.T) {
		var refs []string
		for i := range 130 {
			refs = append(refs, fmt.Sprintf("<r%d@x.example>", i))
		}
		m, err := Parse([]byte("From: a@b.example\r\nReferences: "+strings.Join(refs, "\r\n ")+"\r\n\r\nhi"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.References) != 100 || m.References[0] != "<r30@x.example>" || m.References[99] != "<r129@x.example>" {
			t.Errorf("References = %d, first %q", len(m.References), m.References[0])
		}
	})
	t.Run("text parts of mixed are joined", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\nbefore the picture\r\n"+
			"--b\r\nContent-Type: image/jpeg\r\nContent-Id: <img1@x>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\nafter the picture\r\n--b--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "before the picture\nafter the picture" {
			t.Errorf("FullText = %q", m.FullText)
		}
		want := []Attachment{{Name: "part-2.jpg", ContentType: "image/jpeg", Size: 6, Data: []byte("\xff\xd8\xff\xe0\x00\x10"), Inline: true, ContentID: "img1@x"}}
		if !reflect.DeepEqual(m.Attachments, want) {
			t.Errorf("Attachments = %+v", m.Attachments)
		}
	})
	t.Run("related html with inline image, blank plain alternative", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"+
			"--a\r\nContent-Type: text/plain\r\n\r\n \r\n"+
			"--a\r\nContent-Type: multipart/related; boundary=r\r\n\r\n"+
			"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See <img src=\"cid:logo\" alt=\"the logo\"></p>\r\n"+
			"--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n\r\nPNG\r\n--r--\r\n--a--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "See the logo" || len(m.Attachments) != 1 || !m.Attachments[0].Inline || m.Attachments[0].ContentID != "logo" {
			t.Errorf("FullText %q, attachments %+v", m.FullText, m.Attachments)
		}
	})
	t.Run("forwarded mail attached", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\nsee the attached mail\r\n"+
			"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: =?UTF-8?B?6K6i5Y2VLzEyMw==?=\r\n\r\nold\r\n--b--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Attachments) != 1 || m.Attachments[0].Name != "订单_123.eml" || m.Attachments[0].ContentType != "message/rfc822" {
			t.Errorf("Attachments = %+v", m.Attachments)
		}
	})
	t.Run("missing boundary parameter", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/alternative\r\n\r\n"+
			"--xyz\r\nContent-Type: text/plain\r\n\r\nstill readable\r\n--xyz--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "still readable" || !containsString(m.Problems, "boundary taken from the body") {
			t.Errorf("FullText %q, Problems %q", m.FullText, m.Problems)
		}
	})
	t.Run("undisclosed recipients are not a problem", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nTo: undisclosed-recipients:;\r\n\r\nhi"), Options{})
		if err != nil || m.To != nil || m.Problems != nil {
			t.Errorf("To %+v, Problems %q, err %v", m.To, m.Problems, err)
		}
	})
	t.Run("part without charset read as the charset named elsewhere", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\n\xc4\xe3\xba\xc3\r\n"+
			"--b\r\nContent-Type: text/html; charset=gb2312\r\n\r\n<p>\xc4\xe3\xba\xc3</p>\r\n--b--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "你好" || m.HTML != "<p>你好</p>" || !containsString(m.Problems, "text/plain part without charset read as gb2312") {
			t.Errorf("FullText %q, HTML %q, Problems %q", m.FullText, m.HTML, m.Problems)
		}
	})
	t.Run("html charset from meta", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: text/html\r\n\r\n"+
			"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=big5\"></head><body>\xad\x71\xb3\xe6</body></html>"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "訂單" || m.Problems != nil {
			t.Errorf("FullText %q, Problems %q", m.FullText, m.Problems)
		}
	})
	t.Run("no blank line after the header", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nSubject: help\r\nHello, my order did not arrive.\r\nCan you check?\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "help" || m.FullText != "Hello, my order did not arrive.\nCan you check?" || len(m.Problems) != 1 {
			t.Errorf("Subject %q, FullText %q, Problems %q", m.Subject, m.FullText, m.Problems)
		}
	})
	t.Run("garbage before the header", func(t *testing.T) {
		m, err := Parse([]byte(" stray\r\n\x01junk\r\nFrom: a@b.example\r\n\r\nbody"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.From.Address != "a@b.example" || m.FullText != "body" || !containsString(m.Problems, "2 malformed lines before the first header field dropped") {
			t.Errorf("From %q, FullText %q, Problems %q", m.From, m.FullText, m.Problems)
		}
	})
	t.Run("bad quoted-printable and base64 are salvaged", func(t *testing.T) {
		m, err := Parse([]byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =ZZ \x0c=\r\nend\r\n"+
			"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y bGQ\r\n--b--\r\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.FullText != "café =ZZ \fend\nhello world" {
			t.Errorf("FullText = %q (problems %q)", m.FullText, m.Problems)
		}
	})
}

// checkInvariants holds for every mail Parse accepts: what message.Validate
// and the store need.
func checkInvariants(t testing.TB, m *Mail, opt Options) {
	t.Helper()
	texts := map[string]string{
		"Text": m.Text, "FullText": m.FullText, "HTML": m.HTML, "Subject": m.Subject, "From.Name": m.From.Name,
		"From.Address": m.From.Address, "MessageID": m.MessageID, "InReplyTo": m.InReplyTo, "Language": m.Language,
		"AutoReason": m.AutoReason,
	}
	for i, r := range m.References {
		texts[fmt.Sprintf("References[%d]", i)] = r
	}
	for i, a := range m.Attachments {
		texts[fmt.Sprintf("Attachments[%d].Name", i)] = a.Name
		texts[fmt.Sprintf("Attachments[%d].ContentID", i)] = a.ContentID
		if a.Dropped != "" && a.Data != nil {
			t.Errorf("attachment %q dropped but has data", a.Name)
		}
		if a.Dropped == "" && int64(len(a.Data)) != a.Size {
			t.Errorf("attachment %q: size %d, %d bytes of data", a.Name, a.Size, len(a.Data))
		}
		if a.Size < 0 || a.Name == "" || a.ContentType == "" {
			t.Errorf("attachment %+v", a)
		}
		if opt.MaxAttachmentSize > 0 && int64(len(a.Data)) > opt.MaxAttachmentSize {
			t.Errorf("attachment %q keeps %d bytes", a.Name, len(a.Data))
		}
	}
	for i, p := range m.Problems {
		texts[fmt.Sprintf("Problems[%d]", i)] = p
	}
	if m.Bounce != nil {
		texts["Bounce"] = fmt.Sprint(*m.Bounce)
	}
	for k, v := range texts {
		if !utf8.ValidString(v) {
			t.Errorf("%s is not valid UTF-8: %q", k, v)
		}
		if k != "HTML" && strings.IndexByte(v, 0) >= 0 {
			t.Errorf("%s contains NUL: %q", k, v)
		}
	}
	if strings.IndexByte(m.HTML, 0) >= 0 {
		t.Errorf("HTML contains NUL")
	}
	if strings.Contains(m.Text, "\r") || strings.Contains(m.FullText, "\r") {
		t.Errorf("CR left in text")
	}
	for k, v := range map[string]string{"Subject": m.Subject, "From.Name": m.From.Name, "From.Address": m.From.Address,
		"MessageID": m.MessageID, "InReplyTo": m.InReplyTo, "Language": m.Language} {
		if len(v) > maxShort {
			t.Errorf("%s is %d bytes", k, len(v))
		}
	}
	if m.From.Address == "" || !strings.Contains(m.From.Address, "@") {
		t.Errorf("From = %+v", m.From)
	}
	if len(m.Text) > message.MaxTextBytes || len(m.FullText) > message.MaxTextBytes || len(m.HTML) > message.MaxHTMLBytes {
		t.Errorf("text %d, full text %d, html %d bytes", len(m.Text), len(m.FullText), len(m.HTML))
	}
	maxAtt := opt.MaxAttachments
	if maxAtt <= 0 {
		maxAtt = message.MaxAttachments
	}
	if len(m.Attachments) > maxAtt || len(m.References) > maxRefs || len(m.Problems) > maxProblems+1 {
		t.Errorf("%d attachments, %d references, %d problems", len(m.Attachments), len(m.References), len(m.Problems))
	}
	if !m.Automatic.Valid() || (m.Automatic == message.Bounce) != (m.Bounce != nil) {
		t.Errorf("Automatic %q, Bounce %v", m.Automatic, m.Bounce)
	}
	if strings.TrimSpace(m.FullText) != "" && m.Text == "" {
		t.Errorf("Text empty while FullText is %q", m.FullText)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"gmail_reply.eml", "outlook_reply.eml", "gbk_chinese.eml", "multipart_attachments.eml"} {
		raw := readFixture(b, name)
		b.Run(strings.TrimSuffix(name, ".eml"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Parse(raw, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The baseline: go-message alone, reading the subject and every
		// part's decoded body, which any parser of this mail must do.
		b.Run("go-message/"+strings.TrimSuffix(name, ".eml"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				r, err := mail.CreateReader(bytes.NewReader(raw))
				if err != nil && !gomessage.IsUnknownCharset(err) {
					b.Fatal(err)
				}
				_, _ = r.Header.Subject()
				for {
					p, err := r.NextPart()
					if err != nil {
						break
					}
					_, _ = io.Copy(io.Discard, p.Body)
				}
			}
		})
	}
}
