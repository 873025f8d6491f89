package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// An inline body is stored in chunks (issue 10 item 4), keyed
//
//	id || be16 chunk -> at most bodyChunk bytes
//
// because bbolt puts at least two values on a page: two 2.3 KB bodies
// made a 4.6 KB node, written as two 4 KB pages, so a 2 KB message took
// 4 KB of file. Chunks of at most bodyChunk bytes (about an eighth of a
// page with their keys and element headers) fill pages in small steps,
// and the bucket is filled to 100 % (its keys only ever grow: IDs sort
// by time, and a body is never rewritten), so a body costs its size plus
// 10–25 % (keys, headers, and the page ends that the next chunk does not
// fit); measured with 2 KB bodies: 2,336 bytes, was 4,096. Larger chunks
// waste more page ends, smaller ones more headers (480 was the best of
// 320–984 over bodies of 1.5–5 KB). Files written before store a body under its bare ID;
// the readers take every key that starts with the ID, so both read the
// same way.
const bodyChunk = 480

// maxBodyChunks bounds the chunk counter (be16); inline bodies are far
// smaller (queue.DefaultInlineMax).
const maxBodyChunks = 1 << 16

func bodyKey(id string, chunk int) []byte {
	k := make([]byte, idLen+2)
	copy(k, id)
	binary.BigEndian.PutUint16(k[idLen:], uint16(chunk))
	return k
}

// isBodyKey reports whether k is a key of message id's body: the bare ID
// (older files) or a chunk key.
func isBodyKey(k []byte, id string) bool {
	return (len(k) == idLen || len(k) == idLen+2) && string(k[:idLen]) == id
}

// putBody stores body for id, in equal chunks of at most bodyChunk
// bytes (equal, so that a body's last chunk is not a small remainder
// that leaves a page's end unfilled). An empty body is one empty chunk:
// the key says that the message has a body (a spooled one may keep it
// all in its file).
func (w *wtx) putBody(id string, body []byte) error {
	n := max((len(body)+bodyChunk-1)/bodyChunk, 1)
	if n > maxBodyChunks {
		return fmt.Errorf("queue: an inline body of %d bytes is too large", len(body))
	}
	b := w.b(bktBodies)
	size, rem := len(body)/n, len(body)%n
	for i := range n {
		l := size
		if i < rem {
			l++
		}
		if err := b.Put(bodyKey(id, i), body[:l]); err != nil {
			return err
		}
		body = body[l:]
	}
	return nil
}

// deleteBody removes every chunk of id's body.
func (w *wtx) deleteBody(id string) error {
	c := w.b(bktBodies).Cursor()
	for k, _ := c.Seek([]byte(id)); k != nil && isBodyKey(k, id); k, _ = c.Seek([]byte(id)) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// storedBody returns a copy of id's stored body (ok=false: none).
func storedBody(b *bbolt.Bucket, id string) (body []byte, ok bool) {
	c := b.Cursor()
	for k, v := c.Seek([]byte(id)); k != nil && isBodyKey(k, id); k, v = c.Next() {
		body = append(body, v...)
		ok = true
	}
	if ok && body == nil {
		body = []byte{}
	}
	return body, ok
}

// rawBody is storedBody on a file read without bbolt (export, check).
func rawBody(rf *rawFile, b rawBucket, id string) ([]byte, bool, error) {
	if v, _, ok, err := rf.get(b, []byte(id)); err != nil || ok {
		return bytes.Clone(v), ok, err
	}
	var body []byte
	for i := 0; i < maxBodyChunks; i++ {
		v, _, ok, err := rf.get(b, bodyKey(id, i))
		if err != nil {
			return nil, false, err
		}
		if !ok {
			if i == 0 {
				return nil, false, nil
			}
			break
		}
		body = append(body, v...)
	}
	if body == nil {
		body = []byte{}
	}
	return body, true, nil
}
