package parse

import (
	"strings"
	"testing"
)

func TestHTMLText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"text", "hello <b>world</b>", "hello world"},
		{"paragraphs", "<p>one</p><p>two</p>", "one\n\ntwo"},
		{"br", "one<br>two<br/>three", "one\ntwo\nthree"},
		{"gmail div lines", "<div>one</div><div><br></div><div>two</div>", "one\n\ntwo"},
		{"outlook paragraphs", `<p class="MsoNormal">one<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p><p class="MsoNormal">two</p>`, "one\n\ntwo"},
		{"whitespace collapse", "<p>  many \n\t spaces   here </p>", "many spaces here"},
		{"entities", "<p>Tom &amp; Jerry &lt;3 &euro;5 &#x4e2d;&#25991;</p>", "Tom & Jerry <3 €5 中文"},
		{"unordered list", "<p>Tried:</p><ul><li>reset</li><li>cache</li></ul><p>No luck.</p>", "Tried:\n\n- reset\n- cache\n\nNo luck."},
		{"ordered list", "<ol><li>first</li><li>second</li></ol>", "1. first\n2. second"},
		{"nested list", "<ul><li>a<ul><li>a1</li></ul></li><li>b</li></ul>", "- a\n  - a1\n- b"},
		{"list item paragraphs", "<ul><li><p>one</p></li><li><p>two</p></li></ul>", "- one\n- two"},
		{"link with text", `see <a href="https://x.example/p?a=1">the page</a>.`, "see the page (https://x.example/p?a=1)."},
		{"link showing its url", `<a href="https://x.example/">https://x.example</a>`, "https://x.example"},
		{"link showing url without scheme", `<a href="http://www.x.example">www.x.example</a>`, "www.x.example"},
		{"mailto", `write <a href="mailto:help@x.example?subject=hi">help@x.example</a> or <a href="mailto:help@x.example">us</a>`, "write help@x.example or us (help@x.example)"},
		{"anchor and javascript links", `<a href="#top">top</a> <a href="javascript:void(0)">click</a>`, "top click"},
		{"image link without text", `<a href="https://track.example"><img src="x.gif"></a>after`, "after"},
		{"image alt", `I <img src="heart.png" alt="❤"> it`, "I ❤ it"},
		{"script and style", "<style>p{color:red}</style><script>alert(1)</script><p>kept</p><noscript>no</noscript>", "kept"},
		{"head", "<html><head><title>T</title></head><body>body</body></html>", "body"},
		{"hidden preheader", `<div style="display: none; max-height:0">preview</div><span hidden>x</span><p>real</p>`, "real"},
		{"blockquote", "<p>new</p><blockquote><p>old</p><p>older</p></blockquote>", "new\n\n> old\n\n> older"},
		{"nested blockquote", "a<blockquote>b<blockquote>c</blockquote></blockquote>", "a\n> b\n> > c"},
		{"pre", "<pre>  indented\n    code</pre>after", "indented\n    code\nafter"},
		{"table", "<table><tr><td>Order</td><td>4821</td></tr><tr><td>Total</td><td>10 €</td></tr></table>", "Order 4821\nTotal 10 €"},
		{"headings", "<h1>Title</h1>text", "Title\n\ntext"},
		{"zero width padding", "a\u200b\u034f&zwnj;b\ufeff", "a\u200cb"},
		{"broken html", "<p>unclosed <b>bold <i>both</p>after", "unclosed bold both\n\nafter"},
		{"nul", "a\x00b", "ab"},
		{"invalid utf-8", "ok \xff", "ok \ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HTMLText(tc.in); got != tc.want {
				t.Errorf("HTMLText(%q):\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestHTMLTextDeepNesting(t *testing.T) {
	// The HTML parser refuses more than 512 open elements; the text must
	// survive anyway.
	in := strings.Repeat("<div>", 2000) + "deep text" + strings.Repeat("</div>", 2000) + "<br>after"
	if got := HTMLText(in); got != "deep text\n\nafter" {
		t.Errorf("got %q", got)
	}
	in = strings.Repeat("<span>", 300) + "<p>still structured</p>"
	if got := HTMLText(in); got != "still structured" {
		t.Errorf("got %q", got)
	}
}
