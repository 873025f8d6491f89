package queue

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// idLen is the fixed length of a message ID. Keys embed IDs at a fixed
// width so that index keys can be split without separators.
const idLen = 16

// idAlphabet keeps IDs safe in file names, logs and shell arguments.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV"

// idGen makes IDs of 9 base-32 digits of Unix milliseconds (sortable by
// time until the year 3000+) followed by 7 digits of a per-process counter
// that starts at a random value. Only one process opens a queue file (it
// is flock'ed), so the counter makes IDs unique within a millisecond and
// the random start makes a restart within the same millisecond unlikely
// to collide; Enqueue still checks for a collision in its transaction.
type idGen struct {
	ctr atomic.Uint64
}

func newIDGen() *idGen {
	g := &idGen{}
	var b [8]byte
	_, _ = rand.Read(b[:])
	g.ctr.Store(binary.BigEndian.Uint64(b[:]))
	return g
}

func (g *idGen) next(now time.Time) string {
	var b [idLen]byte
	ms := uint64(now.UnixMilli())
	if now.Before(time.Unix(0, 0)) {
		ms = 0
	}
	for i := 8; i >= 0; i-- {
		b[i] = idAlphabet[ms&31]
		ms >>= 5
	}
	c := g.ctr.Add(1)
	for i := idLen - 1; i >= 9; i-- {
		b[i] = idAlphabet[c&31]
		c >>= 5
	}
	return string(b[:])
}

// validID reports whether s has the shape of an ID, so that lookups of
// garbage never build odd keys.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'V') {
			return false
		}
	}
	return true
}
