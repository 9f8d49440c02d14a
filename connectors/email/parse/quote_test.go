package parse

import "testing"

func TestStripQuoted(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"blank", " \n\t\n", ""},
		{"no quote", "Where is my parcel?\n", "Where is my parcel?"},
		{
			"gmail one line",
			"Still waiting.\n\nOn Mon, 3 Jun 2024 at 10:00, Shop Support <support@shop.example> wrote:\n> We shipped it.\n",
			"Still waiting.",
		},
		{
			"gmail wrapped over two lines",
			"Still waiting.\n\nOn Mon, Jun 3, 2024 at 10:00 AM Shop Support <\nsupport@shop.example> wrote:\n\n> We shipped it.\n",
			"Still waiting.",
		},
		{
			"gmail attribution without quote marks (HTML made text)",
			"Still waiting.\n\nOn Mon, 3 Jun 2024 at 10:00, Shop Support <support@shop.example> wrote:\nWe shipped it.\n",
			"Still waiting.",
		},
		{
			"apple mail",
			"Thanks!\n\n> On 3 Jun 2024, at 10:00, Shop Support <support@shop.example> wrote:\n> \n> Done.\n",
			"Thanks!",
		},
		{
			"apple mail desktop",
			"Thanks!\n\nOn 3 Jun 2024, at 10:00, Shop Support <support@shop.example> wrote:\n\n> Done.\n",
			"Thanks!",
		},
		{
			"outlook original message",
			"Please cancel.\r\n\r\n-----Original Message-----\r\nFrom: Shop <s@shop.example>\r\nSent: Monday, June 3, 2024 10:00 AM\r\nTo: me\r\nSubject: Order\r\n\r\nYour order.\r\n",
			"Please cancel.",
		},
		{
			"outlook header block after a rule",
			"Please cancel.\n\n________________________________\nFrom: Shop <s@shop.example>\nSent: Monday, June 3, 2024 10:00 AM\nTo: Me <me@x.example>\nSubject: Order\n\nYour order.\n",
			"Please cancel.",
		},
		{
			"outlook plain text with bold stars",
			"Please cancel.\n\n*From:* Shop <s@shop.example>\n*Sent:* Monday, June 3, 2024 10:00 AM\n*To:* Me\n*Subject:* Order\n",
			"Please cancel.",
		},
		{
			"outlook for mac",
			"Please cancel.\n\nFrom: Shop <s@shop.example>\nDate: Monday, 3 June 2024 at 10:00\nTo: Me <me@x.example>\nSubject: Order\n",
			"Please cancel.",
		},
		{
			"german outlook",
			"Bitte stornieren.\n\nVon: Shop <s@shop.example>\nGesendet: Montag, 3. Juni 2024 10:00\nAn: Ich\nBetreff: Bestellung\n",
			"Bitte stornieren.",
		},
		{
			"chinese gmail attribution",
			"还没有到账。\n\n在 2024年6月3日 10:00，张三 <a@b.example> 写道：\n> 已经处理。\n",
			"还没有到账。",
		},
		{
			"chinese gmail attribution without quote marks",
			"还没有到账。\n\n客服 <s@shop.example> 于2024年6月3日周一 10:00写道：\n已经处理。\n",
			"还没有到账。",
		},
		{
			"qq mail original",
			"还没有到账。\n\n------------------ 原始邮件 ------------------\n发件人: \"客服\"<s@shop.example>;\n发送时间: 2024年6月3日(星期一) 上午10:00\n收件人: \"张三\"<a@b.example>;\n主题: 充值\n\n已经处理。\n",
			"还没有到账。",
		},
		{
			"outlook chinese original",
			"还没有到账。\n\n-----原始邮件-----\n发件人: 客服 <s@shop.example>\n发送时间: 2024年6月3日 10:00\n收件人: 张三\n主题: 充值\n",
			"还没有到账。",
		},
		{
			"foxmail block with full-width colons",
			"还没有到账。\n\n发件人：客服 <s@shop.example>\n发送时间：2024年6月3日 10:00\n收件人：张三\n主题：充值\n\n已经处理。\n",
			"还没有到账。",
		},
		{
			"netease separator with no-break spaces",
			"还没有到账。\n\n--------\u00a0原始邮件\u00a0--------\n发件人：客服\n",
			"还没有到账。",
		},
		{
			"traditional chinese outlook",
			"請幫我查詢。\n\n寄件者: 客服 <s@shop.example>\n寄件日期: 2024年6月3日\n收件者: 陳\n主旨: 訂單\n",
			"請幫我查詢。",
		},
		{
			"japanese gmail",
			"キャンセルしたいです。\n\n2024年6月3日(月) 10:00 Shop <s@shop.example>:\n> ありがとうございます。\n",
			"キャンセルしたいです。",
		},
		{
			"german thunderbird",
			"Bitte ändern.\n\nAm 03.06.24 um 10:00 schrieb Shop Support:\n> Ihre Bestellung.\n",
			"Bitte ändern.",
		},
		{
			"dutch without quote marks",
			"Graag wijzigen.\n\nOp 3 jun. 2024 om 10:00 schreef Shop <s@shop.example>:\nUw bestelling.\n",
			"Graag wijzigen.",
		},
		{
			"inline answers between quotes",
			"On Mon, 3 Jun 2024 at 10:00, Shop <s@shop.example> wrote:\n> What is your order number?\n4821\n> And your postcode?\n10115\n",
			"4821\n10115",
		},
		{
			"bottom posting",
			"> What is your order number?\n> Which colour?\n\n4821, the red one.\n",
			"4821, the red one.",
		},
		{
			"signature",
			"Please call me.\n\n-- \nMaria López\n+34 600 000 000\n",
			"Please call me.",
		},
		{
			"signature with trimmed space",
			"Please call me.\n--\nMaria\n",
			"Please call me.",
		},
		{"sent from my iphone", "Yes please.\n\nSent from my iPhone\n", "Yes please."},
		{"get outlook for ios", "Yes please.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n", "Yes please."},
		{"chinese iphone", "好的。\n\n发自我的iPhone\n", "好的。"},
		{"netease mobile", "好的。\n\n发自网易邮箱大师\n", "好的。"},
		{
			"footer and quote",
			"Yes please.\n\nSent from my iPhone\n\nOn 3 Jun 2024, at 10:00, Shop <s@shop.example> wrote:\n\n> Shall we?\n",
			"Yes please.",
		},
		{
			"only quoted text: the whole text is kept",
			"> quoted only\n> nothing new\n",
			"> quoted only\n> nothing new",
		},
		{
			"only a signature: the whole text is kept",
			"-- \nMaria\n",
			"-- \nMaria",
		},
		{
			"booking lines are not a mail header",
			"I booked this trip:\nFrom: Shanghai\nTo: Beijing\nDate: 3 June\nPlease change it.\n",
			"I booked this trip:\nFrom: Shanghai\nTo: Beijing\nDate: 3 June\nPlease change it.",
		},
		{
			"forwarded mail is kept",
			"This confirmation never arrived as a parcel.\n\n---------- Forwarded message ---------\nFrom: Shop <orders@shop.example>\nDate: Mon, 3 Jun 2024 at 10:00\nSubject: Order 4821 shipped\nTo: <me@x.example>\n\nYour order 4821 has shipped.\n",
			"This confirmation never arrived as a parcel.\n\n---------- Forwarded message ---------\nFrom: Shop <orders@shop.example>\nDate: Mon, 3 Jun 2024 at 10:00\nSubject: Order 4821 shipped\nTo: <me@x.example>\n\nYour order 4821 has shipped.",
		},
		{
			"someone wrote in the text is not an attribution",
			"My colleague wrote:\nthe invoice is wrong.\n",
			"My colleague wrote:\nthe invoice is wrong.",
		},
		{"invalid utf-8", "ok \xff\xfe\n", "ok \ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StripQuoted(tc.in); got != tc.want {
				t.Errorf("StripQuoted:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
