// Command apiload posts N messages to sluice's HTTP API (POST
// /v1/messages) from C concurrent clients with keep-alive, for
// bench/api.sh: the API's counterpart of smtp-source. Each message is the
// structured form with a text body of -size bytes; every answer must be
// 202. It prints the wall time and the rate; loopback only.
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
	flag.Parse()
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
	token := strings.TrimSpace(string(tok))
	line := strings.Repeat("abcdefghij", 7) + "\n"
	text := strings.Repeat(line, *size/len(line)+1)[:*size]
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
				body, _ := json.Marshal(map[string]any{"from": *from, "to": []string{*to},
					"subject": fmt.Sprintf("api bench %d", i), "text": text})
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
