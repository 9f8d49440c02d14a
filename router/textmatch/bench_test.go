package textmatch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// benchMessage is a realistic customer message: simplified Chinese with
// a traditional word, full-width punctuation, English phrases and an
// order number, 200 characters long (checked in TestBenchMessage).
const benchMessage = "您好，我昨天晚上用招商銀行卡给钱包充值了500元，但是APP一直显示Top-Up Failed，页面提示payment declined，" +
	"可是钱已经被扣了，钱包余额一直没有变化。我试了三次都是一样的结果啊，请问refund要多久才能到账？我的账户是不是被冻结了？" +
	"订单号TXN20240315001，麻烦客服尽快帮我查一下并处理，非常感谢！Also my card was charged twice."

func TestBenchMessage(t *testing.T) {
	if n := utf8.RuneCountInString(benchMessage); n != 200 {
		t.Errorf("benchmark message has %d characters, want 200", n)
	}
}

// Vocabulary for generated rule keywords: payment-support domain words
// and modifiers in both languages.
var (
	zhDomain = strings.Fields("充值 提现 退款 银行卡 信用卡 余额 账户 转账 付款 收款 红包 积分 优惠券 订单 手续费 验证码 密码 实名认证 绑卡 解绑 限额 汇率 发票 商户 扫码 二维码 零钱 理财 钱包 储值")
	zhMod    = strings.Fields("失败 没到账 不到账 被扣 多扣 重复 延迟 异常 怎么办 多久 取消 退回 被盗 被冻结 申请 查询 修改 错误 超时 不能用")
	enDomain = []string{"payment", "refund", "card", "top up", "withdrawal", "transfer", "balance", "account", "wallet", "charge", "fee", "otp", "password", "verification", "limit", "invoice", "merchant", "qr code", "cashback", "voucher"}
	enMod    = []string{"failed", "declined", "pending", "missing", "delayed", "twice", "double", "wrong", "error", "stolen", "locked", "cancelled", "reversed", "not received", "how long", "issue", "problem", "blocked", "expired", "refused"}
)

// benchPatterns returns n distinct, deterministic keywords: single domain
// words, Chinese domain+modifier compounds (充值失败), English phrases in
// both orders (refund pending, declined card), mixed ones (app充值失败)
// and three-part compounds to reach 10,000.
func benchPatterns(n int) []string {
	var all []string
	all = append(all, zhDomain...)
	all = append(all, enDomain...)
	for _, d := range zhDomain {
		for _, m := range zhMod {
			all = append(all, d+m)
		}
	}
	for _, d := range enDomain {
		for _, m := range enMod {
			all = append(all, d+" "+m, m+" "+d)
		}
	}
	for i, d := range zhDomain {
		for _, m := range enMod[:10] {
			all = append(all, d+m)
		}
		all = append(all, "app"+d+zhMod[i%len(zhMod)])
	}
	for _, d1 := range zhDomain {
		for _, d2 := range zhDomain {
			if d1 != d2 {
				for _, m := range zhMod {
					all = append(all, d1+d2+m)
				}
			}
		}
	}
	for _, d1 := range enDomain {
		for _, d2 := range enDomain {
			for _, m := range enMod[:8] {
				if d1 != d2 {
					all = append(all, d1+" "+d2+" "+m)
				}
			}
		}
	}
	seen := make(map[string]bool, len(all))
	uniq := all[:0]
	for _, p := range all {
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	if n > len(uniq) {
		panic(fmt.Sprintf("only %d distinct patterns", len(uniq)))
	}
	r := rand.New(rand.NewPCG(42, 42))
	r.Shuffle(len(uniq), func(i, j int) { uniq[i], uniq[j] = uniq[j], uniq[i] })
	// Keep the core vocabulary in every set, as real rule sets have it.
	out := make([]string, 0, n)
	for _, p := range []string{"充值失败", "top up", "refund", "退款", "payment declined", "账户被冻结", "card"} {
		if len(out) < n {
			out = append(out, p)
			seen[p] = false
		}
	}
	for _, p := range uniq {
		if len(out) == n {
			break
		}
		if seen[p] {
			out = append(out, p)
		}
	}
	return out
}

func BenchmarkFind(b *testing.B) {
	text := Normalize(benchMessage)
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			m, err := Compile(benchPatterns(n))
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]Hit, 0, 256)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				dst = m.Find(text, dst[:0])
			}
			b.ReportMetric(float64(len(dst)), "hits/op")
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	cases := []struct{ name, text string }{
		{"message", benchMessage},
		// Same message with one combining mark and an emoji with a
		// variation selector, which sends it down the NFKC path.
		{"message-slowpath", benchMessage + " café\u0301 ❤️"},
		{"traditional", "您好，我的帳戶昨天被盜了，儲值的金額全部被轉走，請儘快幫我凍結帳戶並處理退款，謝謝！"},
		{"english", "Hi, my top-up failed three times and the payment was declined, but my card was charged twice. Please refund me."},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.text)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Normalize(tc.text)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			pats := benchPatterns(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(pats); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
