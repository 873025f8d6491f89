package fakemx

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reply is a parsed SMTP reply: a basic code and the text of each line
// (the text keeps the enhanced code, if any).
type Reply struct {
	Code  int
	Lines []string
}

// String renders the reply on one line: the code and the lines' texts
// joined by spaces.
func (r Reply) String() string {
	return strings.TrimSpace(strconv.Itoa(r.Code) + " " + strings.Join(r.Lines, " "))
}

// scripted is a Script rule's reply and the unrequested one it may send
// after it (Rule.Extra), in a second write when later is set.
type scripted struct {
	Reply
	extra *Reply
	later bool
}

var errBadReply = errors.New("reply must start with a 3-digit code 2xx-5xx")

// parseReply reads a reply written the way it appears on the wire, e.g.
// "421 4.7.0 Try later". Several lines may be joined with "\n"; each may
// repeat the code ("550-..." or "550 ...") or give only the text.
func parseReply(s string) (Reply, error) {
	s = strings.TrimRight(s, "\r\n")
	parts := strings.Split(s, "\n")
	code, text, err := splitCode(parts[0])
	if err != nil {
		return Reply{}, fmt.Errorf("%q: %w", parts[0], err)
	}
	r := Reply{Code: code, Lines: []string{text}}
	prefix := parts[0][:3]
	for _, p := range parts[1:] {
		p = strings.TrimRight(p, "\r")
		if strings.HasPrefix(p, prefix) && (len(p) == 3 || p[3] == ' ' || p[3] == '-') {
			p = strings.TrimLeft(p[3:], " -")
		}
		r.Lines = append(r.Lines, p)
	}
	return r, nil
}

func splitCode(line string) (int, string, error) {
	// RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39.
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' {
		return 0, "", errBadReply
	}
	if len(line) > 3 && line[3] != ' ' && line[3] != '-' {
		return 0, "", errBadReply
	}
	code, _ := strconv.Atoi(line[:3])
	text := ""
	if len(line) > 4 {
		text = line[4:]
	}
	if strings.ContainsAny(text, "\r\n") {
		return 0, "", errBadReply
	}
	return code, text, nil
}

// withDelay fills a %d in the reply text with secs, as postgrey-style
// texts name the remaining delay.
func (r Reply) withDelay(secs int) Reply {
	out := Reply{Code: r.Code, Lines: make([]string, len(r.Lines))}
	for i, l := range r.Lines {
		if strings.Contains(l, "%d") {
			l = strings.Replace(l, "%d", strconv.Itoa(secs), 1)
		}
		out.Lines[i] = l
	}
	return out
}

// wire renders the reply with CRLF line ends; continuation lines use
// "code-" (RFC 5321 §4.2.1).
func (r Reply) wire() []byte {
	var b []byte
	for i, l := range r.Lines {
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if i < len(r.Lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return b
}

type rule struct {
	stage string
	match string
	times int
	reply scripted
}

func compileRule(r Rule) (rule, error) {
	switch r.Stage {
	case StageGreeting, StageEHLO, StageMail, StageRcpt, StageData, StageDataEnd:
	default:
		return rule{}, fmt.Errorf("unknown stage %q (want greeting|ehlo|mail|rcpt|data|data-end)", r.Stage)
	}
	if r.Times < 0 {
		return rule{}, fmt.Errorf("negative Times %d", r.Times)
	}
	first, err := parseReply(r.Reply)
	if err != nil {
		return rule{}, err
	}
	rep := scripted{Reply: first}
	if r.Extra != "" {
		x, err := parseReply(r.Extra)
		if err != nil {
			return rule{}, fmt.Errorf("extra: %w", err)
		}
		rep.extra, rep.later = &x, r.Later
	}
	return rule{stage: r.Stage, match: strings.ToLower(r.Match), times: r.Times, reply: rep}, nil
}
