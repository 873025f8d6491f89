// Command apiload posts N messages to sluice's HTTP API (POST
// /v1/messages) from C concurrent clients with keep-alive, for
// bench/api.sh: the API's counterpart of smtp-source. Each message is the
// structured form with a text body of -size bytes (with -newsletter: a
// newsletter of about -size bytes, text and HTML with links and images
// and one-click unsubscribe, for bench/lint-throughput.sh); every answer
// must be 202. It prints the wall time and the rate; loopback only.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8026/v1/messages", "the API endpoint")
	tokenFile := flag.String("token-file", "", "file holding the API token")
	n := flag.Int("n", 1000, "messages")
	c := flag.Int("c", 20, "concurrent clients")
	size := flag.Int("size", 2048, "text bytes per message")
	from := flag.String("from", "bench@sender.test", "envelope sender")
	to := flag.String("to", "user@dest.test", "recipient")
	news := flag.Bool("newsletter", false, "post a newsletter of about -size bytes: text and HTML parts with links and images, List-Unsubscribe")
	flag.Parse()
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
	token := strings.TrimSpace(string(tok))
	line := strings.Repeat("abcdefghij", 7) + "\n"
	text := strings.Repeat(line, *size/len(line)+1)[:*size]
	form := map[string]any{"from": *from, "to": []string{*to}, "text": text}
	if *news {
		form = newsletter(*from, *to, *size)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				m := map[string]any{"subject": fmt.Sprintf("api bench %d", i)}
				for k, v := range form {
					m[k] = v
				}
				body, _ := json.Marshal(m)
				req, _ := http.NewRequest("POST", *url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("posted %d in %.3f s: %.0f msg/s, %d failed\n", *n, el, float64(*n)/el, failed.Load())
	if failed.Load() > 0 {
		fmt.Fprintln(os.Stderr, "apiload: first failure:", firstErr.Load())
		os.Exit(1)
	}
}

// newsletter is the structured form of a newsletter of about size bytes,
// as a campaign sends it: a text part and an HTML part saying the same,
// an article link and a small image per paragraph, and RFC 8058
// one-click unsubscribe. It is clean for the content lint, so that the
// bench measures lint reading and judging it, not logging findings.
func newsletter(from, to string, size int) map[string]any {
	var text, html strings.Builder
	html.WriteString("<html><body><h1>Spring news</h1>\n")
	for i := 0; text.Len()+html.Len() < size; i++ {
		p := fmt.Sprintf("Article %d: the spring collection arrived in our shops this week, with new colours and the sizes you asked for.", i)
		fmt.Fprintf(&text, "%s\nRead more: https://www.sender.test/articles/%d\n\n", p, i)
		fmt.Fprintf(&html, "<p>%s <a href=\"https://www.sender.test/articles/%d\">Read the article</a></p>\n"+
			"<img src=\"https://img.sender.test/%d.jpg\" alt=\"Photo %d\" width=\"120\" height=\"60\">\n", p, i, i, i)
	}
	html.WriteString("</body></html>\n")
	return map[string]any{"from": from, "to": []string{to}, "text": text.String(), "html": html.String(),
		"headers": map[string]string{
			"From":                  "Sender News <" + from + ">",
			"List-Unsubscribe":      "<https://www.sender.test/unsubscribe?u=1>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}}
}
