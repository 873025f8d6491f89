package outbound

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"sluice/reply"
)

// Limits on what we accept from a server, so that a hostile or broken
// peer cannot make us buffer without bound. RFC 5321 §4.5.3.1.5 caps a
// reply line at 512 octets; we allow more because real servers exceed it.
const (
	maxReplyLine  = 4096
	maxReplyLines = 256
)

var errBadReply = errors.New("relay: malformed SMTP reply")

// response is one SMTP reply as read from the wire: the basic code and the
// text of each line (code and separator removed).
type response struct {
	Code  int
	Lines []string
}

// line renders the reply on one line, for logs and errors.
func (r response) line() string {
	return clip(strings.TrimSpace(fmt.Sprintf("%d %s", r.Code, strings.Join(r.Lines, " "))))
}

// readResponse reads one possibly multi-line reply (RFC 5321 §4.2.1):
// "250-first", "250-second", "250 last". Every line must carry the same
// code.
func readResponse(br *bufio.Reader) (response, error) {
	var r response
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxReplyLine {
			return r, fmt.Errorf("%w: line too long", errBadReply)
		}
		if err != nil {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: truncated line", errBadReply)
			}
			return r, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 || (len(s) > 3 && s[3] != ' ' && s[3] != '-') {
			return r, fmt.Errorf("%w: %q", errBadReply, clip(s))
		}
		code := 0
		for _, c := range s[:3] {
			if c < '0' || c > '9' {
				return r, fmt.Errorf("%w: %q", errBadReply, clip(s))
			}
			code = code*10 + int(c-'0')
		}
		if code < 200 || code > 599 {
			return r, fmt.Errorf("%w: code %d", errBadReply, code)
		}
		if r.Code != 0 && code != r.Code {
			return r, fmt.Errorf("%w: code changed from %d to %d", errBadReply, r.Code, code)
		}
		r.Code = code
		text := ""
		if len(s) > 4 {
			text = s[4:]
		}
		r.Lines = append(r.Lines, sanitize(text))
		if len(s) == 3 || s[3] == ' ' {
			return r, nil
		}
		if len(r.Lines) >= maxReplyLines {
			return r, fmt.Errorf("%w: too many lines", errBadReply)
		}
	}
}

// toReply turns a wire reply into the reply.Reply reported upward: the
// enhanced code (RFC 3463, prefixed to every line per RFC 2034 §4) is
// split off, and the lines are joined with a space.
func toReply(stage reply.Stage, r response) reply.Reply {
	rep := reply.Reply{Stage: stage, Code: r.Code}
	texts := make([]string, 0, len(r.Lines))
	for i, l := range r.Lines {
		enh, rest := splitEnhanced(r.Code, l)
		if i == 0 {
			rep.Enhanced = enh
		}
		if enh != "" && enh == rep.Enhanced {
			l = rest
		}
		if l != "" {
			texts = append(texts, l)
		}
	}
	rep.Text = strings.Join(texts, " ")
	return rep
}

// splitEnhanced recognises "class.subject.detail" at the start of a
// reply line. RFC 3463 §2: class is 2, 4 or 5, subject and detail are 1-3
// digits; RFC 2034 §3 requires the class to match the basic code's first
// digit, otherwise the token is just text.
func splitEnhanced(code int, line string) (enh, rest string) {
	tok, rest, _ := strings.Cut(line, " ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return "", line
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return "", line
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return "", line
			}
		}
	}
	return tok, strings.TrimLeft(rest, " ")
}

// sanitize drops control characters so that a server cannot forge log
// lines through its reply text.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
