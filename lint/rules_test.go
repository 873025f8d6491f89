package lint

import (
	"slices"
	"strings"
	"testing"
)

// msg builds a message with good identity headers, the given extra header
// lines and a body; ctype "" means text/plain; charset=utf-8.
func msg(from, subject, ctype, body string, extra ...string) string {
	if ctype == "" {
		ctype = "text/plain; charset=utf-8"
	}
	h := "From: " + from + "\r\nTo: j@example.org\r\nSubject: " + subject +
		"\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <x1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype + "\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n" + body
}

const longText = "The quick brown fox jumps over the lazy dog near the river bank while the farmer watches from the old wooden fence and counts his sheep. "

func TestRules(t *testing.T) {
	t.Parallel()
	html := func(s string) string { return msg("A <a@example.com>", "Hello there", "text/html; charset=utf-8", s) }
	for _, tc := range []struct {
		name string
		msg  string
		want []string
	}{
		{"clean", msg("A <a@example.com>", "Hello there", "", longText), nil},
		{"display same address", msg(`"a@example.com" <a@example.com>`, "Hi there", "", longText), nil},
		{"display subdomain of own", msg(`"news.example.com" <a@mail.example.com>`, "Hi there", "", longText), nil},
		{"display other domain", msg(`"example.net billing" <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"display encoded address", msg(`=?utf-8?Q?service=40paypal.com?= <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"brand owned", msg(`PayPal <service@intl.paypal.com>`, "Hi there", "", longText), nil},
		{"brand in word not matched", msg(`Applesauce Weekly <a@example.com>`, "Hi there", "", longText), nil},
		{"brand two words", msg(`Wells Fargo Alerts <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"name with dots is no domain", msg(`"J.R.R. Tolkien" <a@example.com>`, "Hi there", "", longText), nil},
		{"new gTLD word in a name", msg(`Support.Team <a@example.com>`, "Hi there", "", longText), nil},
		{"new gTLD with www", msg(`www.example.shop <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"ccTLD domain in a name", msg(`Shop example.de <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"address under a new gTLD", msg(`"help@example.shop" <a@example.com>`, "Hi there", "", longText), []string{"from-display-mismatch"}},
		{"mailbox list", msg(`a@example.com, b@example.net`, "Hi there", "", longText), []string{"from-count"}},
		{"bare shortener path in text", msg("A <a@example.com>", "Hi there", "", "go to bit.ly/abc now"), []string{"link-shortener"}},
		{"shortener subdomain", msg("A <a@example.com>", "Hi there", "", "go to https://www.bit.ly/abc now"), []string{"link-shortener"}},
		{"address at shortener domain is not a link", msg("A <a@example.com>", "Hi there", "", "mail me at x@t.co/ today"), nil},
		{"shortener mentioned without a path", msg("A <a@example.com>", "Hi there", "", "we never use bit.ly here"), nil},
		{"lookalike is not a shortener", msg("A <a@example.com>", "Hi there", "", "https://notbit.ly/x"), nil},
		{"qp-encoded html href", msg("A <a@example.com>", "Hi there", "text/html; charset=utf-8", "<p>"+longText+"</p><a href=3D\"https://t.co/x\">go</a>", "Content-Transfer-Encoding: quoted-printable"), []string{"link-shortener", "html-no-text"}},
		{"link text same site", html("<p>" + longText + `</p><a href="https://www.example.com/x">example.com</a>`), []string{"html-no-text"}},
		{"link text other site", html("<p>" + longText + `</p><a href="https://track.example.net/x">www.example.com</a>`), []string{"link-text-mismatch", "html-no-text"}},
		{"link text file name", html("<p>" + longText + `</p><a href="https://example.net/x">report.pdf</a>`), []string{"html-no-text"}},
		{"mailto link text", html("<p>" + longText + `</p><a href="mailto:x@example.net">help@example.com</a>`), []string{"html-no-text"}},
		{"script text is not text", html(`<script>` + longText + `</script><img src="https://example.com/a.png" alt="a">`), []string{"image-only", "html-no-text"}},
		{"tracking pixel is no image", html("<p>" + longText + `</p><img src="https://example.com/o.gif" width="1" height="1">`), []string{"html-no-text"}},
		{"subject caps short", msg("A <a@example.com>", "HELLO YOU", "", longText), nil},
		{"subject caps one word", msg("A <a@example.com>", "CONGRATULATIONS", "", longText), nil},
		{"subject caps reply", msg("A <a@example.com>", "Re: MEETING ON FRIDAY", "", longText), []string{"subject-caps"}},
		{"subject caps with digits", msg("A <a@example.com>", "Q3 REPORT 2026 ATTACHED", "", longText), []string{"subject-caps"}},
		{"subject one exclaim", msg("A <a@example.com>", "Welcome aboard!", "", longText), nil},
		{"subject two apart", msg("A <a@example.com>", "Hi! Welcome aboard!", "", longText), nil},
		{"charset given", msg("A <a@example.com>", "Hi there", "text/plain; charset=iso-8859-1", "Gr\xfc\xdfe "+longText), nil},
		{"8-bit without content-type", "From: a@example.com\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: Hi there\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n", []string{"missing-charset"}},
		{"base64 8-bit without charset", msg("A <a@example.com>", "Hi there", "text/plain", "R3LDvMOfZQ==\r\n", "Content-Transfer-Encoding: base64"), []string{"missing-charset"}},
		{"two dates", msg("A <a@example.com>", "Hi there", "", longText, "Date: Mon, 30 Nov 2026 02:00:00 +0000"), []string{"missing-date"}},
		{"message-id without @", strings.Replace(msg("A <a@example.com>", "Hi there", "", longText), "<x1@example.com>", "<x1>", 1), []string{"missing-message-id"}},
		{"no from", strings.Replace(msg("A <a@example.com>", "Hi there", "", longText), "From: A <a@example.com>\r\n", "", 1), []string{"from-count"}},
		{"attachment text not read", msg("A <a@example.com>", "Hi there", "multipart/mixed; boundary=b", "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+longText+"\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nhttps://bit.ly/x \xff\r\n--b--\r\n"), nil},
		{"empty text part", msg("A <a@example.com>", "Hi there", "multipart/alternative; boundary=b", "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n \r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>"+longText+"</p>\r\n--b--\r\n"), []string{"text-html-imbalance"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Check(strings.NewReader(tc.msg), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sortedIDs(got), sorted(tc.want)) {
				t.Errorf("findings %v, want %v", got, sorted(tc.want))
			}
		})
	}
}

func TestBulkUnsubscribe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		ok    bool
	}{
		{"one-click", []string{"List-Unsubscribe: <mailto:u@example.com>, <https://example.com/u?x=1>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"}, true},
		{"http only", []string{"List-Unsubscribe: <http://example.com/u>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"}, false},
		{"no post", []string{"List-Unsubscribe: <https://example.com/u>"}, false},
		{"wrong post", []string{"List-Unsubscribe: <https://example.com/u>", "List-Unsubscribe-Post: yes"}, false},
		{"none", nil, false},
	} {
		m := msg("A <a@example.com>", "Hi there", "", longText, tc.extra...)
		got, err := Check(strings.NewReader(m), Options{Bulk: true})
		if err != nil {
			t.Fatal(err)
		}
		if ok := len(got) == 0; ok != tc.ok {
			t.Errorf("%s: findings %v, want ok=%v", tc.name, got, tc.ok)
		}
		if got, _ := Check(strings.NewReader(m), Options{}); len(got) != 0 {
			t.Errorf("%s: not bulk, findings %v", tc.name, got)
		}
	}
}

// TestPlainHostAgreesWithURLParse: linkHost's fast path gives the host
// url.Parse gives, and leaves to it every link it is not sure of.
func TestPlainHostAgreesWithURLParse(t *testing.T) {
	t.Parallel()
	for _, link := range []string{
		"https://news.example.com/story/1?utm_source=nl&utm_medium=email",
		"HTTPS://News.Example.COM./x#frag",
		"http://bit.ly/3xYz",
		"https://example.com",
		"https://example.com?q=1",
		"https://example.com#top",
		"https://xn--bcher-kva.example/",
		"https://user@evil.example/",        // userinfo: url.Parse
		"https://example.com:8443/x",        // port: url.Parse
		"https://[2001:db8::1]/x",           // IP literal: url.Parse
		"https://example.com/%zz",           // bad escape: url.Parse refuses
		"https://exa mple.com/",             // space
		"https://example.com\\@evil.test/",  // backslash
		"https://example.com/a\x7fb",        // control character: url.Parse refuses
		"https://ex%61mple.com/",            // escaped host
		"https:////example.com/",            // empty host
		"https://b\u00fccher.example/",      // non-ASCII host
		"https://example.com/path with sp",  // space in the path
		"https://example.com/\u00e9t\u00e9", // non-ASCII path
	} {
		h, ok := plainHost(link)
		want := parsedHost(link)
		if ok && h != want {
			t.Errorf("plainHost(%q) = %q, url.Parse gives %q", link, h, want)
		}
		if got := linkHost(link); got != want {
			t.Errorf("linkHost(%q) = %q, want %q (url.Parse)", link, got, want)
		}
	}
}
