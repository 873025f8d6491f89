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
	outMaxReplyLine  = 4096
	outMaxReplyLines = 256
)

var errOutBadReply = errors.New("relay: malformed SMTP reply")

// outResp is one SMTP reply as read from the wire: the basic code and the
// text of each line (code and separator removed).
type outResp struct {
	Code  int
	Lines []string
}

// line renders the reply on one line, for logs and errors.
func (r outResp) line() string {
	return outClip(strings.TrimSpace(fmt.Sprintf("%d %s", r.Code, strings.Join(r.Lines, " "))))
}

// outReadResp reads one possibly multi-line reply (RFC 5321 §4.2.1):
// "250-first", "250-second", "250 last". Every line must carry the same
// code.
func outReadResp(br *bufio.Reader) (outResp, error) {
	var r outResp
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > outMaxReplyLine {
			return r, fmt.Errorf("%w: line too long", errOutBadReply)
		}
		if err != nil {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: truncated line", errOutBadReply)
			}
			return r, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 || (len(s) > 3 && s[3] != ' ' && s[3] != '-') {
			return r, fmt.Errorf("%w: %q", errOutBadReply, outClip(s))
		}
		code := 0
		for _, c := range s[:3] {
			if c < '0' || c > '9' {
				return r, fmt.Errorf("%w: %q", errOutBadReply, outClip(s))
			}
			code = code*10 + int(c-'0')
		}
		if code < 200 || code > 599 {
			return r, fmt.Errorf("%w: code %d", errOutBadReply, code)
		}
		if r.Code != 0 && code != r.Code {
			return r, fmt.Errorf("%w: code changed from %d to %d", errOutBadReply, r.Code, code)
		}
		r.Code = code
		text := ""
		if len(s) > 4 {
			text = s[4:]
		}
		r.Lines = append(r.Lines, outSanitize(text))
		if len(s) == 3 || s[3] == ' ' {
			return r, nil
		}
		if len(r.Lines) >= outMaxReplyLines {
			return r, fmt.Errorf("%w: too many lines", errOutBadReply)
		}
	}
}

// outReply turns a wire reply into the reply.Reply reported upward: the
// enhanced code (RFC 3463, prefixed to every line per RFC 2034 §4) is
// split off, and the lines are joined with a space.
func outReply(stage reply.Stage, r outResp) reply.Reply {
	rep := reply.Reply{Stage: stage, Code: r.Code}
	texts := make([]string, 0, len(r.Lines))
	for i, l := range r.Lines {
		enh, rest := outSplitEnhanced(r.Code, l)
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

// outSplitEnhanced recognises "class.subject.detail" at the start of a
// reply line. RFC 3463 §2: class is 2, 4 or 5, subject and detail are 1-3
// digits; RFC 2034 §3 requires the class to match the basic code's first
// digit, otherwise the token is just text.
func outSplitEnhanced(code int, line string) (enh, rest string) {
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

// outSanitize drops control characters so that a server cannot forge log
// lines through its reply text.
func outSanitize(s string) string {
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

func outClip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
