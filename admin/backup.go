package admin

import (
	"io"
	"net/http"
)

// backupType is the media type of the backup stream (queue.Backup: a tar
// archive of the queue file, its spooled bodies and a manifest).
const backupType = "application/x-tar"

// postBackup answers POST /v1/queue/backup (`sluice queue backup FILE`)
// with a consistent copy of the queue, streamed while the daemon runs
// (queue.Backup). It is a POST, with the JSON content type every
// mutating request needs, although it changes nothing: it hands out
// every message, so it gets the strictest of the API's guards, and no
// cross-site page can start one (see guardAPI, requireJSON). An error
// before the first byte is an ordinary error reply; after it, the
// connection is cut, so the client sees the stream end before its
// manifest and keeps nothing.
func (s *Server) postBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", backupType)
	w.Header().Set("Cache-Control", "no-store")
	cw := &countWriter{w: w}
	man, err := s.o.Queue.Backup(cw)
	if err != nil {
		if cw.n == 0 {
			s.fail(w, "backup", err)
			return
		}
		s.log.Error("queue backup cut short", "bytes", cw.n, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("queue backup", "queue_bytes", man.QueueBytes, "messages", man.Messages, "bodies", man.Bodies,
		"body_bytes", man.BodyBytes, "missing_bodies", len(man.Missing))
}

// countWriter counts what went through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
