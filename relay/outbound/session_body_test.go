package outbound

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// refDotStuff is the straightforward reading of RFC 5321 §4.5.2 on a
// whole body: the reference the streaming writer must match.
func refDotStuff(body []byte) ([]byte, bool) {
	for i, c := range body {
		if c == '\r' && (i+1 >= len(body) || body[i+1] != '\n') || c == '\n' && (i == 0 || body[i-1] != '\r') {
			return nil, false
		}
	}
	var out []byte
	bol := true
	for _, c := range body {
		if bol && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		bol = c == '\n'
	}
	if !bol {
		out = append(out, "\r\n"...)
	}
	return append(out, ".\r\n"...), true
}

// streamDotStuff runs copyBody over r with a small buffer.
func streamDotStuff(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	err := copyBody(w, r, make([]byte, 7))
	return out.Bytes(), err
}

func TestDotWriter(t *testing.T) {
	t.Parallel()
	tests := []string{
		"", "a", ".", "..", "\r\n", ".\r\n", "\r\n.\r\n", "Subject: x\r\n\r\n.hidden\r\n..two\r\nlast",
		"a\r\n.\r\nb\r\n", "line\r\n\r\n.\r\n.", "x\r\n.", strings.Repeat(".a\r\n", 10),
		"a\rb", "a\nb", "a\r", "\n", "\r\r\n", "a\r\n\n", "a\r\n.\n", "a\r\r",
	}
	for _, in := range tests {
		want, ok := refDotStuff([]byte(in))
		// Every split of the input into reads gives the same bytes.
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
			got, err := streamDotStuff(r)
			if !ok {
				if !errors.Is(err, errBareCRLF) {
					t.Errorf("%q: err = %v, want errBareCRLF", in, err)
				}
				if bytes.HasSuffix(got, []byte("\r\n.\r\n")) || bytes.ContainsAny(bytes.ReplaceAll(got, []byte("\r\n"), nil), "\r\n") {
					t.Errorf("%q: a bare CR/LF or the final dot reached the wire: %q", in, got)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%q: got %q (%v), want %q", in, got, err, want)
			}
		}
	}
}

func TestDotWriterReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("EIO")
	got, err := streamDotStuff(io.MultiReader(strings.NewReader("a\r\nb\r\n"), iotest.ErrReader(boom)))
	if !errors.Is(err, errBodyRead) || !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if bytes.HasSuffix(got, []byte(".\r\n")) {
		t.Errorf("final dot written after a read error: %q", got)
	}
}

// FuzzDotWriter: the streaming writer agrees with the reference on every
// input and every read size.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"a\r\n.b\r\n", ".\r\n.\r\n", "a\rb", "\n.\n", "x"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		want, ok := refDotStuff(in)
		var r io.Reader = bytes.NewReader(in)
		if step > 0 {
			r = &stepReader{b: in, n: int(step)}
		}
		got, err := streamDotStuff(r)
		if ok != (err == nil) || ok && !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q (%v), want %q (ok %v)", in, got, err, want, ok)
		}
	})
}

type stepReader struct {
	b []byte
	n int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.n)], s.b)
	s.b = s.b[n:]
	return n, nil
}
