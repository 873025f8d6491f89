// Command hooksink is the webhook receiver of bench/events.sh: it
// verifies every POST's Sluice-Signature, answers after -delay (a slow
// application), and records each distinct event's lag (arrival minus the
// event's time). GET /stats answers the counts and lag percentiles as
// JSON.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"sluice/events"
)

type stats struct {
	Posts  int     `json:"posts"`
	Bad    int     `json:"bad_signatures"`
	Events int     `json:"events"` // distinct IDs
	Dups   int     `json:"duplicates"`
	P50    float64 `json:"lag_p50_seconds"`
	P99    float64 `json:"lag_p99_seconds"`
	Max    float64 `json:"lag_max_seconds"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "listen address")
	secretFile := flag.String("secret-file", "", "the webhook secret")
	delay := flag.Duration("delay", 50*time.Millisecond, "answer each POST after this long")
	flag.Parse()
	b, err := os.ReadFile(*secretFile)
	if err != nil {
		log.Fatal(err)
	}
	secret := []byte(strings.TrimRight(string(b), "\r\n"))
	var mu sync.Mutex
	seen := map[string]bool{}
	var lags []float64
	var st stats
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		now := time.Now()
		if err != nil {
			return
		}
		ok := events.Verify(secret, r.Header.Get(events.SignatureHeader), body, now, 5*time.Minute) == nil
		var evs events.Body
		if ok {
			ok = json.Unmarshal(body, &evs) == nil
		}
		mu.Lock()
		st.Posts++
		if !ok {
			st.Bad++
		}
		for _, e := range evs.Events {
			if seen[e.ID] {
				st.Dups++
				continue
			}
			seen[e.ID] = true
			lags = append(lags, now.Sub(e.Time).Seconds())
		}
		mu.Unlock()
		time.Sleep(*delay) // the slow application
		if !ok {
			http.Error(w, "bad signature", http.StatusUnauthorized)
		}
	})
	http.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		out := st
		out.Events = len(seen)
		l := slices.Clone(lags)
		mu.Unlock()
		slices.Sort(l)
		if n := len(l); n > 0 {
			out.P50, out.P99, out.Max = l[n*50/100], l[min(n-1, n*99/100)], l[n-1]
		}
		json.NewEncoder(w).Encode(out)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
